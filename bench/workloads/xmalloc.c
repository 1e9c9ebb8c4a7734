// xmalloc: cross-thread frees in the pattern of Lever and Boreham's
// xmalloc-test (USENIX 2000; mimalloc-bench's "xmalloc-test").
//
// -w W allocator threads and W releaser threads. An allocator fills a batch
// (itself one malloc'ed block of 8 + 8 * B bytes: just above 32 KiB for the
// default B = 4096, so the batches are large blocks) with B small objects,
// writes up to 128 bytes of each, and pushes the batch on a shared LIFO
// stack of at most Q batches (mutex + condition variables); a releaser pops
// a batch, checks and frees every object, then the batch. So every small
// object is freed by a thread other than the one that allocated it, in
// bursts of B, with more threads than CPUs when W > nproc / 2.
// Unlike the original (fixed time), the work is fixed: each allocator
// fills -n batches, and the run ends when every batch has been freed.
//
//   xmalloc [-w allocators] [-n batches each] [-b objects per batch]
//           [-s size, 0: mixed sizes 8..2048] [-q stack limit] [-L limit_s]
//
// Besides the usual fields, RESULT reports frees_per_s, the process's
// voluntary context switches (vcsw: how often a thread blocked) and its CPU
// seconds per elapsed second (cpu_util; 2 * W threads could use
// min(2 * W, nproc)).
#include <pthread.h>
#include <sys/resource.h>

#include "wl_args.h"

// Sizes of the "-s 0" mix (xmalloc-test's -s -1 list).
static const uint32_t k_sizes[] = {8,   12,  16,  24,  32,  48,   64,   96,  128,
                                   192, 256, 384, 512, 768, 1024, 1536, 2048};
#define N_SIZES (sizeof k_sizes / sizeof k_sizes[0])

typedef struct batch {
  struct batch* next;
  void* objects[];  // g_per_batch of them
} batch_t;

static int g_workers = 2;
static long g_batches = 200, g_per_batch = 4096, g_limit = 100;
static uint64_t g_size = 64;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_not_full = PTHREAD_COND_INITIALIZER;
static batch_t* g_stack;
static long g_count;
static int g_allocators_left;
static uint64_t* g_sums;  // [2 * workers]: each thread's checksum

// The object's size and its stamp follow from (allocator, batch, index) only,
// so the releaser recomputes both and the checksum does not depend on which
// thread freed what.
static uint32_t size_of(wl_rng* r) {
  return g_size ? (uint32_t)g_size : k_sizes[wl_next(r) % N_SIZES];
}

static void push(batch_t* b) {
  pthread_mutex_lock(&g_lock);
  while (g_count >= g_limit) pthread_cond_wait(&g_not_full, &g_lock);
  b->next = g_stack;
  g_stack = b;
  g_count++;
  pthread_cond_signal(&g_not_empty);
  pthread_mutex_unlock(&g_lock);
}

// NULL once every allocator is done and the stack is empty.
static batch_t* pop(void) {
  pthread_mutex_lock(&g_lock);
  while (!g_stack && g_allocators_left > 0) pthread_cond_wait(&g_not_empty, &g_lock);
  batch_t* b = g_stack;
  if (b) {
    g_stack = b->next;
    g_count--;
    pthread_cond_signal(&g_not_full);
  }
  pthread_mutex_unlock(&g_lock);
  return b;
}

// Word 0 of each object: its stamp (objects of 8 and 12 bytes hold it whole).
static uint64_t stamp_of(uint64_t id, uint64_t n, uint64_t i) {
  return (id << 48) ^ (n << 20) ^ i ^ 0x5bd1e995u;
}

static void* allocator(void* arg) {
  int id = (int)(intptr_t)arg;
  wl_rng r;
  wl_seed(&r, 77 + (uint64_t)id);
  uint64_t sum = 0;
  for (long n = 0; n < g_batches; n++) {
    batch_t* b = (batch_t*)wl_xmalloc(sizeof(batch_t) + (size_t)g_per_batch * sizeof(void*));
    for (long i = 0; i < g_per_batch; i++) {
      uint32_t size = size_of(&r);
      char* p = (char*)wl_xmalloc(size);
      memset(p, (int)(i & 0xff), size > 128 ? 128 : size);
      uint64_t st = stamp_of((uint64_t)id, (uint64_t)n, (uint64_t)i);
      memcpy(p, &st, sizeof st);
      b->objects[i] = p;
      sum = wl_mix(sum, size);
    }
    push(b);
  }
  pthread_mutex_lock(&g_lock);
  if (--g_allocators_left == 0) pthread_cond_broadcast(&g_not_empty);
  pthread_mutex_unlock(&g_lock);
  g_sums[id] = sum;
  return NULL;
}

static void* releaser(void* arg) {
  int id = (int)(intptr_t)arg;
  uint64_t sum = 0;
  batch_t* b;
  while ((b = pop()) != NULL) {
    for (long i = 0; i < g_per_batch; i++) {
      uint64_t st;
      memcpy(&st, b->objects[i], sizeof st);
      // The stamp's low 20 bits name the object's index in its batch.
      if ((st & 0xfffff) != (((uint64_t)i ^ 0x5bd1e995u) & 0xfffff))
        wl_corrupt("xmalloc", b->objects[i], (uint64_t)i, st);
      sum += st;
      free(b->objects[i]);
    }
    free(b);
  }
  g_sums[g_workers + id] = sum;
  return NULL;
}

int main(int argc, char** argv) {
  const wl_opt opts[] = {{'w', WL_INT, &g_workers, "allocators"},
                         {'n', WL_LONG, &g_batches, "batches"},
                         {'b', WL_LONG, &g_per_batch, "objects"},
                         {'s', WL_SIZE, &g_size, "size"},
                         {'q', WL_LONG, &g_limit, "stack_limit"}};
  wl_parse_args(argc, argv, "xmalloc", opts, WL_NOPTS(opts));
  if (g_workers < 1 || g_batches < 1 || g_per_batch < 1 || g_per_batch > (1 << 20) || g_limit < 1 ||
      (g_size && g_size < 8) || g_size > (1u << 30))
    wl_die("bad arguments");
  int n = 2 * g_workers;
  g_allocators_left = g_workers;
  g_sums = (uint64_t*)calloc((size_t)n, sizeof *g_sums);
  pthread_t* th = (pthread_t*)calloc((size_t)n, sizeof *th);
  if (!g_sums || !th) wl_die("out of memory");

  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  double t0 = wl_now();
  for (int i = 0; i < g_workers; i++) {
    if (pthread_create(&th[2 * i], NULL, releaser, (void*)(intptr_t)i) != 0 ||
        pthread_create(&th[2 * i + 1], NULL, allocator, (void*)(intptr_t)i) != 0)
      wl_die("pthread_create");
  }
  for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
  double el = wl_now() - t0;
  getrusage(RUSAGE_SELF, &ru1);

  // Checksum: the allocators' size sums plus the releasers' stamp sums (the
  // latter is the same whoever freed each batch).
  uint64_t sum = 0;
  for (int i = 0; i < n; i++) sum += g_sums[i];
  double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
               (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
               1e-6 * (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                               ru0.ru_stime.tv_usec);
  long long frees = (long long)g_workers * g_batches * g_per_batch;
  char extra[192];
  snprintf(extra, sizeof extra, "ops=%lld frees_per_s=%.0f vcsw=%ld cpu_util=%.2f", frees,
           (double)frees / el, ru1.ru_nvcsw - ru0.ru_nvcsw, cpu / el);
  wl_report("xmalloc", n, el, sum, extra);
  free(th);
  free(g_sums);
  return 0;
}
