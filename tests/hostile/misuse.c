/* Heap misuse must end in a report, never in a silent overlap, a planted
 * address or a bare SIGSEGV (issue 11). Each case misuses the heap in a
 * child process with stderr captured; the child must die of SIGABRT after a
 * message that names the misuse and the cache. If the misuse returns, the
 * child says "CONTINUED" and exits 0: a failure.
 *
 * The old code (b6a9ea6) took `free(p + 16)` and a far double free
 * silently (two later mallocs returned the same block), returned a freed
 * block from realloc, and crashed with SIGSEGV in KmemCache::fill on a
 * corrupted freelist.
 *
 * `misuse CASE` runs one case in the foreground (for a debugger). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>

#include "hostile.h"

/* Through volatile pointers: the compiler must not see (and warn about, or
 * drop) the misuse. */
static void* (*volatile f_malloc)(size_t) = malloc;
static void (*volatile f_free)(void*) = free;
static void* (*volatile f_realloc)(void*, size_t) = realloc;
static int (*volatile f_trim)(size_t) = malloc_trim;
static void* (*volatile f_memset)(void*, int, size_t) = memset;

enum { kObj = 64, kKeep = 512 };
static char* keep[kKeep];

/* kKeep live 64-byte objects, so the slabs holding them are not given back
 * when the sheaves are flushed. */
static void fill_keep(void) {
  for (int i = 0; i < kKeep; ++i) CHECK((keep[i] = f_malloc(kObj)) != NULL);
}

/* Frees x and flushes every cache to the slabs: x ends on its slab's
 * freelist, its first word an encoded next pointer. */
static void free_to_slab(char* x) {
  f_free(x);
  f_trim(0);
}

/* Many allocations of x's size: the slab freelists are walked. */
static void allocate_more(void) {
  for (int i = 0; i < 8192; ++i) f_malloc(kObj);
}

/* An index i with keep[i] + kObj == keep[j] for some j (neighbours in one
 * slab); *j gets the neighbour. */
static int neighbours(int* j) {
  for (int i = 0; i < kKeep; ++i)
    for (int k = 0; k < kKeep; ++k)
      if (keep[i] + kObj == keep[k]) {
        *j = k;
        return i;
      }
  CHECK(!"no two neighbouring objects");
  return -1;
}

static void interior_free(void) {
  char* p = f_malloc(kObj);
  f_free(p + 16);
}

static void double_free_near(void) {
  void* p = f_malloc(kObj);
  f_free(p);
  f_free(p);
}

/* free(p), eight other frees, free(p): p is no longer on top of the sheaf. */
static void double_free_far(void) {
  void* p = f_malloc(kObj);
  void* q[8];
  for (int i = 0; i < 8; ++i) q[i] = f_malloc(kObj);
  f_free(p);
  for (int i = 0; i < 8; ++i) f_free(q[i]);
  f_free(p);
}

/* The first free reached the slab's freelist. */
static void double_free_in_slab(void) {
  fill_keep();
  free_to_slab(keep[kKeep / 2]);
  f_free(keep[kKeep / 2]);
}

static void* free_arg(void* p) {
  f_free(p);
  return NULL;
}

/* Freed here, freed again by another thread. */
static void double_free_other_thread(void) {
  void* p = f_malloc(kObj);
  f_free(p);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_arg, p) == 0);
  pthread_join(t, NULL);
}

static void realloc_freed(void) {
  void* p = f_malloc(kObj);
  f_free(p);
  f_realloc(p, 40);
}

static void realloc_interior(void) {
  char* p = f_malloc(kObj);
  f_realloc(p + 8, 40);
}

static void write_after_free(void) {
  fill_keep();
  char* x = keep[kKeep / 2];
  free_to_slab(x);
  f_memset(x, 0x41, 8);
  allocate_more();
}

/* A freelist pointer overwritten with an address of the attacker's choice. */
static void planted_address(void) {
  static char target[4096];
  fill_keep();
  char* x = keep[kKeep / 2];
  free_to_slab(x);
  *(char**)x = target;
  allocate_more();
}

