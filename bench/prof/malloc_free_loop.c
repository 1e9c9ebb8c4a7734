// 1M malloc(64)/free pairs: the program callgrind counts the fast paths'
// instructions on (docs/ARCHITECTURE.md, "Heap profiles"):
//   valgrind --tool=callgrind --callgrind-out-file=cg.out \
//     env LD_PRELOAD=build/libnumaslub.so ./malloc_free_loop
//   callgrind_annotate cg.out | grep -E ' (malloc|free) '
// A volatile sink keeps the compiler from pairing the calls away.
#include <stdlib.h>

void* volatile g_sink;

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  for (long i = 0; i < n; ++i) {
    void* p = malloc(64);
    g_sink = p;
    free(p);
  }
  return 0;
}
