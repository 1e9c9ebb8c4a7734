// memreturn: does memory go back to the OS after a burst, without asking?
//
// The threads allocate about `total` bytes in pieces of random size in
// [min, max] (default 1 GiB in 1 .. 64 KiB pieces), touching every page, wait
// until all of it is live, then free it in a shuffled order. elapsed_s is the
// time of that burst. The program then sleeps, sampling VmRSS from
// /proc/self/status every 50 ms for `watch` seconds (default 1.5), and
// reports, in KiB:
//   peak_rss_kib   VmHWM (the high-water mark)
//   rss_free_kib   VmRSS right after the last free
//   rss_500ms_kib  VmRSS 0.5 s after the last free (issue 14's mark: 10% of
//                  the burst by then)
//   rss_1s_kib     VmRSS 1 s after the last free
//   rss_end_kib    VmRSS at the end of the watch
// The program calls nothing but malloc and free: no malloc_trim.
//
//   memreturn [-t threads] [-T total] [-s min] [-S max] [-w watch_s] [-L limit_s]
#include <pthread.h>

#include "wl_args.h"

static int g_threads = 1;
static uint64_t g_total = 1ull << 30, g_min = 1024, g_max = 65536;
static uint64_t* g_sums;
static pthread_barrier_t g_all_allocated;

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  wl_rng r;
  wl_seed(&r, 123 + (uint64_t)id);
  uint64_t share = g_total / (uint64_t)g_threads, got = 0, sum = 0;
  size_t cap = (size_t)(share / g_min) + 16, n = 0;
  char** v = (char**)wl_xmalloc(cap * sizeof(char*));
  while (got < share && n < cap) {
    uint64_t size = wl_logsize(&r, g_min, g_max);
    char* p = (char*)wl_xmalloc(size);
    for (uint64_t off = 0; off < size; off += 4096) p[off] = (char)(off >> 12);
    p[size - 1] = (char)size;
    v[n++] = p;
    got += size;
    sum = wl_mix(sum, size);
  }
  // The whole burst is live at once before anything is freed.
  pthread_barrier_wait(&g_all_allocated);
  for (size_t i = n; i > 1; i--) {  // Fisher-Yates, deterministic
    size_t j = (size_t)(wl_next(&r) % i);
    char* t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
  for (size_t i = 0; i < n; i++) {
    sum += (uint8_t)v[i][0];
    free(v[i]);
  }
  free(v);
  g_sums[id] = sum;
  return NULL;
}

int main(int argc, char** argv) {
  double watch = 1.5;
  const wl_opt opts[] = {{'t', WL_INT, &g_threads, "threads"},
                         {'T', WL_SIZE, &g_total, "total"},
                         {'s', WL_SIZE, &g_min, "min"},
                         {'S', WL_SIZE, &g_max, "max"},
                         {'w', WL_DOUBLE, &watch, "watch_s"}};
  wl_parse_args(argc, argv, "memreturn", opts, WL_NOPTS(opts));
  if (g_threads < 1 || g_min < 8 || g_max < g_min || watch < 1.0) wl_die("bad arguments");
  g_sums = (uint64_t*)calloc((size_t)g_threads, sizeof *g_sums);
  pthread_t* th = (pthread_t*)calloc((size_t)g_threads, sizeof *th);
  pthread_barrier_init(&g_all_allocated, NULL, (unsigned)g_threads);
  double t0 = wl_now();
  for (int i = 0; i < g_threads; i++) pthread_create(&th[i], NULL, worker, (void*)(intptr_t)i);
  for (int i = 0; i < g_threads; i++) pthread_join(th[i], NULL);
  double t1 = wl_now();

  long rss_free = wl_status_kib("VmRSS"), rss_500ms = -1, rss_1s = -1, rss_end = rss_free;
  struct timespec tick = {0, 50 * 1000 * 1000};
  for (;;) {
    nanosleep(&tick, NULL);
    double since = wl_now() - t1;
    rss_end = wl_status_kib("VmRSS");
    if (rss_500ms < 0 && since >= 0.5) rss_500ms = rss_end;
    if (rss_1s < 0 && since >= 1.0) rss_1s = rss_end;
    if (since >= watch) break;
  }
  long peak = wl_status_kib("VmHWM");

  uint64_t sum = 0;
  for (int i = 0; i < g_threads; i++) sum += g_sums[i];
  char extra[256];
  snprintf(extra, sizeof extra,
           "peak_rss_kib=%ld rss_free_kib=%ld rss_500ms_kib=%ld rss_1s_kib=%ld rss_end_kib=%ld", peak,
           rss_free, rss_500ms, rss_1s, rss_end);
  wl_report("memreturn", g_threads, t1 - t0, sum, extra);
  free(th);
  free(g_sums);
  return 0;
}
