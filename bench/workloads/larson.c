// larson: server churn in the style of Larson and Krishnan's benchmark.
//
// Each thread holds an array of slots. A round replaces random slots (free the
// old object, allocate one of a random size in [min, max], stamp it); at the
// end of a round the thread swaps its whole array with a random one of a
// shared pool, so it goes on to free objects that other threads allocated.
// A fixed amount of work is done: threads x rounds x ops replacements.
//
//   larson [-t threads] [-s min] [-S max] [-k slots] [-r rounds] [-o ops] [-L limit_s]
#include <pthread.h>
#include <stdatomic.h>

#include "wl_args.h"

typedef struct {
  char* p;
  uint32_t size;
  uint32_t stamp;
} slot_t;

static int g_threads = 2, g_rounds = 100, g_ops = 10000, g_slots = 1000;
static uint64_t g_min = 8, g_max = 1000;
static _Atomic(slot_t*)* g_pool;
static uint64_t* g_sums;

static void drop(slot_t* s) {
  if (!s->p) return;
  uint32_t got;
  memcpy(&got, s->p, sizeof got);
  if (got != s->stamp || (s->size > sizeof got && (uint8_t)s->p[s->size - 1] != (uint8_t)s->stamp))
    wl_corrupt("larson", s->p, s->stamp, got);
  free(s->p);
  s->p = NULL;
}

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  wl_rng r;
  wl_seed(&r, 1000 + (uint64_t)id);
  uint64_t sum = 0;
  slot_t* arr = (slot_t*)calloc((size_t)g_slots, sizeof(slot_t));
  for (int round = 0; round < g_rounds; round++) {
    for (int o = 0; o < g_ops; o++) {
      slot_t* s = &arr[wl_next(&r) % (uint64_t)g_slots];
      drop(s);
      uint32_t size = (uint32_t)wl_range(&r, g_min < 4 ? 4 : g_min, g_max);
      uint32_t stamp = (uint32_t)wl_next(&r);
      char* p = (char*)wl_xmalloc(size);
      p[size - 1] = (char)stamp;  // before the stamp: they overlap when size <= 8
      memcpy(p, &stamp, sizeof stamp);
      s->p = p;
      s->size = size;
      s->stamp = stamp;
      sum = wl_mix(sum, size);
    }
    // Hand the array to whoever takes this pool slot next; go on with another.
    arr = atomic_exchange(&g_pool[wl_next(&r) % (uint64_t)g_threads], arr);
  }
  for (int i = 0; i < g_slots; i++) drop(&arr[i]);
  free(arr);
  g_sums[id] = sum;
  return NULL;
}

int main(int argc, char** argv) {
  const wl_opt opts[] = {{'t', WL_INT, &g_threads, "threads"}, {'s', WL_SIZE, &g_min, "min"},
                         {'S', WL_SIZE, &g_max, "max"},        {'k', WL_INT, &g_slots, "slots"},
                         {'r', WL_INT, &g_rounds, "rounds"},   {'o', WL_INT, &g_ops, "ops"}};
  wl_parse_args(argc, argv, "larson", opts, WL_NOPTS(opts));
  if (g_threads < 1 || g_slots < 1 || g_max < g_min || g_max > UINT32_MAX) wl_die("bad arguments");
  g_pool = (_Atomic(slot_t*)*)calloc((size_t)g_threads, sizeof *g_pool);
  g_sums = (uint64_t*)calloc((size_t)g_threads, sizeof *g_sums);
  for (int i = 0; i < g_threads; i++)
    atomic_store(&g_pool[i], (slot_t*)calloc((size_t)g_slots, sizeof(slot_t)));
  pthread_t* th = (pthread_t*)calloc((size_t)g_threads, sizeof *th);

  double t0 = wl_now();
  for (int i = 0; i < g_threads; i++) pthread_create(&th[i], NULL, worker, (void*)(intptr_t)i);
  for (int i = 0; i < g_threads; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < g_threads; i++) {
    slot_t* arr = atomic_load(&g_pool[i]);
    for (int j = 0; j < g_slots; j++) drop(&arr[j]);
    free(arr);
  }
  double el = wl_now() - t0;

  uint64_t sum = 0;
  for (int i = 0; i < g_threads; i++) sum += g_sums[i];
  char extra[128];
  snprintf(
      extra, sizeof extra, "ops=%llu",
      (unsigned long long)g_threads * (unsigned long long)g_rounds * (unsigned long long)g_ops);
  wl_report("larson", g_threads, el, sum, extra);
  free(th);
  free(g_sums);
  free((void*)g_pool);
  return 0;
}
