/* Requests that can never fit fail at once, without direct reclaim (in the
 * manner of glibc's tst-malloc-too-large), and leave the block of a failed
 * realloc intact; a request that might fit after reclaim still gets it.
 *
 * "At once" is checked by counting, not timing: numaslub_vmstat's
 * direct_reclaim counter must not move over ~1000 impossible sizes, each
 * tried through every function (malloc, calloc, realloc, reallocarray and
 * the aligned family). Each used to drain every cache first (0.2-2 ms).
 * realloc(p, SIZE_MAX - k) of a large block used to free p's pages and
 * return p with usable size 0. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "hostile.h"

#if NS_LINKED
size_t numaslub_vmstat(char* buf, size_t len);
#endif

/* Through volatile pointers: the compiler must not fold or warn about the
 * sizes. */
static void* (*volatile f_malloc)(size_t) = malloc;
static void* (*volatile f_calloc)(size_t, size_t) = calloc;
static void* (*volatile f_realloc)(void*, size_t) = realloc;
static void* (*volatile f_reallocarray)(void*, size_t, size_t) = reallocarray;
static int (*volatile f_posix_memalign)(void**, size_t, size_t) = posix_memalign;
static void* (*volatile f_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void* (*volatile f_memalign)(size_t, size_t) = memalign;
static void* (*volatile f_valloc)(size_t) = valloc;
static void* (*volatile f_pvalloc)(size_t) = pvalloc;

static size_t (*g_vmstat)(char*, size_t);

static unsigned long direct_reclaims(void) {
  static char buf[8192];
  g_vmstat(buf, sizeof buf);
  const char* s = strstr(buf, "direct_reclaim ");
  CHECK(s != NULL);
  return strtoul(s + strlen("direct_reclaim "), NULL, 10);
}

#define EXPECT_ENOMEM(call) \
  do {                      \
    errno = 0;              \
    CHECK((call) == NULL);  \
    CHECK(errno == ENOMEM); \
  } while (0)

/* A block of each kind (slab, large, direct mapping) that a failed realloc must keep. */
static const size_t k_kept[] = {40, 100000, 3u << 20, 6u << 20};
#define N_KEPT (sizeof k_kept / sizeof k_kept[0])
static unsigned char* g_kept[N_KEPT];
static size_t g_kept_usable[N_KEPT];

static void check_kept(void) {
  for (size_t i = 0; i < N_KEPT; ++i) {
    CHECK(malloc_usable_size(g_kept[i]) == g_kept_usable[i]);
    for (size_t o = 0; o < k_kept[i]; o += 509) CHECK(g_kept[i][o] == (unsigned char)(o * 7 + i));
    CHECK(g_kept[i][k_kept[i] - 1] == 0xee);
  }
}

/* Every allocation function, with size: all must fail with ENOMEM. */
static void test_size(size_t size) {
  EXPECT_ENOMEM(f_malloc(size));
  EXPECT_ENOMEM(f_realloc(NULL, size));
  for (size_t n = 1; n <= 8; n *= 2) {
    if (size % n) break;
    EXPECT_ENOMEM(f_calloc(n, size / n));
    EXPECT_ENOMEM(f_calloc(size / n, n));
    EXPECT_ENOMEM(f_reallocarray(NULL, n, size / n));
    EXPECT_ENOMEM(f_reallocarray(NULL, size / n, n));
  }
  for (size_t a = 1; a <= 4096; a *= 2) {
    EXPECT_ENOMEM(f_aligned_alloc(a, size));
    EXPECT_ENOMEM(f_memalign(a, size));
    if (a >= sizeof(void*)) {
      void* p = (void*)1;
      errno = 0;
      CHECK(f_posix_memalign(&p, a, size) == ENOMEM);
      CHECK(p == (void*)1 && errno == 0);
    }
  }
  EXPECT_ENOMEM(f_valloc(size));
  EXPECT_ENOMEM(f_pvalloc(size));
}

/* realloc of every kind of block to size fails and keeps the block. */
static void test_realloc(size_t size) {
  for (size_t i = 0; i < N_KEPT; ++i) {
    EXPECT_ENOMEM(f_realloc(g_kept[i], size));
    for (size_t n = 1; n <= 8; n *= 2)
      if (size % n == 0) {
        EXPECT_ENOMEM(f_reallocarray(g_kept[i], n, size / n));
        EXPECT_ENOMEM(f_reallocarray(g_kept[i], size / n, n));
      }
  }
  check_kept();
}

/* glibc's three ranges, thinned to ~1400 sizes: just below SIZE_MAX, just
 * above PTRDIFF_MAX, and 2^50 steps from SIZE_MAX down to 2^50. */
static unsigned for_each_size(void (*fn)(size_t)) {
  unsigned sizes = 0;
  for (size_t i = 0; i < 300; ++i, ++sizes) fn(SIZE_MAX - i);
  for (size_t i = 1; i <= 300; ++i, ++sizes) fn((size_t)PTRDIFF_MAX + i);
  for (size_t msbs = 16383; msbs >= 1; msbs -= 1 + msbs / 64, sizes += 2) {
    fn((msbs << 50) | (((size_t)1 << 50) - 1));
    fn(msbs << 50);
  }
  return sizes;
}

static unsigned long g_before;

/* Checked after every size, so a reclaim names the size that ran it (and
 * the old code fails in milliseconds, not after minutes of reclaim). */
static void test_size_no_reclaim(size_t size) {
  test_size(size);
  if (direct_reclaims() != g_before) {
    fprintf(stderr, "direct reclaim ran for size %#zx\n", size);
    CHECK(0);
  }
}

static int no_reclaim(void) {
  unsigned long before = g_before = direct_reclaims();
  unsigned sizes = for_each_size(test_size_no_reclaim);
  /* Alignments that no mapping can honour, with small sizes. */
  for (unsigned k = 47; k < 64; ++k) {
    EXPECT_ENOMEM(f_aligned_alloc((size_t)1 << k, 1));
    EXPECT_ENOMEM(f_memalign((size_t)1 << k, 100));
    void* p;
    CHECK(f_posix_memalign(&p, (size_t)1 << k, 0) == ENOMEM);
  }
  unsigned long after = direct_reclaims();
  fprintf(stderr, "no_reclaim: %u sizes, direct reclaims %lu -> %lu\n", sizes, before, after);
  CHECK(after == before);
  return 0;
}

static int realloc_keeps_block(void) {
  unsigned long before = direct_reclaims();
  for_each_size(test_realloc);
  CHECK(direct_reclaims() == before);
  return 0;
}

static size_t vm_size(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  size_t kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %zu kB", &kb) == 1) break;
  if (f) fclose(f);
  return kb << 10;
}

/* Under RLIMIT_AS, a mapping that fits under the limit but not beside what
 * is mapped now might fit once reclaim unmaps what it caches: it still gets
 * direct reclaim. One larger than the limit itself never fits: none. */
static int reclaim_still_runs(void) {
  /* Pad VmSize, so the request below is under the limit whatever the heap
   * reserved. */
  CHECK(mmap(NULL, 256u << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) !=
        MAP_FAILED);
  size_t used = vm_size();
  CHECK(used > 0);
  struct rlimit lim = {used + (32u << 20), used + (32u << 20)};
  CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
  unsigned long before = direct_reclaims();
  EXPECT_ENOMEM(f_malloc(64u << 20));
  CHECK(direct_reclaims() > before);
  before = direct_reclaims();
  EXPECT_ENOMEM(f_malloc(lim.rlim_cur + 4096));
  EXPECT_ENOMEM(f_memalign(64u << 20, lim.rlim_cur));
  CHECK(direct_reclaims() == before);
  return 0;
}

int main(void) {
#if NS_LINKED
  g_vmstat = numaslub_vmstat;
#else
  g_vmstat = (size_t(*)(char*, size_t))dlsym(RTLD_DEFAULT, "numaslub_vmstat");
#endif
  CHECK(g_vmstat != NULL);
  for (size_t i = 0; i < N_KEPT; ++i) {
    g_kept[i] = f_malloc(k_kept[i]);
    CHECK(g_kept[i] != NULL);
    for (size_t o = 0; o < k_kept[i]; ++o) g_kept[i][o] = (unsigned char)(o * 7 + i);
    g_kept[i][k_kept[i] - 1] = 0xee;
    g_kept_usable[i] = malloc_usable_size(g_kept[i]);
  }

  int failed = run_case("impossible requests fail without direct reclaim", no_reclaim, 60);
  failed |= run_case("a failed realloc keeps its block", realloc_keeps_block, 60);
  failed |= run_case("a request that might fit still gets direct reclaim", reclaim_still_runs, 60);
  check_kept();
  for (size_t i = 0; i < N_KEPT; ++i) free(g_kept[i]);
  return failed;
}
