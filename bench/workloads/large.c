// large: big blocks, log-uniform in [min, max] (default 64 KiB .. 16 MiB).
//
// Each thread keeps a small window of live blocks; a step frees the oldest,
// allocates a new one and writes one byte in each of its 4 KiB pages (so the
// cost of fresh pages from the kernel is part of the measure, as it is for a
// program that uses what it allocates). Stamps at both ends are checked.
//
//   large [-t threads] [-s min] [-S max] [-W window] [-n steps/thread] [-L limit_s]
#include <getopt.h>
#include <pthread.h>

#include "wl_common.h"

typedef struct {
  char* p;
  uint64_t size;
  uint64_t stamp;
} blk_t;

static int g_threads = 2, g_window = 4;
static long g_steps = 1000;
static uint64_t g_min = 64 * 1024, g_max = 16 * 1024 * 1024;
static uint64_t* g_sums;

static void check_free(blk_t* b) {
  if (!b->p) return;
  uint64_t got;
  memcpy(&got, b->p, sizeof got);
  if (got != b->stamp || (b->size > sizeof got && (uint8_t)b->p[b->size - 1] != (uint8_t)b->stamp))
    wl_corrupt("large", b->p, b->stamp, got);
  free(b->p);
  b->p = NULL;
}

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  wl_rng r;
  wl_seed(&r, 4242 + (uint64_t)id);
  blk_t* win = (blk_t*)calloc((size_t)g_window, sizeof(blk_t));
  uint64_t sum = 0;
  for (long i = 0; i < g_steps; i++) {
    blk_t* b = &win[i % g_window];
    check_free(b);
    uint64_t size = wl_logsize(&r, g_min, g_max);
    char* p = (char*)wl_xmalloc(size);
    uint64_t stamp = wl_next(&r);
    for (uint64_t off = 0; off < size; off += 4096) p[off] = (char)off;
    p[size - 1] = (char)stamp;  // before the stamp: they overlap when size <= 8
    memcpy(p, &stamp, sizeof stamp);
    b->p = p;
    b->size = size;
    b->stamp = stamp;
    sum = wl_mix(sum, size ^ stamp);
  }
  for (int i = 0; i < g_window; i++) check_free(&win[i]);
  free(win);
  g_sums[id] = sum;
  return NULL;
}

int main(int argc, char** argv) {
  unsigned limit = 300;
  int c;
  while ((c = getopt(argc, argv, "t:s:S:W:n:L:")) != -1) {
    switch (c) {
      case 't':
        g_threads = atoi(optarg);
        break;
      case 's':
        g_min = wl_parse_size(optarg);
        break;
      case 'S':
        g_max = wl_parse_size(optarg);
        break;
      case 'W':
        g_window = atoi(optarg);
        break;
      case 'n':
        g_steps = atol(optarg);
        break;
      case 'L':
        limit = (unsigned)atoi(optarg);
        break;
      default:
        wl_die("usage: large [-t threads] [-s min] [-S max] [-W window] [-n steps]");
    }
  }
  if (g_threads < 1 || g_window < 1 || g_min < 16 || g_max < g_min) wl_die("bad arguments");
  wl_watchdog(limit);
  g_sums = (uint64_t*)calloc((size_t)g_threads, sizeof *g_sums);
  uint64_t sum;
  double el = wl_run_workers(g_threads, worker, g_sums, &sum);
  char extra[64];
  snprintf(extra, sizeof extra, "ops=%lld", (long long)g_threads * (long long)g_steps);
  wl_report("large", g_threads, el, sum, extra);
  free(g_sums);
  return 0;
}
