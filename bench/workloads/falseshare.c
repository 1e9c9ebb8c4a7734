// falseshare: does the allocator put objects used by different threads on the
// same cache line? After Hoard's cache-thrash and cache-scratch tests.
//
// active  (-m active):  all threads start together and each repeatedly
//   allocates a small object, writes it many times and frees it. Objects that
//   threads allocate at the same moment interleave in the heap; an allocator
//   that hands neighbouring objects of one slab to different CPUs makes the
//   threads fight over cache lines.
// passive (-m passive): the main thread allocates one small object per worker
//   back to back (so they share cache lines) and hands them out. Each worker
//   frees its object, then allocates and writes in a loop like above. An
//   allocator that returns the freed (shared-line) object to the freeing
//   thread keeps the false sharing going.
//
//   falseshare [-m active|passive] [-t threads] [-s objsize] [-i iterations]
//              [-w writes per object] [-L limit_s]
#include <pthread.h>

#include "wl_args.h"

static int g_threads = 2, g_iters = 2000, g_writes = 5000;
static uint64_t g_size = 8;
static int g_passive;
static char** g_handout;
static uint64_t* g_sums;
static pthread_barrier_t g_start;

static uint64_t hammer(char* p, int id) {
  volatile char* v = p;
  for (int w = 0; w < g_writes; w++) {
    for (size_t j = 0; j < g_size; j++) v[j] = (char)(v[j] + 1 + id);
  }
  uint64_t s = 0;
  for (size_t j = 0; j < g_size; j++) s = s * 31 + (uint8_t)v[j];
  return s;
}

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  uint64_t sum = 0;
  pthread_barrier_wait(&g_start);
  if (g_passive) {
    // The object the main thread allocated next to the others' is used once,
    // then freed here.
    char* p = g_handout[id];
    sum += hammer(p, id);
    free(p);
  }
  for (int i = 0; i < g_iters; i++) {
    char* p = (char*)wl_xmalloc(g_size);
    memset(p, 0, g_size);
    sum += hammer(p, id);
    free(p);
  }
  g_sums[id] = sum;
  return NULL;
}

int main(int argc, char** argv) {
  const char* mode = "active";
  const wl_opt opts[] = {{'m', WL_STR, &mode, "active|passive"},
                         {'t', WL_INT, &g_threads, "threads"},
                         {'s', WL_SIZE, &g_size, "size"},
                         {'i', WL_INT, &g_iters, "iterations"},
                         {'w', WL_INT, &g_writes, "writes"}};
  wl_parse_args(argc, argv, "falseshare", opts, WL_NOPTS(opts));
  g_passive = strcmp(mode, "passive") == 0;
  if (g_threads < 1 || g_size < 1) wl_die("bad arguments");
  g_sums = (uint64_t*)calloc((size_t)g_threads, sizeof *g_sums);
  g_handout = (char**)calloc((size_t)g_threads, sizeof *g_handout);
  pthread_t* th = (pthread_t*)calloc((size_t)g_threads, sizeof *th);
  pthread_barrier_init(&g_start, NULL, (unsigned)g_threads + 1);
  if (g_passive) {
    for (int i = 0; i < g_threads; i++) {
      g_handout[i] = (char*)wl_xmalloc(g_size);
      memset(g_handout[i], 0, g_size);
    }
  }
  for (int i = 0; i < g_threads; i++) pthread_create(&th[i], NULL, worker, (void*)(intptr_t)i);
  double t0 = wl_now();
  pthread_barrier_wait(&g_start);
  for (int i = 0; i < g_threads; i++) pthread_join(th[i], NULL);
  double el = wl_now() - t0;

  uint64_t sum = 0;
  for (int i = 0; i < g_threads; i++) sum += g_sums[i];
  wl_report(g_passive ? "falseshare-passive" : "falseshare-active", g_threads, el, sum, "");
  pthread_barrier_destroy(&g_start);
  free(th);
  free(g_handout);
  free(g_sums);
  return 0;
}
