/* 1M malloc(64)/free pairs: the program callgrind counts the fast paths'
 * instructions on (docs/ARCHITECTURE.md, "Heap profiles"); `malloc_free_loop
 * N SIZE` makes N pairs of SIZE bytes (the classes above 32 KiB and the
 * large blocks, issue 14):
 *   valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=cg.%p
 *     env LD_PRELOAD=build/libnumaslub.so build/bench/malloc_free_loop
 *   callgrind_annotate cg.PID | grep -E ' (malloc|free) '
 * (NUMASLUB_CONF=prof=1 in the env for the profiler's cost.) A volatile
 * sink keeps the compiler from pairing the calls away. */
#include <stdlib.h>

void* volatile g_sink;

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  size_t size = argc > 2 ? (size_t)atol(argv[2]) : 64;
  for (long i = 0; i < n; ++i) {
    void* p = malloc(size);
    g_sink = p;
    free(p);
  }
  return 0;
}
