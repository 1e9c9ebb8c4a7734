// thread_churn: many short-lived threads, each allocating a little.
//
// The main thread starts threads T at a time, n in all. Each allocates k
// objects of random sizes in [min, max], frees half of them itself and leaves
// the other half to the main thread, which frees them after the join (objects
// of a thread that has exited). Measures per-thread cache set-up and
// tear-down, and frees into the heap of a dead thread.
//
//   thread_churn [-t concurrent] [-n threads in all] [-k objects] [-s min] [-S max] [-L limit_s]
#include <pthread.h>

#include "wl_args.h"

typedef struct {
  long index;
  char** left;  // objects left for the main thread, k/2 of them
  uint64_t sum;
} job_t;

static int g_conc = 2, g_objs = 200;
static long g_total = 4000;
static uint64_t g_min = 8, g_max = 2048;

static void* worker(void* arg) {
  job_t* j = (job_t*)arg;
  wl_rng r;
  wl_seed(&r, 9000 + (uint64_t)j->index);
  char** objs = (char**)wl_xmalloc((size_t)g_objs * sizeof(char*));
  uint64_t sum = 0;
  for (int i = 0; i < g_objs; i++) {
    uint64_t size = wl_range(&r, g_min, g_max);
    objs[i] = (char*)wl_xmalloc(size);
    memset(objs[i], (int)(size & 0xff), size < 64 ? size : 64);
    objs[i][0] = (char)(i & 0x7f);
    sum = wl_mix(sum, size);
  }
  int kept = 0;
  for (int i = 0; i < g_objs; i++) {
    if ((uint8_t)objs[i][0] != (uint8_t)(i & 0x7f))
      wl_corrupt("thread_churn", objs[i], (uint64_t)(i & 0x7f), (uint8_t)objs[i][0]);
    if (i & 1) {
      free(objs[i]);
    } else {
      objs[kept++] = objs[i];
    }
  }
  j->left = objs;  // the first `kept` entries
  j->sum = sum;
  return NULL;
}

int main(int argc, char** argv) {
  const wl_opt opts[] = {{'t', WL_INT, &g_conc, "concurrent"},
                         {'n', WL_LONG, &g_total, "total"},
                         {'k', WL_INT, &g_objs, "objects"},
                         {'s', WL_SIZE, &g_min, "min"},
                         {'S', WL_SIZE, &g_max, "max"}};
  wl_parse_args(argc, argv, "thread_churn", opts, WL_NOPTS(opts));
  if (g_conc < 1 || g_objs < 2 || g_min < 1 || g_max < g_min) wl_die("bad arguments");
  pthread_t* th = (pthread_t*)calloc((size_t)g_conc, sizeof *th);
  job_t* jobs = (job_t*)calloc((size_t)g_conc, sizeof *jobs);
  uint64_t sum = 0;
  double t0 = wl_now();
  for (long base = 0; base < g_total; base += g_conc) {
    int n = (int)(g_total - base < g_conc ? g_total - base : g_conc);
    for (int i = 0; i < n; i++) {
      jobs[i].index = base + i;
      if (pthread_create(&th[i], NULL, worker, &jobs[i]) != 0) wl_die("pthread_create failed");
    }
    for (int i = 0; i < n; i++) {
      pthread_join(th[i], NULL);
      for (int k = 0; k < (g_objs + 1) / 2; k++) free(jobs[i].left[k]);
      free(jobs[i].left);
      sum += jobs[i].sum;
    }
  }
  double el = wl_now() - t0;
  char extra[64];
  snprintf(extra, sizeof extra, "threads_total=%ld", g_total);
  wl_report("thread_churn", g_conc, el, sum, extra);
  free(jobs);
  free(th);
  return 0;
}
