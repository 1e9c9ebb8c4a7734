/* Random operation sequences over the whole malloc API, for a bounded time.
 *
 * A few threads share a pool of slots; each operation takes a random slot
 * (whoever allocated its block), so blocks are freed and resized by other
 * threads than the ones that made them. Every block is filled with a pattern
 * derived from its tag and offset and checked before it is freed or resized
 * (realloc must keep the prefix). Each live block is also recorded as an
 * address range: an allocation that overlaps a live block is a failure, as
 * is a usable size below the request, a missed alignment, calloc memory that
 * is not zero, or a request that cannot fit (size > PTRDIFF_MAX, overflowing
 * calloc, an alignment no mapping can honour) that does not fail with
 * ENOMEM, or a failed realloc that does not leave its block intact.
 *
 * Environment:
 *   NS_FUZZ_SEED=<n>     the seed (default: from the clock; always printed)
 *   NS_FUZZ_SECONDS=<s>  run time (default 5)
 *   NS_FUZZ_THREADS=<n>  threads (default 4). With 1 thread the operation
 *                        sequence is a function of the seed alone, so
 *                        NS_FUZZ_SEED=<printed> NS_FUZZ_THREADS=1 replays a
 *                        failure of thread 0 up to its failing operation;
 *                        with more, each thread's sequence is fixed by the
 *                        seed but their interleaving is not.
 * A failure prints the seed, the thread, the operation and the last
 * operations of that thread, and exits 1. */
#define _GNU_SOURCE
#include <pthread.h>

#include "api_ops.h"
#include "hostile.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double g_deadline;

static void* worker_main(void* arg) {
  struct worker* w = arg;
  for (;; ++w->ops) {
    if ((w->ops & 63) == 0 && now_s() > g_deadline) break;
    api_step(w);
  }
  return NULL;
}

static unsigned long env_ul(const char* name, unsigned long dflt) {
  const char* v = getenv(name);
  return v && *v ? strtoul(v, NULL, 0) : dflt;
}

int main(void) {
  api_ops_init();
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  g_seed = env_ul("NS_FUZZ_SEED", (unsigned long)t.tv_nsec ^ ((unsigned long)t.tv_sec << 20) ^
                                      ((unsigned long)getpid() << 40));
  double seconds = (double)env_ul("NS_FUZZ_SECONDS", 5);
  unsigned nthreads = (unsigned)env_ul("NS_FUZZ_THREADS", 4);
  if (nthreads < 1) nthreads = 1;
  if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
  fprintf(stderr, "api_fuzz: seed=0x%" PRIx64 " threads=%u seconds=%g\n", g_seed, nthreads,
          seconds);

  static struct worker w[MAX_THREADS];
  pthread_t th[MAX_THREADS];
  g_deadline = now_s() + seconds;
  for (unsigned i = 0; i < nthreads; ++i) {
    w[i].id = (int)i;
    w[i].rng = g_seed + i * 0xD1B54A32D192ED03ull;
  }
  if (nthreads == 1) {
    worker_main(&w[0]); /* the main thread: the sequence depends on the seed only */
  } else {
    for (unsigned i = 0; i < nthreads; ++i)
      CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
    for (unsigned i = 0; i < nthreads; ++i) pthread_join(th[i], NULL);
  }

  /* Everything left is checked and freed by the main thread. */
  api_free_all(&w[0]);
  uint64_t total = 0;
  for (unsigned i = 0; i < nthreads; ++i) total += w[i].ops;
  fprintf(stderr, "api_fuzz: %" PRIu64 " operations, no failure\n", total);
  return 0;
}
