/* The aligned family at every alignment up to 1 GiB, with sizes 0, 1,
 * align - 1, align and align + 1, and glibc's errno rules for every
 * alignment.
 *
 * posix_memalign(&p, 65536, 0) (and aligned_alloc/memalign, alignment
 * >= 64 KiB, size 0) used to return a block whose pages were already free,
 * so a later allocation overlapped it: every block here stays live while
 * the others of its alignment are made, and no two may overlap.
 * memalign with an alignment above 2^40 used to set EINVAL where glibc (and
 * aligned_alloc, posix_memalign) give ENOMEM. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>

#include "hostile.h"

static void* (*volatile f_malloc)(size_t) = malloc;
static int (*volatile f_posix_memalign)(void**, size_t, size_t) = posix_memalign;
static void* (*volatile f_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void* (*volatile f_memalign)(size_t, size_t) = memalign;
static void* (*volatile f_valloc)(size_t) = valloc;
static void* (*volatile f_pvalloc)(size_t) = pvalloc;

#define MAX_LIVE 64
static struct { uintptr_t lo, hi; } g_live[MAX_LIVE];
static int g_nlive;

/* Records [p, p + max(usable, 1)) after checking it against every live
 * block; touches the first and last requested byte. */
static void adopt(void* p, size_t size, size_t align, const char* fn) {
  if (!p || (uintptr_t)p % align) {
    fprintf(stderr, "%s(align %#zx, size %#zx) = %p\n", fn, align, size, p);
    CHECK(p && (uintptr_t)p % align == 0);
  }
  size_t u = malloc_usable_size(p);
  CHECK(u >= size);
  uintptr_t lo = (uintptr_t)p, hi = lo + (u ? u : 1);
  for (int i = 0; i < g_nlive; ++i)
    if (lo < g_live[i].hi && g_live[i].lo < hi) {
      fprintf(stderr, "%s(align %#zx, size %#zx): [%#lx, %#lx) overlaps live [%#lx, %#lx)\n", fn,
              align, size, (unsigned long)lo, (unsigned long)hi, (unsigned long)g_live[i].lo,
              (unsigned long)g_live[i].hi);
      CHECK(0);
    }
  CHECK(g_nlive < MAX_LIVE);
  g_live[g_nlive].lo = lo;
  g_live[g_nlive++].hi = hi;
  if (size) {
    ((unsigned char*)p)[0] = 0x5a;
    ((unsigned char*)p)[size - 1] = 0xa5;
  }
}

static void free_all(void) {
  for (int i = 0; i < g_nlive; ++i) free((void*)g_live[i].lo);
  g_nlive = 0;
}

static int sweep(void) {
  for (unsigned k = 0; k <= 30; ++k) {
    size_t a = (size_t)1 << k;
    size_t sizes[] = {0, 1, a - 1, a, a + 1};
    for (unsigned s = 0; s < 5; ++s) {
      size_t n = sizes[s];
      void* p = NULL;
      if (a >= sizeof(void*)) {
        CHECK(f_posix_memalign(&p, a, n) == 0);
        adopt(p, n, a, "posix_memalign");
      }
      adopt(f_aligned_alloc(a, n), n, a, "aligned_alloc");
      adopt(f_memalign(a, n), n, a, "memalign");
    }
    /* Plain allocations of the sizes the heap reuses first. */
    adopt(f_malloc(0), 0, 1, "malloc");
    adopt(f_malloc(a < (64u << 10) ? 64u << 10 : a), 1, 1, "malloc");
    adopt(f_valloc(0), 0, 4096, "valloc");
    free_all();
  }
  return 0;
}

#define EXPECT_FAIL(call, err) \
  do {                         \
    errno = 0;                 \
    CHECK((call) == NULL);     \
    CHECK(errno == (err));     \
  } while (0)

/* glibc's errno rules (2.38 for aligned_alloc; the rest since long). */
static int errno_rules(void) {
  void* p;
  /* memalign: 0 and every non-power of two up to 2^63 round up to a power
   * of two; only above 2^63 is EINVAL. */
  p = f_memalign(0, 10);
  CHECK(p != NULL);
  free(p);
  for (size_t a = 3; a < 100000; a = a * 3 + 1) {
    size_t want = 1;
    while (want < a) want <<= 1;
    p = f_memalign(a, 10);
    CHECK(p != NULL && (uintptr_t)p % want == 0);
    free(p);
  }
  for (unsigned k = 47; k < 64; ++k) {
    EXPECT_FAIL(f_memalign((size_t)1 << k, 1), ENOMEM);
    EXPECT_FAIL(f_memalign(((size_t)1 << k) - 1, 1), ENOMEM); /* rounds up to 2^k */
    EXPECT_FAIL(f_memalign(((size_t)1 << k) + 1, 1), k < 63 ? ENOMEM : EINVAL);
  }
  EXPECT_FAIL(f_memalign(SIZE_MAX, 1), EINVAL);
  EXPECT_FAIL(f_memalign(64, SIZE_MAX - 100), ENOMEM);

  /* aligned_alloc: 0 or a non-power of two is EINVAL; any power of two is
   * valid, an unmeetable one is ENOMEM. */
  EXPECT_FAIL(f_aligned_alloc(0, 16), EINVAL);
  EXPECT_FAIL(f_aligned_alloc(24, 48), EINVAL);
  EXPECT_FAIL(f_aligned_alloc(SIZE_MAX, 1), EINVAL);
  EXPECT_FAIL(f_aligned_alloc(((size_t)1 << 63) + 1, 1), EINVAL);
  for (unsigned k = 47; k < 64; ++k) EXPECT_FAIL(f_aligned_alloc((size_t)1 << k, 1), ENOMEM);
  EXPECT_FAIL(f_aligned_alloc(64, SIZE_MAX), ENOMEM);

  /* posix_memalign: EINVAL unless a power of two multiple of sizeof(void*);
   * ENOMEM when it cannot be met. errno is left alone, *p untouched. */
  size_t bad[] = {0, 1, 2, 4, 12, 24, 100, ((size_t)1 << 63) + 8, SIZE_MAX};
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    p = (void*)1;
    errno = 0;
    CHECK(f_posix_memalign(&p, bad[i], 8) == EINVAL);
    CHECK(p == (void*)1 && errno == 0);
  }
  for (unsigned k = 47; k < 64; ++k) {
    p = (void*)1;
    errno = 0;
    CHECK(f_posix_memalign(&p, (size_t)1 << k, 1) == ENOMEM);
    CHECK(p == (void*)1 && errno == 0);
  }
  CHECK(f_posix_memalign(&p, 64, SIZE_MAX) == ENOMEM);

  /* valloc, pvalloc: page alignment; too large is ENOMEM. */
  EXPECT_FAIL(f_valloc(SIZE_MAX), ENOMEM);
  EXPECT_FAIL(f_valloc(SIZE_MAX - 4095), ENOMEM);
  EXPECT_FAIL(f_pvalloc(SIZE_MAX), ENOMEM);
  EXPECT_FAIL(f_pvalloc(SIZE_MAX - 4095), ENOMEM);
  p = f_pvalloc(0);
  CHECK(p && (uintptr_t)p % 4096 == 0 && malloc_usable_size(p) >= 4096);
  free(p);
  return 0;
}

int main(void) {
  int failed = run_case("errno rules of the aligned family", errno_rules, 30);
  failed |= run_case("every alignment to 1 GiB, sizes 0, 1, a-1, a, a+1", sweep, 30);
  return failed;
}
