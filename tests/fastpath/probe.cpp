// The fast paths under a counter (tests/fastpath/counts.py): each loop
// measure_<op> calls one exported function (or a pair) kRounds times through
// pointers the compiler cannot see through, after a warm-up outside the
// loops set the heap and this thread's sheaves up. Every call in a loop is
// a hit of the fast path (an object is freed and taken again from the same
// sheaf), so the callee's inclusive cost per call on the caller -> callee
// edge is the fast path's instruction count. Linked against libnumaslub.so.
//
// Usage: fastpath_probe [OP...]  (default: all)
#include <dlfcn.h>
#include <stdlib.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <new>

namespace {

constexpr int kRounds = 20000;

using MallocFn = void* (*)(std::size_t);
using FreeFn = void (*)(void*);
using CallocFn = void* (*)(std::size_t, std::size_t);
using ReallocFn = void* (*)(void*, std::size_t);
using SizedFreeFn = void (*)(void*, std::size_t);

MallocFn volatile f_malloc = malloc;
FreeFn volatile f_free = free;
CallocFn volatile f_calloc = calloc;
ReallocFn volatile f_realloc = realloc;
MallocFn volatile f_new = static_cast<MallocFn>(::operator new);
FreeFn volatile f_delete = static_cast<FreeFn>(::operator delete);
SizedFreeFn volatile f_delete_sized = static_cast<SizedFreeFn>(::operator delete);
SizedFreeFn volatile f_free_sized;  // C23, not in glibc 2.36's headers: dlsym

}  // namespace

// C names, so the counter finds the loops by name. Each is its own caller
// of the functions it measures.
extern "C" {

__attribute__((noinline)) void measure_malloc_free() {
  for (int i = 0; i < kRounds; ++i) f_free(f_malloc(64));
}

__attribute__((noinline)) void measure_new_delete() {
  for (int i = 0; i < kRounds; ++i) f_delete(f_new(64));
}

__attribute__((noinline)) void measure_new_delete_sized() {
  for (int i = 0; i < kRounds; ++i) f_delete_sized(f_new(64), 64);
}

__attribute__((noinline)) void measure_malloc_free_sized() {
  for (int i = 0; i < kRounds; ++i) f_free_sized(f_malloc(64), 64);
}

// A small block from the sheaf, zeroed by calloc.
__attribute__((noinline)) void measure_calloc_free() {
  for (int i = 0; i < kRounds; ++i) f_free(f_calloc(1, 64));
}

// Within its class (48): kept.
__attribute__((noinline)) void measure_realloc_same_class() {
  void* p = f_malloc(40);
  for (int i = 0; i < kRounds; ++i) p = f_realloc(p, i & 1 ? 40 : 48);
  f_free(p);
}

}  // extern "C"

namespace {

struct Op {
  const char* name;
  void (*run)();
};
const Op kOps[] = {
    {"malloc_free", measure_malloc_free},
    {"new_delete", measure_new_delete},
    {"new_delete_sized", measure_new_delete_sized},
    {"malloc_free_sized", measure_malloc_free_sized},
    {"calloc_free", measure_calloc_free},
    {"realloc_same_class", measure_realloc_same_class},
};

}  // namespace

int main(int argc, char** argv) {
  f_free_sized = reinterpret_cast<SizedFreeFn>(dlsym(RTLD_DEFAULT, "free_sized"));
  if (!f_free_sized) {
    std::fprintf(stderr, "fastpath_probe: free_sized not found: is numaslub linked?\n");
    return 1;
  }
  // Warm-up: set-up, this thread's sheaves, the classes used below.
  for (int i = 0; i < 64; ++i) {
    f_free(f_malloc(64));
    f_free(f_calloc(1, 64));
    f_free(f_realloc(f_malloc(40), 48));
    f_delete(f_new(64));
  }
  for (const Op& op : kOps) {
    bool wanted = argc == 1;
    for (int i = 1; i < argc; ++i) wanted |= std::strcmp(argv[i], op.name) == 0;
    if (wanted) op.run();
  }
  std::printf("fastpath_probe: %d rounds each\n", kRounds);
  return 0;
}
