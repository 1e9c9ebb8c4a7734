/* libFuzzer target over the whole malloc API: the operations and checks of
 * tests/hostile/api_fuzz.c (see there), with every choice taken from the
 * input instead of a seeded generator, one thread, and all blocks freed at
 * the end of each input. Built with numaslub linked in (it is the process's
 * malloc, libFuzzer's own allocations included) and the library compiled
 * with coverage instrumentation.
 *
 * Build (clang only; libFuzzer ships with clang, e.g. Debian's clang-14):
 *   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release \
 *       -DNUMASLUB_FUZZ=ON -DNUMASLUB_TESTS=OFF -DNUMASLUB_BENCH=OFF
 *   cmake --build build-fuzz -j2 --target api_fuzzer
 * Run (a corpus folder to keep what it finds; -jobs for parallel runs):
 *   mkdir -p fuzz-corpus
 *   build-fuzz/tests/fuzz/api_fuzzer -max_len=4096 -max_total_time=600 fuzz-corpus
 *   NUMASLUB_CONF=percpu=thread build-fuzz/tests/fuzz/api_fuzzer ... (the other mode)
 * A failure prints the check that failed and the last operations, and
 * libFuzzer saves the input as crash-<sha1>; replay it with
 *   build-fuzz/tests/fuzz/api_fuzzer crash-<sha1> */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define API_OPS_FAIL_EXIT() abort()
#include "../hostile/api_ops.h"

int LLVMFuzzerInitialize(int* argc, char*** argv);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerInitialize(int* argc, char*** argv) {
  (void)argc;
  (void)argv;
  api_ops_init();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static struct worker w;
  memset(&w, 0, sizeof w);
  w.in = data;
  w.in_len = size;
  for (; !w.done; ++w.ops) api_step(&w);
  api_free_all(&w);
  return 0;
}
