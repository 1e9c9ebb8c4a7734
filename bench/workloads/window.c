// window: a sliding window of live objects of random sizes, per thread.
//
// Each step frees the oldest object of the thread's window and allocates a
// new one, size log-uniform in [min, max] (default 8 .. 64 KiB: as many
// objects of 8..15 bytes as of 32..64 KiB). The new object is stamped at both
// ends and touched once per 4 KiB page (so the cost of fresh pages from the
// kernel is part of the measure); the stamp is checked before free.
//
// Built a second time with -DWL_LARGE as `large`: the same loop over big
// blocks (default 64 KiB .. 16 MiB) in a small window.
//
//   window|large [-t threads] [-s min] [-S max] [-W window] [-n steps/thread] [-L limit_s]
#include <pthread.h>

#include "wl_args.h"

#ifdef WL_LARGE
#define WL_NAME "large"
#define WL_SEED 4242
#define WL_WINDOW 4
#define WL_STEPS 1000
#define WL_MIN (64 * 1024)
#define WL_MAX (16 * 1024 * 1024)
#define WL_MIN_BOUND 16
#else
#define WL_NAME "window"
#define WL_SEED 77
#define WL_WINDOW 2000
#define WL_STEPS 500000
#define WL_MIN 8
#define WL_MAX 65536
#define WL_MIN_BOUND 8
#endif

typedef struct {
  char* p;
  uint64_t size;
  uint64_t stamp;
} obj_t;

static int g_threads = 2, g_window = WL_WINDOW;
static long g_steps = WL_STEPS;
static uint64_t g_min = WL_MIN, g_max = WL_MAX;
static uint64_t* g_sums;

static void check_free(obj_t* o) {
  if (!o->p) return;
  uint64_t got;
  memcpy(&got, o->p, sizeof got);
  if (got != o->stamp || (o->size > sizeof got && (uint8_t)o->p[o->size - 1] != (uint8_t)o->stamp))
    wl_corrupt(WL_NAME, o->p, o->stamp, got);
  free(o->p);
  o->p = NULL;
}

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  wl_rng r;
  wl_seed(&r, WL_SEED + (uint64_t)id);
  obj_t* win = (obj_t*)calloc((size_t)g_window, sizeof(obj_t));
  uint64_t sum = 0;
  for (long i = 0; i < g_steps; i++) {
    obj_t* o = &win[i % g_window];
    check_free(o);
    uint64_t size = wl_logsize(&r, g_min, g_max);
    char* p = (char*)wl_xmalloc(size);
    uint64_t stamp = wl_next(&r);
    for (uint64_t off = 4096; off < size; off += 4096) p[off] = 1;
    p[size - 1] = (char)stamp;  // before the stamp: they overlap when size <= 8
    memcpy(p, &stamp, sizeof stamp);
    o->p = p;
    o->size = size;
    o->stamp = stamp;
    sum = wl_mix(sum, size ^ stamp);
  }
  for (int i = 0; i < g_window; i++) check_free(&win[i]);
  free(win);
  g_sums[id] = sum;
  return NULL;
}

int main(int argc, char** argv) {
  const wl_opt opts[] = {{'t', WL_INT, &g_threads, "threads"},
                         {'s', WL_SIZE, &g_min, "min"},
                         {'S', WL_SIZE, &g_max, "max"},
                         {'W', WL_INT, &g_window, "window"},
                         {'n', WL_LONG, &g_steps, "steps"}};
  wl_parse_args(argc, argv, WL_NAME, opts, WL_NOPTS(opts));
  if (g_threads < 1 || g_window < 1 || g_min < WL_MIN_BOUND || g_max < g_min)
    wl_die("bad arguments");
  g_sums = (uint64_t*)calloc((size_t)g_threads, sizeof *g_sums);
  uint64_t sum;
  double el = wl_run_workers(g_threads, worker, g_sums, &sum);
  char extra[64];
  snprintf(extra, sizeof extra, "ops=%lld", (long long)g_threads * (long long)g_steps);
  wl_report(WL_NAME, g_threads, el, sum, extra);
  free(g_sums);
  return 0;
}
