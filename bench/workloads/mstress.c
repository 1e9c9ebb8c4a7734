// mstress: the pattern of mimalloc's test/test-stress.c (mimalloc-bench's
// "mstress"), rewritten: rounds of short-lived threads over a heap that
// outlives them.
//
// Each round starts -t new threads and joins them. A thread does -n steps
// over its own list of objects: it allocates (sizes in words of 8 bytes,
// 1..128 words; one request in 100 is 100x larger, up to 100 KiB, one in
// 10000 is 1000x larger, up to 1 MiB), frees a random object of its list,
// or exchanges an object with a random slot of a process-wide transfer
// array of -x slots (atomically: the object found there is now its own,
// whatever thread made it). At its end the thread frees its list except
// -k percent of it, which it leaves in a process-wide retained array: the
// next round's thread of the same index frees those. So objects live across
// threads and rounds, and the heap's peak is the retained set, the transfer
// array and the threads' lists. Every object is stamped (first word, and
// its last byte; every word is written) and checked before it is freed.
//
// Peak RSS (run.py's ru_maxrss) is the figure this workload is for: memory
// a size class or a per-CPU cache holds that the program does not use.
//
//   mstress [-t threads] [-r rounds] [-n steps/thread/round] [-x transfer slots]
//           [-k keep %] [-L limit_s]
#include <pthread.h>
#include <stdatomic.h>

#include "wl_args.h"

typedef struct {
  uint64_t stamp;  // the object's first word, also its size in the low 24 bits
} obj_hdr;

static int g_threads = 2, g_rounds = 10, g_transfer = 1000, g_keep = 10;
static long g_steps = 50000;
static _Atomic(uint64_t*)* g_slots;  // transfer array
static uint64_t** g_retained;        // [thread][...], null-terminated lists
static uint64_t* g_sums;             // per index: the round in, bytes freed out
static uint64_t* g_allocated;        // per index: bytes allocated, over all rounds

static uint64_t obj_size(uint64_t stamp) {
  return stamp & 0xffffff;
}

static uint64_t* obj_new(wl_rng* r, uint64_t* allocated) {
  uint64_t words = 1 + wl_next(r) % 128;
  uint64_t x = wl_next(r) % 10000;
  if (x == 0)
    words *= 1000;
  else if (x < 100)
    words *= 100;
  uint64_t size = words * 8;
  *allocated += size;
  uint64_t* p = (uint64_t*)wl_xmalloc(size);
  uint64_t stamp = (wl_next(r) << 24) | size;
  // Every word written, as test-stress does: the peak RSS is the bytes the
  // program holds, not what the allocator leaves untouched.
  for (uint64_t i = 1; i < words; i++) p[i] = (words - i) ^ stamp;
  p[0] = stamp;
  ((uint8_t*)p)[size - 1] = (uint8_t)(stamp >> 24);
  return p;
}

static uint64_t obj_free(uint64_t* p) {
  if (!p) return 0;
  uint64_t stamp = p[0], size = obj_size(stamp);
  if (size < 8 || size > 1024 * 1024 || ((uint8_t*)p)[size - 1] != (uint8_t)(stamp >> 24))
    wl_corrupt("mstress", p, stamp, ((uint8_t*)p)[size ? size - 1 : 0]);
  free(p);
  return size;
}

