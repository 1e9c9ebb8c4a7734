// Shared helpers of the throughput workloads (bench/workloads/*.c, *.cpp).
//
// The workloads are plain programs: they only call malloc/free/realloc (or
// new/delete) so that any allocator can be put under them with LD_PRELOAD.
// Nothing here includes a numaslub header or allocates.
//
// Every workload prints one line to stdout:
//   RESULT workload=<name> threads=<n> elapsed_s=<seconds> checksum=<hex> [key=value ...]
// elapsed_s is measured with CLOCK_MONOTONIC around the measured phase only;
// checksum depends only on the arguments (not on the allocator or on thread
// scheduling), so bench/run.py can tell a wrong result from a slow one.
// A workload that finds a corrupted object prints "CORRUPT ..." to stderr and
// exits with status 3. A watchdog (-L seconds, default 300) ends a run that
// hangs with status 124. Options are parsed by wl_args.h, from a table each
// workload gives.
#ifndef NUMASLUB_BENCH_WL_COMMON_H
#define NUMASLUB_BENCH_WL_COMMON_H

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

static inline double wl_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// splitmix64: small, fast, good enough to pick sizes and slots.
typedef struct {
  uint64_t s;
} wl_rng;

static inline void wl_seed(wl_rng* r, uint64_t seed) {
  r->s = seed * 0x9E3779B97F4A7C15ull + 1;
}

static inline uint64_t wl_next(wl_rng* r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [lo, hi].
static inline uint64_t wl_range(wl_rng* r, uint64_t lo, uint64_t hi) {
  return lo + wl_next(r) % (hi - lo + 1);
}

// Log-uniform in [lo, hi]: every power-of-two band is equally likely, so small
// sizes dominate the count and large ones the bytes, as in real programs.
static inline uint64_t wl_logsize(wl_rng* r, uint64_t lo, uint64_t hi) {
  int lb = 63 - __builtin_clzll(lo), hb = 63 - __builtin_clzll(hi);
  int b = lb + (int)(wl_next(r) % (uint64_t)(hb - lb + 1));
  uint64_t first = 1ull << b, last = (first << 1) - 1;
  if (first < lo) first = lo;
  if (last > hi) last = hi;
  return first + wl_next(r) % (last - first + 1);
}

static inline uint64_t wl_mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  return h;
}

// Parses "123", "64k", "16m", "1g".
static inline uint64_t wl_parse_size(const char* s) {
  char* end = NULL;
  double v = strtod(s, &end);
  if (end && *end) {
    switch (*end) {
      case 'k':
      case 'K':
        v *= 1024.0;
        break;
      case 'm':
      case 'M':
        v *= 1024.0 * 1024.0;
        break;
      case 'g':
      case 'G':
        v *= 1024.0 * 1024.0 * 1024.0;
        break;
      default:
        fprintf(stderr, "bad size '%s'\n", s);
        exit(2);
    }
  }
  return (uint64_t)v;
}

static inline void wl_die(const char* what) {
  fprintf(stderr, "%s\n", what);
  exit(2);
}

static inline void wl_corrupt(const char* workload, const void* p, uint64_t want, uint64_t got) {
  fprintf(stderr, "CORRUPT %s: object %p holds %#llx, expected %#llx\n", workload, p,
          (unsigned long long)got, (unsigned long long)want);
  fflush(stderr);
  _exit(3);
}

static inline void* wl_xmalloc(size_t n) {
  void* p = malloc(n);
  if (!p) {
    fprintf(stderr, "malloc(%zu) failed\n", n);
    exit(4);
  }
  return p;
}

static void wl_watchdog_fire(int sig) {
  (void)sig;
  static const char msg[] = "TIMEOUT: watchdog fired\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
  _exit(124);
}

static inline void wl_watchdog(unsigned seconds) {
  if (!seconds) return;
  signal(SIGALRM, wl_watchdog_fire);
  alarm(seconds);
}

// Reads a "Key:   123 kB" field of /proc/self/status, in KiB (-1 if absent),
// without stdio so that it does not allocate.
static inline long wl_status_kib(const char* key) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  size_t kl = strlen(key);
  for (char* p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncmp(p, key, kl) == 0 && p[kl] == ':') return strtol(p + kl + 1, NULL, 10);
  }
  return -1;
}

static inline void wl_report(const char* name, int threads, double elapsed, uint64_t checksum,
                             const char* extra) {
  printf("RESULT workload=%s threads=%d elapsed_s=%.6f checksum=%016llx%s%s\n", name, threads,
         elapsed, (unsigned long long)checksum, extra && *extra ? " " : "", extra ? extra : "");
  fflush(stdout);
}

// Runs worker on n threads, passing each its index as (void*)(intptr_t)i;
// worker i leaves its checksum in sums[i]. Returns the elapsed seconds of
// the whole run and the sum of the checksums in *checksum.
static inline double wl_run_workers(int n, void* (*worker)(void*), const uint64_t* sums,
                                    uint64_t* checksum) {
  if (n < 1) wl_die("no threads");
  pthread_t* th = (pthread_t*)calloc((size_t)n, sizeof *th);
  if (!th) wl_die("out of memory");
  double t0 = wl_now();
  for (int i = 0; i < n; i++)
    if (pthread_create(&th[i], NULL, worker, (void*)(intptr_t)i) != 0) wl_die("pthread_create");
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  double el = wl_now() - t0;
  uint64_t sum = 0;
  for (int i = 0; i < n; i++) sum += sums[i];
  *checksum = sum;
  free(th);
  return el;
}

#ifdef __cplusplus
}
#endif

#endif  // NUMASLUB_BENCH_WL_COMMON_H
