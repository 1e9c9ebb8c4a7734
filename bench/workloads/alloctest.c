// alloctest: the pattern of ithare's alloc-test (mimalloc-bench's
// "alloc-test1" / "alloc-testN"), rewritten: a random mix of allocations and
// frees over a large live set per thread.
//
// Each thread owns -k slots (default 65536), filled to about half first. A
// step picks a random slot: a full one is checked and freed, an empty one
// gets a new object, so the live set hovers at half the slots. Sizes are
// skewed to the small end: a power-of-two band b in [log2 min, log2 max]
// with probability falling as the square (u^2 over the bands), uniform
// within it (default 8 B .. 64 KiB: over half below 128 bytes, about one
// in six above 4 KiB). Each new object gets its first and last 8 bytes
// written (as the original fills a little of each), checked at its free.
// Threads share nothing.
//
//   alloctest [-t threads] [-k slots] [-n steps/thread] [-s min] [-S max] [-L limit_s]
#include <pthread.h>

#include "wl_args.h"

static int g_threads = 1, g_slots = 65536;
static long g_steps = 4000000;
static uint64_t g_min = 8, g_max = 65536;
static uint64_t* g_sums;

static uint64_t skewed_size(wl_rng* r) {
  int lb = 63 - __builtin_clzll(g_min), hb = 63 - __builtin_clzll(g_max);
  double u = (double)(wl_next(r) >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
  int b = lb + (int)(u * u * (double)(hb - lb + 1));
  uint64_t first = 1ull << b, last = (first << 1) - 1;
  if (first < g_min) first = g_min;
  if (last > g_max) last = g_max;
  return first + wl_next(r) % (last - first + 1);
}

typedef struct {
  uint64_t* p;
  uint64_t size;
} slot_t;

static void put(slot_t* s, wl_rng* r) {
  uint64_t size = skewed_size(r);
  uint64_t* p = (uint64_t*)wl_xmalloc(size);
  uint64_t stamp = (uint64_t)(uintptr_t)s ^ size;
  memset((char*)p + size - 8, (int)(stamp & 0xff), 8);  // before the head: they overlap below 16
  p[0] = stamp;
  s->p = p;
  s->size = size;
}

static void take(slot_t* s) {
  uint64_t want = (uint64_t)(uintptr_t)s ^ s->size;
  uint8_t tail = ((uint8_t*)s->p)[s->size - 1];
  if (s->p[0] != want || (s->size >= 16 && tail != (uint8_t)want))
    wl_corrupt("alloctest", s->p, want, s->p[0]);
  free(s->p);
  s->p = NULL;
}

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  wl_rng r;
  wl_seed(&r, 31337 + (uint64_t)id);
  slot_t* slot = (slot_t*)calloc((size_t)g_slots, sizeof *slot);
  if (!slot) wl_die("out of memory");
  uint64_t sum = 0;
  for (int k = 0; k < g_slots; k += 2) put(&slot[k], &r);
  for (long i = 0; i < g_steps; i++) {
    slot_t* s = &slot[wl_next(&r) % (uint64_t)g_slots];
    if (s->p) {
      sum = wl_mix(sum, s->size);
      take(s);
    } else {
      put(s, &r);
    }
  }
  for (int k = 0; k < g_slots; k++)
    if (slot[k].p) take(&slot[k]);
  free(slot);
  g_sums[id] = sum;
  return NULL;
}

int main(int argc, char** argv) {
  const wl_opt opts[] = {{'t', WL_INT, &g_threads, "threads"},
                         {'k', WL_INT, &g_slots, "slots"},
                         {'n', WL_LONG, &g_steps, "steps"},
                         {'s', WL_SIZE, &g_min, "min"},
                         {'S', WL_SIZE, &g_max, "max"}};
  wl_parse_args(argc, argv, "alloctest", opts, WL_NOPTS(opts));
  if (g_threads < 1 || g_slots < 2 || g_min < 8 || g_max < g_min) wl_die("bad arguments");
  g_sums = (uint64_t*)calloc((size_t)g_threads, sizeof *g_sums);
  uint64_t sum;
  double el = wl_run_workers(g_threads, worker, g_sums, &sum);
  char extra[64];
  snprintf(extra, sizeof extra, "ops=%lld", (long long)g_threads * g_steps);
  wl_report("alloctest", g_threads, el, sum, extra);
  free(g_sums);
  return 0;
}