/* Writing n bytes past a live object into its free neighbour. */
static void overflow(size_t n) {
  fill_keep();
  int j, i = neighbours(&j);
  free_to_slab(keep[j]);
  f_memset(keep[i], 0x41, kObj + n);
  allocate_more();
}
static void overflow_8(void) {
  overflow(8);
}
static void overflow_16(void) {
  overflow(16);
}

enum { kLarge = 100000, kHuge = 8 << 20 };

static void large_double_free(void) {
  void* p = f_malloc(kLarge);
  f_free(p);
  f_free(p);
}

static void large_interior_free(void) {
  char* p = f_malloc(kLarge);
  f_free(p + 8192);
}

static void large_realloc_freed(void) {
  void* p = f_malloc(kLarge);
  f_free(p);
  f_realloc(p, 2 * kLarge);
}

static void huge_double_free(void) {
  void* p = f_malloc(kHuge);
  f_free(p);
  f_free(p);
}

static void huge_interior_free(void) {
  char* p = f_malloc(kHuge);
  f_free(p + 4096);
}

static void huge_realloc_freed(void) {
  void* p = f_malloc(kHuge);
  f_free(p);
  f_realloc(p, 2 * kHuge);
}

struct misuse {
  const char* name;
  void (*fn)(void);
  const char* expect; /* in the report */
  const char* where;  /* the cache or kind of block it names */
};

static const struct misuse kCases[] = {
    {"interior_free", interior_free, "invalid pointer", "kmalloc-64"},
    {"double_free_near", double_free_near, "double free", "kmalloc-64"},
    {"double_free_far", double_free_far, "double free", "kmalloc-64"},
    {"double_free_in_slab", double_free_in_slab, "double free", "kmalloc-64"},
    {"double_free_other_thread", double_free_other_thread, "double free", "kmalloc-64"},
    {"realloc_freed", realloc_freed, "realloc of", "kmalloc-64"},
    {"realloc_interior", realloc_interior, "invalid pointer", "kmalloc-64"},
    {"write_after_free", write_after_free, "freelist corrupted", "kmalloc-64"},
    {"planted_address", planted_address, "freelist corrupted", "kmalloc-64"},
    {"overflow_8", overflow_8, "freelist corrupted", "kmalloc-64"},
    {"overflow_16", overflow_16, "freelist corrupted", "kmalloc-64"},
    {"large_double_free", large_double_free, "double free", "large block"},
    {"large_interior_free", large_interior_free, "invalid pointer", "large block"},
    {"large_realloc_freed", large_realloc_freed, "realloc of", "large block"},
    {"huge_double_free", huge_double_free, "double free", "direct mapping"},
    {"huge_interior_free", huge_interior_free, "invalid pointer", "direct mapping"},
    {"huge_realloc_freed", huge_realloc_freed, "realloc of", "direct mapping"},
};

/* Runs c in a child; returns 0 when it aborted with the expected report. */
static int check_case(const struct misuse* c) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    c->fn();
    fprintf(stderr, "CONTINUED\n");
    _exit(0);
  }
  close(fds[1]);
  char out[8192];
  size_t len = 0;
  ssize_t r;
  while (len + 1 < sizeof out && (r = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
    len += (size_t)r;
  out[len] = 0;
  close(fds[0]);
  int st = wait_with_deadline(pid, 60);
  char* nl = strchr(out, '\n');
  if (nl) *nl = 0;
  int ok = st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(out, c->expect) &&
           strstr(out, c->where);
  printf("%-26s %s  %s\n", c->name, ok ? "ok    " : "FAILED", out);
  if (!ok && st >= 0 && WIFSIGNALED(st)) printf("%-26s (signal %d)\n", "", WTERMSIG(st));
  return !ok;
}

int main(int argc, char** argv) {
  int n = (int)(sizeof kCases / sizeof kCases[0]), failed = 0;
  for (int i = 0; i < n; ++i) {
    if (argc > 1 && strcmp(argv[1], kCases[i].name) != 0) continue;
    if (argc > 1) {
      kCases[i].fn();
      return 0;
    }
    failed += check_case(&kCases[i]);
  }
  printf("misuse: %d of %d cases reported\n", n - failed, n);
  return failed != 0;
}
