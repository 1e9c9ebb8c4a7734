/* The operations of the API fuzz tests: tests/hostile/api_fuzz.c runs them
 * from a few threads on random choices for a bounded time (ctest), and
 * tests/fuzz/api_fuzz.c from libFuzzer's inputs (longer runs). What they
 * check is described in api_fuzz.c. Include once, after _GNU_SOURCE. */
#ifndef NS_API_OPS_H
#define NS_API_OPS_H
#include <dlfcn.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void (*free_sized_fn)(void*, size_t);
typedef void (*free_aligned_sized_fn)(void*, size_t, size_t);
#if NS_LINKED
/* C23; not in glibc 2.36's headers. */
void free_sized(void* p, size_t size);
void free_aligned_sized(void* p, size_t align, size_t size);
#endif

/* Calls go through volatile pointers: the compiler must neither fold nor
 * warn about impossible sizes it can see. */
static void* (*volatile f_malloc)(size_t) = malloc;
static void* (*volatile f_calloc)(size_t, size_t) = calloc;
static void* (*volatile f_realloc)(void*, size_t) = realloc;
static void* (*volatile f_reallocarray)(void*, size_t, size_t) = reallocarray;
static int (*volatile f_posix_memalign)(void**, size_t, size_t) = posix_memalign;
static void* (*volatile f_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void* (*volatile f_memalign)(size_t, size_t) = memalign;
static void* (*volatile f_valloc)(size_t) = valloc;
static void* (*volatile f_pvalloc)(size_t) = pvalloc;
static free_sized_fn f_free_sized;
static free_aligned_sized_fn f_free_aligned_sized;

#define NSLOTS 256
#define MAX_THREADS 16
#define LIVE_BUDGET ((size_t)256 << 20)
#define PAGE 4096u

/* ---- random numbers ------------------------------------------------------ */

static uint64_t splitmix(uint64_t* s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* ---- per-thread log, printed on failure ---------------------------------- */

#define LOG_LEN 24
struct logent {
  uint64_t n;
  const char* op;
  int slot;
  size_t size, align;
  void *in, *out;
};
struct worker {
  int id;
  uint64_t rng;
  uint64_t ops;
  /* Under libFuzzer, the input makes every choice (8 bytes each) instead
   * of rng; done once it is used up. */
  const unsigned char* in;
  size_t in_len;
  int done;
  struct logent log[LOG_LEN];
};

/* The next random choice. */
static uint64_t rnd(struct worker* w) {
  if (!w->in) return splitmix(&w->rng);
  uint64_t v = 0;
  size_t n = w->in_len < 8 ? w->in_len : 8;
  memcpy(&v, w->in, n);
  w->in += n;
  w->in_len -= n;
  if (n == 0) w->done = 1;
  return v;
}

/* How a failure ends the process: a plain exit for ctest, an abort for
 * libFuzzer (which then saves the input). */
#ifndef API_OPS_FAIL_EXIT
#define API_OPS_FAIL_EXIT() _exit(1)
#endif

static uint64_t g_seed;
static pthread_mutex_t g_fail_lock = PTHREAD_MUTEX_INITIALIZER;

static void note(struct worker* w, const char* op, int slot, size_t size, size_t align, void* in,
                 void* out) {
  struct logent* e = &w->log[w->ops % LOG_LEN];
  e->n = w->ops;
  e->op = op;
  e->slot = slot;
  e->size = size;
  e->align = align;
  e->in = in;
  e->out = out;
}

__attribute__((format(printf, 2, 3), noreturn)) static void fail(struct worker* w, const char* fmt,
                                                                 ...) {
  int saved = errno;
  pthread_mutex_lock(&g_fail_lock); /* one report; the others wait for _exit */
  fprintf(stderr, "api_fuzz: FAIL seed=0x%" PRIx64 " thread=%d op=%" PRIu64 " (errno %d): ", g_seed,
          w->id, w->ops, saved);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nlast operations of thread %d:\n", w->id);
  for (uint64_t i = w->ops >= LOG_LEN ? w->ops - LOG_LEN + 1 : 0; i <= w->ops; ++i) {
    struct logent* e = &w->log[i % LOG_LEN];
    if (e->n != i || !e->op) continue;
    fprintf(stderr, "  #%" PRIu64 " %-18s slot %3d size %#zx align %#zx in %p out %p\n", e->n,
            e->op, e->slot, e->size, e->align, e->in, e->out);
  }
  if (!w->in) fprintf(stderr, "replay: NS_FUZZ_SEED=0x%" PRIx64 " NS_FUZZ_THREADS=1\n", g_seed);
  fflush(stderr);
  API_OPS_FAIL_EXIT();
}

/* ---- the contents pattern ------------------------------------------------ */

/* A block of `size` bytes is checked at its "marked" offsets: the first and
 * the last 4 KiB, and the first 64 bytes of every page between (all of a
 * block up to 8 KiB). The byte at offset o is pat(tag, o), so a block keeps
 * its pattern when realloc moves it. */
static inline unsigned char pat(uint64_t tag, size_t o) {
  return (unsigned char)((tag + o * 0x9E3779B97F4A7C15ull) >> 56);
}

enum { FILL, CHECK, CHECK_ZERO };

/* Applies mode to the marked offsets of a size-byte block that lie in
 * [lo, hi). Returns the first offset that fails a check + 1, or 0. */
static size_t marks(unsigned char* p, size_t size, size_t lo, size_t hi, uint64_t tag, int mode) {
  /* Up to 8 KiB: every byte. Above: [0, 4K), the page heads between, and
   * the last 4K. */
  size_t seg[3][2] = {{0, size}, {0, 0}, {0, 0}};
  size_t nseg = 1;
  if (size > 2 * PAGE) {
    seg[0][1] = PAGE;
    seg[1][0] = PAGE;
    seg[1][1] = size - PAGE;
    seg[2][0] = size - PAGE;
    seg[2][1] = size;
    nseg = 3;
  }
  for (size_t s = 0; s < nseg; ++s) {
    size_t a = seg[s][0] > lo ? seg[s][0] : lo, b = seg[s][1] < hi ? seg[s][1] : hi;
    for (size_t o = a; o < b; ++o) {
      if (s == 1 && nseg == 3 && (o & (PAGE - 1)) >= 64) {
        o |= PAGE - 1; /* the rest of this page is unmarked */
        continue;
      }
      switch (mode) {
        case FILL:
          p[o] = pat(tag, o);
          break;
        case CHECK:
          if (p[o] != pat(tag, o)) return o + 1;
          break;
        default:
          if (p[o] != 0) return o + 1;
      }
    }
  }
  return 0;
}

/* ---- live blocks: slots and the overlap registry ------------------------ */

enum kind { K_MALLOC, K_CALLOC, K_REALLOC, K_POSIX, K_ALIGNED, K_MEMALIGN, K_VALLOC, K_PVALLOC };

struct slot {
  atomic_int busy;
  unsigned char* p; /* null: empty */
  size_t req;       /* bytes asked for */
  size_t align;     /* alignment asked for (1: none) */
  size_t usable;    /* malloc_usable_size at allocation */
  uint64_t tag;
  enum kind kind;
};
static struct slot g_slot[NSLOTS];

/* [lo, hi) of each slot's live block; lo == hi when empty. A range is
 * removed before its block is freed or resized and added after the block
 * was returned, so two live ranges can overlap only if the allocator gave
 * out memory that was still in use. */
static struct { uintptr_t lo, hi; } g_range[NSLOTS];
static pthread_mutex_t g_range_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_size_t g_live_bytes;

static void range_add(struct worker* w, int i, void* p, size_t len) {
  uintptr_t lo = (uintptr_t)p, hi = lo + (len ? len : 1);
  pthread_mutex_lock(&g_range_lock);
  for (int j = 0; j < NSLOTS; ++j) {
    if (j == i || g_range[j].lo == g_range[j].hi) continue;
    if (lo < g_range[j].hi && g_range[j].lo < hi) {
      uintptr_t jlo = g_range[j].lo, jhi = g_range[j].hi;
      pthread_mutex_unlock(&g_range_lock);
      fail(w,
           "block [%#" PRIxPTR ", %#" PRIxPTR ") of slot %d overlaps live block [%#" PRIxPTR
           ", %#" PRIxPTR ") of slot %d",
           lo, hi, i, jlo, jhi, j);
    }
  }
  g_range[i].lo = lo;
  g_range[i].hi = hi;
  pthread_mutex_unlock(&g_range_lock);
  atomic_fetch_add(&g_live_bytes, len);
}

static void range_del(int i) {
  pthread_mutex_lock(&g_range_lock);
  atomic_fetch_sub(&g_live_bytes, g_range[i].hi - g_range[i].lo);
  g_range[i].lo = g_range[i].hi = 0;
  pthread_mutex_unlock(&g_range_lock);
}

/* ---- sizes and alignments ------------------------------------------------ */

/* Sizes that must fail: larger than any address space (> PTRDIFF_MAX, or
 * beyond 2^60, more than any machine maps). */
static const size_t k_impossible[] = {
    SIZE_MAX,        SIZE_MAX - 1,         SIZE_MAX - 15,         SIZE_MAX - 4095,
    SIZE_MAX - 4096, SIZE_MAX - (1 << 20), SIZE_MAX / 2,          SIZE_MAX / 2 + 1,
    (size_t)1 << 62, (size_t)1 << 60,      ((size_t)1 << 60) + 1, SIZE_MAX - (4u << 20),
};
#define N_IMPOSSIBLE (sizeof k_impossible / sizeof k_impossible[0])

static size_t g_edge[128];
static size_t g_nedge;

static void init_edges(void) {
  static const size_t fixed[] = {0,
                                 1,
                                 2,
                                 7,
                                 8,
                                 15,
                                 16,
                                 17,
                                 4095,
                                 4096,
                                 4097,
                                 32767,
                                 32768,
                                 32769,
                                 32768 + 4096,
                                 65535,
                                 65536,
                                 65537,
                                 (4u << 20) - 1,
                                 4u << 20,
                                 (4u << 20) + 1,
                                 (4u << 20) + 4096,
                                 (8u << 20) - 1,
                                 8u << 20};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; ++i) g_edge[g_nedge++] = fixed[i];
  /* Size-class boundaries: 2^k * {1, 5/4, 3/2, 7/4}, and one past. */
  for (unsigned k = 7; k <= 14 && g_nedge + 8 <= sizeof g_edge / sizeof g_edge[0]; ++k)
    for (unsigned q = 4; q < 8; ++q) {
      size_t b = ((size_t)1 << k) * q / 4;
      g_edge[g_nedge++] = b;
      g_edge[g_nedge++] = b + 1;
    }
}

/* A size a block may have: mostly small, some large and some above the
 * largest buddy block, and the edges. Over the budget of live bytes, small
 * sizes only. */
static size_t pick_size(struct worker* w) {
  uint64_t r = rnd(w);
  unsigned c = r % 100;
  r >>= 8;
  if (atomic_load_explicit(&g_live_bytes, memory_order_relaxed) > LIVE_BUDGET) return r % 512;
  if (c < 44) return r % 257;
  if (c < 66) return r % 4097;
  if (c < 80) return 4096 + r % (40000 - 4096);
  if (c < 88) return (32u << 10) - 64 + r % ((4u << 20) + 8192 - (32u << 10));
  if (c < 90) return (4u << 20) + r % (4u << 20);
  return g_edge[r % g_nedge];
}

static size_t pick_align(struct worker* w) {
  uint64_t r = rnd(w);
  unsigned c = r % 100, k;
  r >>= 8;
  if (c < 45)
    k = r % 13; /* 1 .. 4 KiB */
  else if (c < 85)
    k = 12 + r % 12; /* 4 KiB .. 8 MiB */
  else
    k = 23 + r % 8; /* 8 MiB .. 1 GiB */
  return (size_t)1 << k;
}

/* ---- operations ------------------------------------------------------------ */

static void check_block(struct worker* w, struct slot* s, int i, const char* when) {
  size_t bad = marks(s->p, s->req, 0, s->req, s->tag, CHECK);
  if (bad)
    fail(w, "%s: slot %d block %p (%zu bytes) corrupt at offset %zu", when, i, (void*)s->p, s->req,
         bad - 1);
  size_t u = malloc_usable_size(s->p);
  if (u != s->usable)
    fail(w, "%s: slot %d block %p usable size changed from %zu to %zu", when, i, (void*)s->p,
         s->usable, u);
}

/* Records a new block in slot i and fills it. */
static void adopt(struct worker* w, struct slot* s, int i, void* p, size_t req, size_t align,
                  enum kind kind, int zeroed) {
  if ((uintptr_t)p % align) fail(w, "slot %d: %p not aligned to %#zx (size %zu)", i, p, align, req);
  size_t u = malloc_usable_size(p);
  size_t need = req;
  if (kind == K_PVALLOC) need = (req + PAGE - 1) / PAGE * PAGE + (req == 0) * PAGE;
  if (u < need) fail(w, "slot %d: %p usable size %zu below the %zu asked", i, p, u, need);
  range_add(w, i, p, u);
  s->p = p;
  s->req = req;
  s->align = align;
  s->usable = u;
  s->kind = kind;
  s->tag = rnd(w);
  if (zeroed) {
    size_t bad = marks(s->p, req, 0, req, 0, CHECK_ZERO);
    if (bad) fail(w, "slot %d: calloc block %p not zero at %zu", i, p, bad - 1);
  }
  marks(s->p, req, 0, req, s->tag, FILL);
}

static void expect_enomem(struct worker* w, const char* op, void* r, size_t size, size_t align) {
  if (r != NULL) fail(w, "%s(size %#zx, align %#zx) succeeded: %p", op, size, align, r);
  if (errno != ENOMEM)
    fail(w, "%s(size %#zx, align %#zx): errno %d, not ENOMEM", op, size, align, errno);
}

/* Fills an empty slot through one of the allocation functions. */
static void op_alloc(struct worker* w, struct slot* s, int i) {
  uint64_t r = rnd(w);
  size_t size = pick_size(w), align = 1;
  void* p = NULL;
  enum kind kind;
  int zeroed = 0;
  /* Size 0 with a large alignment is a case of its own: give it weight. */
  if ((r >> 8) % 16 == 0) size = 0;
  switch (r % 10) {
    case 0: {
      unsigned n = 1 + (r >> 16) % 8;
      size /= n;
      p = f_calloc(n, size);
      note(w, "calloc", i, n * size, n, NULL, p);
      size *= n;
      kind = K_CALLOC;
      zeroed = 1;
      break;
    }
    case 1: {
      unsigned n = 1 + (r >> 16) % 8;
      size /= n;
      p = f_reallocarray(NULL, n, size);
      note(w, "reallocarray(0)", i, n * size, n, NULL, p);
      size *= n;
      kind = K_REALLOC;
      break;
    }
    case 2:
      p = f_realloc(NULL, size);
      note(w, "realloc(0)", i, size, 0, NULL, p);
      kind = K_REALLOC;
      break;
    case 3:
      align = pick_align(w);
      if (align < sizeof(void*)) align = sizeof(void*);
      {
        int e = f_posix_memalign(&p, align, size);
        note(w, "posix_memalign", i, size, align, NULL, e ? NULL : p);
        if (e) {
          errno = e;
          p = NULL;
        }
      }
      kind = K_POSIX;
      break;
    case 4:
      align = pick_align(w);
      p = f_aligned_alloc(align, size);
      note(w, "aligned_alloc", i, size, align, NULL, p);
      kind = K_ALIGNED;
      break;
    case 5: {
      size_t asked = pick_align(w);
      /* Not a power of two now and then: memalign rounds it up. */
      if ((r >> 20) % 4 == 0 && asked > 2) asked = asked - 1 - (r >> 24) % (asked / 2);
      align = asked;
      while (align & (align - 1)) align += align & -align;
      p = f_memalign(asked, size);
      note(w, "memalign", i, size, asked, NULL, p);
      kind = K_MEMALIGN;
      break;
    }
    case 6:
      align = PAGE;
      if ((r >> 20) % 2) {
        p = f_valloc(size);
        note(w, "valloc", i, size, align, NULL, p);
        kind = K_VALLOC;
      } else {
        p = f_pvalloc(size);
        note(w, "pvalloc", i, size, align, NULL, p);
        kind = K_PVALLOC;
      }
      break;
    default:
      p = f_malloc(size);
      note(w, "malloc", i, size, 0, NULL, p);
      kind = K_MALLOC;
  }
  if (!p) fail(w, "slot %d: allocation of %zu bytes (align %#zx) failed", i, size, align);
  adopt(w, s, i, p, size, align, kind, zeroed);
}

static void op_free(struct worker* w, struct slot* s, int i) {
  check_block(w, s, i, "free");
  uint64_t r = rnd(w);
  range_del(i);
  void* p = s->p;
  s->p = NULL;
  int e = (int)(r >> 32);
  errno = e;
  if (r % 4 == 0 && f_free_aligned_sized && s->kind == K_ALIGNED) {
    note(w, "free_aligned_sized", i, s->req, s->align, p, NULL);
    f_free_aligned_sized(p, s->align, s->req);
  } else if (r % 4 == 1 && f_free_sized &&
             (s->kind == K_MALLOC || s->kind == K_CALLOC || s->kind == K_REALLOC)) {
    note(w, "free_sized", i, s->req, 0, p, NULL);
    f_free_sized(p, s->req);
  } else {
    note(w, "free", i, s->req, 0, p, NULL);
    free(p);
  }
  if (errno != e) fail(w, "free changed errno");
}

static void op_realloc(struct worker* w, struct slot* s, int i) {
  check_block(w, s, i, "realloc");
  uint64_t r = rnd(w);
  void* old = s->p;
  size_t size;
  if (r % 32 == 0) {
    /* Cannot fit: NULL + ENOMEM, the block intact and still usable. */
    size = r % 64 == 0 ? k_impossible[(r >> 8) % N_IMPOSSIBLE] : SIZE_MAX - (r >> 8) % 8192;
    errno = 0;
    void* q;
    if ((r >> 40) % 2) {
      q = f_realloc(old, size);
      note(w, "realloc(huge)", i, size, 0, old, q);
    } else {
      q = f_reallocarray(old, 2 + (r >> 41) % 7, size / 2 + 1); /* overflows */
      note(w, "reallocarray(huge)", i, size, 0, old, q);
    }
    if (q == old)
      fail(w, "realloc of slot %d to %#zx bytes returned the block (usable now %zu)", i, size,
           malloc_usable_size(old));
    expect_enomem(w, "realloc", q, size, 0);
    check_block(w, s, i, "after failed realloc");
    return;
  }
  size = r % 8 == 1 ? 0 : pick_size(w);
  range_del(i);
  void* q;
  if ((r >> 8) % 4 == 0 && size) {
    unsigned n = 1 + (r >> 16) % 4;
    size /= n;
    q = f_reallocarray(old, n, size);
    size *= n;
    note(w, "reallocarray", i, size, n, old, q);
  } else {
    q = f_realloc(old, size);
    note(w, "realloc", i, size, 0, old, q);
  }
  if (!q) {
    if (size == 0) { /* glibc's realloc(p, 0): freed */
      s->p = NULL;
      return;
    }
    fail(w, "realloc of slot %d from %zu to %zu bytes failed", i, s->req, size);
  }
  size_t keep = s->req < size ? s->req : size;
  size_t bad = marks(q, s->req, 0, keep, s->tag, CHECK);
  if (bad)
    fail(w, "realloc of slot %d %p -> %p (%zu -> %zu bytes) lost the prefix at %zu", i, old, q,
         s->req, size, bad - 1);
  /* The block keeps its tag: the pattern is a function of the offset. */
  size_t u = malloc_usable_size(q);
  if (u < size) fail(w, "realloc of slot %d: usable size %zu below %zu", i, u, size);
  range_add(w, i, q, u);
  s->p = q;
  s->req = size;
  s->usable = u;
  s->align = 1;
  s->kind = K_REALLOC;
  marks(s->p, size, 0, size, s->tag, FILL);
}

/* Requests that must fail (and leave errno right), touching no slot. */
static void op_impossible(struct worker* w) {
  uint64_t r = rnd(w);
  size_t size = r % 2 ? k_impossible[(r >> 8) % N_IMPOSSIBLE] : SIZE_MAX - (r >> 8) % 65536;
  size_t align = (size_t)1 << ((r >> 32) % 64);
  void* p = NULL;
  errno = 0;
  switch ((r >> 40) % 8) {
    case 0:
      p = f_malloc(size);
      note(w, "malloc(huge)", -1, size, 0, NULL, p);
      expect_enomem(w, "malloc", p, size, 0);
      break;
    case 1: {
      size_t n = 2 + (r >> 48) % 1000;
      p = f_calloc(n, size / n + 1);
      note(w, "calloc(huge)", -1, size, n, NULL, p);
      expect_enomem(w, "calloc", p, size, n);
      break;
    }
    case 2:
      p = f_aligned_alloc(align, size);
      note(w, "aligned_alloc(huge)", -1, size, align, NULL, p);
      expect_enomem(w, "aligned_alloc", p, size, align);
      break;
    case 3:
      p = f_memalign(align, size);
      note(w, "memalign(huge)", -1, size, align, NULL, p);
      expect_enomem(w, "memalign", p, size, align);
      break;
    case 4: {
      if (align < sizeof(void*)) align = sizeof(void*);
      int saved = errno = (int)(r >> 50);
      int e = f_posix_memalign(&p, align, size);
      note(w, "posix_memalign(huge)", -1, size, align, NULL, e ? NULL : p);
      if (e != ENOMEM) fail(w, "posix_memalign(%#zx, %#zx) returned %d", align, size, e);
      if (errno != saved) fail(w, "posix_memalign changed errno");
      break;
    }
    case 5:
      p = f_valloc(size);
      note(w, "valloc(huge)", -1, size, PAGE, NULL, p);
      expect_enomem(w, "valloc", p, size, PAGE);
      break;
    case 6:
      p = f_pvalloc(size);
      note(w, "pvalloc(huge)", -1, size, PAGE, NULL, p);
      expect_enomem(w, "pvalloc", p, size, PAGE);
      break;
    default: {
      /* An alignment no mapping can honour, with a small size. */
      size_t a = (size_t)1 << (61 + (r >> 48) % 3);
      size_t sz = (r >> 50) % 100;
      p = f_memalign(a, sz);
      note(w, "memalign(huge align)", -1, sz, a, NULL, p);
      expect_enomem(w, "memalign", p, sz, a);
      errno = 0;
      p = f_aligned_alloc(a, sz);
      note(w, "aligned_alloc(huge align)", -1, sz, a, NULL, p);
      expect_enomem(w, "aligned_alloc", p, sz, a);
    }
  }
}

/* Looks up what glibc 2.36 lacks, and builds the edge sizes. */
static void api_ops_init(void) {
#if NS_LINKED
  f_free_sized = free_sized;
  f_free_aligned_sized = free_aligned_sized;
#else
  f_free_sized = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
  f_free_aligned_sized = (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
#endif
  init_edges();
}

/* One operation: an impossible request, or on a random slot (skipped when
 * another thread holds it) an allocation, a realloc or a free. */
static void api_step(struct worker* w) {
  uint64_t r = rnd(w);
  if (r % 64 == 0) {
    op_impossible(w);
    return;
  }
  int i = (int)((r >> 8) % NSLOTS);
  struct slot* s = &g_slot[i];
  if (atomic_exchange_explicit(&s->busy, 1, memory_order_acquire)) return;
  if (!s->p) {
    op_alloc(w, s, i);
  } else if ((r >> 32) % 4 == 0) {
    op_realloc(w, s, i);
  } else {
    op_free(w, s, i);
  }
  atomic_store_explicit(&s->busy, 0, memory_order_release);
}

/* Checks and frees every live block (no thread may be running). */
static void api_free_all(struct worker* w) {
  for (int i = 0; i < NSLOTS; ++i)
    if (g_slot[i].p) op_free(w, &g_slot[i], i);
}

#endif
