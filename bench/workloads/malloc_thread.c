// malloc_thread: the pattern of glibc's benchtests/bench-malloc-thread.c
// (mimalloc-bench's "glibc-thread").
//
// Each thread keeps a working set of -k slots (default 1024). A step picks a
// random slot, frees the block there and allocates a new one of a size
// drawn from an inverse-square distribution over [-s, -S] (default 4 B ..
// 32 KiB: three in four requests are 4..16 bytes, one in a thousand is
// above 4 KiB), as the glibc benchmark does; the sizes come from a
// per-thread table of 8000 precomputed draws. Every thread runs alone on
// its own blocks: no object crosses threads. Unlike the original (fixed
// time, iterations counted) the work is fixed: -n steps per thread.
//
//   malloc_thread [-t threads] [-n steps each] [-k slots] [-s min] [-S max] [-L limit_s]
#include <pthread.h>

#include "wl_args.h"

#define N_SIZES 8000

static int g_threads = 2, g_slots = 1024;
static long g_steps = 4000000;
static uint64_t g_min = 4, g_max = 32768;
static uint64_t* g_sums;

// Inverse square: density ~ 1/x^2 on [lo, hi], by inverting its CDF.
static uint32_t draw_size(wl_rng* r) {
  double u = (double)(wl_next(r) >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
  double a = 1.0 / (double)g_min, b = 1.0 / (double)g_max;
  double x = 1.0 / (a - u * (a - b));
  uint32_t s = (uint32_t)x;
  return s < g_min ? (uint32_t)g_min : s > g_max ? (uint32_t)g_max : s;
}

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  wl_rng r;
  wl_seed(&r, 4242 + (uint64_t)id);
  uint32_t* sizes = (uint32_t*)wl_xmalloc(N_SIZES * sizeof *sizes);
  for (int i = 0; i < N_SIZES; i++) sizes[i] = draw_size(&r);
  void** slot = (void**)calloc((size_t)g_slots, sizeof *slot);
  uint32_t* held = (uint32_t*)calloc((size_t)g_slots, sizeof *held);
  if (!slot || !held) wl_die("out of memory");
  uint64_t sum = 0;
  for (long n = 0; n < g_steps; n++) {
    uint64_t x = wl_next(&r);
    uint32_t k = (uint32_t)(x % (uint64_t)g_slots);
    uint32_t size = sizes[(x >> 32) % N_SIZES];
    if (slot[k] && *(uint8_t*)slot[k] != (uint8_t)held[k])
      wl_corrupt("malloc_thread", slot[k], held[k], *(uint8_t*)slot[k]);
    free(slot[k]);
    char* p = (char*)wl_xmalloc(size);
    *p = (char)size;  // one byte, as the glibc benchmark touches (almost) nothing
    slot[k] = p;
    held[k] = size;
    sum += size;
  }
  for (int k = 0; k < g_slots; k++) free(slot[k]);
  free(slot);
  free(held);
  free(sizes);
  g_sums[id] = sum;
  return NULL;
}

int main(int argc, char** argv) {
  const wl_opt opts[] = {{'t', WL_INT, &g_threads, "threads"},
                         {'n', WL_LONG, &g_steps, "steps"},
                         {'k', WL_INT, &g_slots, "slots"},
                         {'s', WL_SIZE, &g_min, "min"},
                         {'S', WL_SIZE, &g_max, "max"}};
  wl_parse_args(argc, argv, "malloc_thread", opts, WL_NOPTS(opts));
  if (g_threads < 1 || g_steps < 1 || g_slots < 1 || g_min < 1 || g_max < g_min ||
      g_max > UINT32_MAX)
    wl_die("bad arguments");
  g_sums = (uint64_t*)calloc((size_t)g_threads, sizeof *g_sums);
  if (!g_sums) wl_die("out of memory");
  uint64_t sum = 0;
  double el = wl_run_workers(g_threads, worker, g_sums, &sum);
  char extra[96];
  snprintf(extra, sizeof extra, "ops=%lld ops_per_s=%.0f", (long long)g_threads * g_steps,
           (double)g_threads * (double)g_steps / el);
  wl_report("malloc_thread", g_threads, el, sum, extra);
  free(g_sums);
  return 0;
}
