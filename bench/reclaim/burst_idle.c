/* Burst-and-idle: allocate ~1 GiB in 1-64 KiB pieces, free it all, then stay
 * idle. Prints the resident set after 1 s, the time until it is back within
 * 10% of the burst (RSS <= base + 10% of what the burst added), and the CPU
 * time the process spends while idle (the reclaim threads' cost).
 *
 *   burst_idle [MiB=1024] [idle_s=10]
 * Run it under each allocator with LD_PRELOAD; bench/reclaim/run.sh does. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long rss_kb(void) {
  FILE* f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char** argv) {
  size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
  int idle_s = argc > 2 ? atoi(argv[2]) : 10;
  size_t target = mib << 20, total = 0, n = 0, cap = target / 1024 + 1;
  void** blocks = malloc(cap * sizeof(void*));
  long base = rss_kb();
  unsigned s = 12345;
  while (total < target && n < cap) {
    s = s * 1103515245u + 12345u;
    size_t sz = 1024 + (s >> 8) % (63 * 1024);
    char* p = malloc(sz);
    if (!p) break;
    memset(p, (int)n, sz);
    blocks[n++] = p;
    total += sz;
  }
  long peak = rss_kb();
  for (size_t i = 0; i < n; ++i) free(blocks[i]);
  double t0 = now_s(), back = -1;
  long at1 = -1;
  long limit = base + (peak - base) / 10;
  while (now_s() - t0 < 3.0) {
    long r = rss_kb();
    if (back < 0 && r <= limit) back = now_s() - t0;
    if (at1 < 0 && now_s() - t0 >= 1.0) at1 = r;
    if (back >= 0 && at1 >= 0) break;
    usleep(5000);
  }
  if (at1 < 0) at1 = rss_kb();
  /* The reclaim work itself (releasing, draining) happens in the first
   * seconds; after that the process is idle and should cost nothing. */
  double c0 = cpu_s();
  sleep(2);
  double settle_cpu = cpu_s() - c0;
  long settled = rss_kb();
  c0 = cpu_s();
  sleep((unsigned)idle_s);
  double idle_cpu = cpu_s() - c0;
  printf(
      "peak_mib %.1f rss_1s_mib %.1f back_10pct_s %.2f settled_mib %.1f settle_cpu_ms %.2f "
      "idle_cpu_ms %.3f (over %d s)\n",
      (double)peak / 1024, (double)at1 / 1024, back, (double)settled / 1024, settle_cpu * 1000,
      idle_cpu * 1000, idle_s);
  free(blocks);
  return 0;
}
