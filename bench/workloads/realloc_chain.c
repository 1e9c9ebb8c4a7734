// realloc: growth chains, as a string builder or a growing vector does them.
//
// Each thread keeps C chains alive at once and grows them in turn (so a chain
// cannot always grow in place into free space behind it). A step adds a
// random 1 .. size/2+16 bytes with realloc and fills the new tail; the old
// contents are checked after each move. A chain that passes max is freed and
// started again at 16 bytes; the run ends after n chains per thread.
//
//   realloc_chain [-t threads] [-S max] [-C concurrent chains] [-n chains/thread] [-L limit_s]
#include <pthread.h>

#include "wl_args.h"

typedef struct {
  unsigned char* p;
  uint64_t size;
  uint64_t seed;
} chain_t;

static int g_threads = 2, g_conc = 8;
static long g_chains = 2000;
static uint64_t g_max = 256 * 1024;
static uint64_t* g_sums;

static inline unsigned char pat(uint64_t seed, uint64_t off) {
  return (unsigned char)((seed >> 8) + off * 7);
}

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  wl_rng r;
  wl_seed(&r, 31 + (uint64_t)id);
  chain_t* ch = (chain_t*)calloc((size_t)g_conc, sizeof(chain_t));
  uint64_t sum = 0, reallocs = 0;
  long started = 0, done = 0;
  while (done < g_chains) {
    for (int k = 0; k < g_conc && done < g_chains; k++) {
      chain_t* c = &ch[k];
      if (!c->p) {
        if (started >= g_chains) continue;
        started++;
        c->seed = wl_next(&r);
        c->size = 16;
        c->p = (unsigned char*)wl_xmalloc(c->size);
        for (uint64_t i = 0; i < c->size; i++) c->p[i] = pat(c->seed, i);
        continue;
      }
      uint64_t grow = wl_range(&r, 1, c->size / 2 + 16);
      uint64_t nsize = c->size + grow;
      unsigned char* np = (unsigned char*)realloc(c->p, nsize);
      if (!np) wl_die("realloc failed");
      reallocs++;
      // The old contents moved with it: check both ends and the middle.
      uint64_t probe[3] = {0, c->size / 2, c->size - 1};
      for (int j = 0; j < 3; j++)
        if (np[probe[j]] != pat(c->seed, probe[j]))
          wl_corrupt("realloc", np + probe[j], pat(c->seed, probe[j]), np[probe[j]]);
      for (uint64_t i = c->size; i < nsize; i++) np[i] = pat(c->seed, i);
      c->p = np;
      c->size = nsize;
      if (nsize > g_max) {
        sum = wl_mix(sum, nsize);
        free(c->p);
        c->p = NULL;
        done++;
      }
    }
  }
  for (int k = 0; k < g_conc; k++) free(ch[k].p);
  free(ch);
  g_sums[id] = wl_mix(sum, reallocs);
  return NULL;
}

int main(int argc, char** argv) {
  const wl_opt opts[] = {{'t', WL_INT, &g_threads, "threads"},
                         {'S', WL_SIZE, &g_max, "max"},
                         {'C', WL_INT, &g_conc, "concurrent"},
                         {'n', WL_LONG, &g_chains, "chains"}};
  wl_parse_args(argc, argv, "realloc_chain", opts, WL_NOPTS(opts));
  if (g_threads < 1 || g_conc < 1 || g_max < 32) wl_die("bad arguments");
  g_sums = (uint64_t*)calloc((size_t)g_threads, sizeof *g_sums);
  uint64_t sum;
  double el = wl_run_workers(g_threads, worker, g_sums, &sum);
  wl_report("realloc", g_threads, el, sum, "");
  free(g_sums);
  return 0;
}