static void* worker(void* arg) {
  int id = (int)(intptr_t)arg;
  wl_rng r;  // a seed per (round, index): g_sums[id] holds the round

  wl_seed(&r, 1234 + (uint64_t)id * 7919 + g_sums[id] * 104729);
  // The previous round's retained objects of this index go first.
  uint64_t sum = 0;
  if (g_retained[id]) {
    for (uint64_t** q = (uint64_t**)g_retained[id]; *q; q++) sum += obj_free(*q);
    free(g_retained[id]);
    g_retained[id] = NULL;
  }
  long cap = 64, n = 0;
  uint64_t** list = (uint64_t**)wl_xmalloc((size_t)cap * sizeof *list);
  for (long i = 0; i < g_steps; i++) {
    uint64_t x = wl_next(&r) % 100;
    if (x < 50 || n == 0) {  // allocate
      if (n == cap) {
        cap *= 2;
        list = (uint64_t**)realloc(list, (size_t)cap * sizeof *list);
        if (!list) wl_die("out of memory");
      }
      list[n++] = obj_new(&r, &g_allocated[id]);
    } else if (x < 80) {  // free a random one of the list
      long k = (long)(wl_next(&r) % (uint64_t)n);
      sum += obj_free(list[k]);
      list[k] = list[--n];
    } else {  // exchange one with the transfer array
      long k = (long)(wl_next(&r) % (uint64_t)n);
      size_t s = (size_t)(wl_next(&r) % (uint64_t)g_transfer);
      uint64_t* got = atomic_exchange(&g_slots[s], list[k]);
      if (got)
        list[k] = got;
      else
        list[k] = list[--n];
    }
  }
  // Keep a fraction for the next round's thread of this index.
  long kept = 0;
  uint64_t** keep = (uint64_t**)wl_xmalloc((size_t)(n + 1) * sizeof *keep);
  for (long k = 0; k < n; k++) {
    if ((long)(wl_next(&r) % 100) < g_keep)
      keep[kept++] = list[k];
    else
      sum += obj_free(list[k]);
  }
  keep[kept] = NULL;
  g_retained[id] = (uint64_t*)keep;
  free(list);
  g_sums[id] = sum;
  return NULL;
}

int main(int argc, char** argv) {
  const wl_opt opts[] = {{'t', WL_INT, &g_threads, "threads"},
                         {'r', WL_INT, &g_rounds, "rounds"},
                         {'n', WL_LONG, &g_steps, "steps"},
                         {'x', WL_INT, &g_transfer, "transfer slots"},
                         {'k', WL_INT, &g_keep, "keep percent"}};
  wl_parse_args(argc, argv, "mstress", opts, WL_NOPTS(opts));
  if (g_threads < 1 || g_rounds < 1 || g_transfer < 1 || g_keep < 0 || g_keep > 100)
    wl_die("bad arguments");
  g_slots = calloc((size_t)g_transfer, sizeof *g_slots);
  g_retained = (uint64_t**)calloc((size_t)g_threads, sizeof *g_retained);
  g_sums = (uint64_t*)calloc((size_t)g_threads, sizeof *g_sums);
  g_allocated = (uint64_t*)calloc((size_t)g_threads, sizeof *g_allocated);
  if (!g_slots || !g_retained || !g_sums || !g_allocated) wl_die("out of memory");
  double el = 0;
  uint64_t freed = 0, allocated = 0;
  for (int round = 0; round < g_rounds; round++) {
    for (int i = 0; i < g_threads; i++) g_sums[i] = (uint64_t)round;
    uint64_t s;
    el += wl_run_workers(g_threads, worker, g_sums, &s);
    freed += s;  // each worker replaced its round number with the bytes it freed
  }
  // The end: everything left is freed and counted, so the checksum is the
  // sum of every object's size (allocated = freed).
  double t0 = wl_now();
  uint64_t sum = 0;
  for (int i = 0; i < g_threads; i++) {
    if (!g_retained[i]) continue;
    for (uint64_t** q = (uint64_t**)g_retained[i]; *q; q++) sum += obj_free(*q);
    free(g_retained[i]);
  }
  for (int s = 0; s < g_transfer; s++) sum += obj_free(atomic_load(&g_slots[s]));
  el += wl_now() - t0;
  // Every byte allocated was freed once: nothing lost, nothing twice. (How
  // many bytes depends on scheduling, through the transfer array: the
  // checksum is of the arguments only.)
  freed += sum;
  for (int i = 0; i < g_threads; i++) allocated += g_allocated[i];
  if (freed != allocated) wl_corrupt("mstress", NULL, allocated, freed);
  uint64_t check = 0;
  for (int round = 0; round < g_rounds; round++)
    for (int i = 0; i < g_threads; i++) check = wl_mix(check, (uint64_t)round * 31 + (uint64_t)i);
  char extra[96];
  snprintf(extra, sizeof extra, "ops=%lld maxrss_self_kib=%ld",
           (long long)g_threads * g_rounds * g_steps, wl_status_kib("VmHWM"));
  wl_report("mstress", g_threads, el, check, extra);
  free(g_allocated);
  free(g_slots);
  free(g_retained);
  free(g_sums);
  return 0;
}
