/* malloc and free inside a signal handler that interrupted the allocator
 * (issue 10). A timer fires every 50 us; its handler allocates, fills,
 * checks and frees blocks of every kind, and keeps one block per thread
 * from one signal to the next, while two threads churn through the slow
 * paths with patterned blocks. Before, a handler that interrupted a slow
 * path waited for the per-CPU lock its own frame held: a hang. Now nested
 * calls take lock-free paths; no block may be lost or handed out twice
 * (every pattern is checked before free). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/time.h>

#include "hostile.h"

enum { kThreads = 2, kLive = 512, kRounds = 3000 };

static atomic_long g_signals;
static atomic_int g_bad;
static __thread unsigned char* t_kept;
static __thread size_t t_kept_size;
static __thread unsigned t_seed = 1;

static unsigned char pattern(const void* p, size_t i) {
  return (unsigned char)(((uintptr_t)p >> 4) + i * 7);
}
static void fill(unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; i += 61) p[i] = pattern(p, i);
  p[n - 1] = pattern(p, n - 1);
}
static int check(const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; i += 61)
    if (p[i] != pattern(p, i)) return 0;
  return p[n - 1] == pattern(p, n - 1);
}

static size_t handler_size(unsigned r) {
  switch (r % 8) {
    case 0:
      return 65600 + r % 300000; /* large block (above the 64 KiB class) */
    case 1:
      return (r % 4 == 0) ? (5u << 20) : 2000 + r % 30000;
    default:
      return 1 + r % 1024; /* small classes */
  }
}

static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  atomic_fetch_add(&g_signals, 1);
  t_seed = t_seed * 1103515245u + 12345u;
  size_t n = handler_size(t_seed >> 4);
  unsigned char* p = malloc(n);
  if (!p) {
    atomic_fetch_add(&g_bad, 1);
  } else {
    fill(p, n);
    if (!check(p, n)) atomic_fetch_add(&g_bad, 1);
    free(p);
  }
  /* One block lives from one signal to the next (and is resized). */
  if (t_kept && !check(t_kept, t_kept_size)) atomic_fetch_add(&g_bad, 1);
  size_t m = 1 + (t_seed >> 8) % 3000;
  unsigned char* q = realloc(t_kept, m);
  if (!q) {
    atomic_fetch_add(&g_bad, 1);
  } else {
    t_kept = q;
    t_kept_size = m;
    fill(q, m);
  }
  errno = saved;
}

static void* churn(void* arg) {
  unsigned s = (unsigned)(uintptr_t)arg * 7919u + 3;
  sigmask_one(SIG_UNBLOCK, SIGALRM);
  static __thread unsigned char* live[kLive];
  static __thread size_t sizes[kLive];
  for (int round = 0; round < kRounds; ++round) {
    for (int i = 0; i < kLive; ++i) {
      s = s * 1103515245u + 12345u;
      int k = (int)((s >> 8) % kLive);
      if (live[k]) {
        if (!check(live[k], sizes[k])) atomic_fetch_add(&g_bad, 1);
        free(live[k]);
      }
      size_t n = (s % 16 == 0) ? 33000 + (s >> 12) % 200000 : 1 + (s >> 12) % 2048;
      live[k] = malloc(n);
      CHECK(live[k] != NULL);
      sizes[k] = n;
      fill(live[k], n);
    }
  }
  for (int k = 0; k < kLive; ++k) {
    if (live[k] && !check(live[k], sizes[k])) atomic_fetch_add(&g_bad, 1);
    free(live[k]);
  }
  sigmask_one(SIG_BLOCK, SIGALRM);
  free(t_kept);
  return NULL;
}

int main(void) {
  install_blocked_handler(SIGALRM, on_alarm);
  pthread_t t[kThreads];
  for (long i = 0; i < kThreads; ++i) CHECK(pthread_create(&t[i], NULL, churn, (void*)i) == 0);
  struct itimerval it = {{0, 50}, {0, 50}};
  CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
  for (int i = 0; i < kThreads; ++i) pthread_join(t[i], NULL);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  long n = atomic_load(&g_signals);
  CHECK(atomic_load(&g_bad) == 0);
  CHECK(n > 1000); /* the storm really happened */
  printf("signal_storm: %ld signals, every block intact: ok\n", n);
  return 0;
}
