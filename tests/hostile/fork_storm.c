/* Concurrent forks (issue 10): forking threads while others allocate and
 * free each other's blocks. glibc runs the atfork handlers of concurrent
 * forks at the same time, so any fork-time state kept in statics, or any
 * lock held from prepare to child, hangs or corrupts here. Every child
 * allocates in every size class, starts a thread and exits; each must end
 * within its deadline, and the parent must finish. */
#include <numaslub/numaslub.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "hostile.h"

enum { kForkers = 4, kForksEach = 400, kChurners = 2, kSlots = 4096 };

static _Atomic(void*) g_slots[kSlots];
static atomic_int g_stop;
static atomic_int g_failures;
/* Shared with the children: how many locks they found orphaned (held by a
 * thread gone with the fork), i.e. how often their repairs ran. */
static atomic_long* g_orphaned;

static long vmstat_field(const char* name) {
  static char buf[1 << 14];
  NS_API(numaslub_vmstat)(buf, sizeof buf);
  const char* p = strstr(buf, name);
  return p ? strtol(p + strlen(name), NULL, 10) : 0;
}

static void* child_thread(void* arg) {
  (void)arg;
  return (void*)(long)touch_every_class();
}

static void child_body(void) {
  atomic_fetch_add(g_orphaned, vmstat_field("fork_orphaned_locks "));
  if (touch_every_class() != 0) _exit(10);
  pthread_t t;
  if (pthread_create(&t, NULL, child_thread, NULL) != 0) _exit(11);
  void* r;
  if (pthread_join(t, &r) != 0 || r != NULL) _exit(12);
  _exit(0);
}

static void* forker(void* arg) {
  (void)arg;
  for (int i = 0; i < kForksEach; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      atomic_fetch_add(&g_failures, 1);
      fprintf(stderr, "fork: errno %d\n", errno);
      break;
    }
    if (pid == 0) child_body();
    int st = wait_with_deadline(pid, 20.0);
    if (st == -1) {
      fprintf(stderr, "child %d hung (killed after 20 s)\n", pid);
      atomic_fetch_add(&g_failures, 1);
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "child %d: status 0x%x\n", pid, st);
      atomic_fetch_add(&g_failures, 1);
    }
  }
  return NULL;
}

/* Takes a random slot's block (freeing the block another thread left
 * there) and puts a new one: blocks move between threads. */
static void* churner(void* arg) {
  unsigned s = (unsigned)(long)arg * 2654435761u + 1;
  while (!atomic_load(&g_stop)) {
    s = s * 1103515245u + 12345u;
    unsigned slot = (s >> 8) % kSlots;
    size_t size = (s >> 16) % 3 == 0 ? ((s >> 4) % 200000) + 1 : ((s >> 4) % 2048) + 1;
    void* p = malloc(size);
    if (!p) {
      atomic_fetch_add(&g_failures, 1);
      break;
    }
    memset(p, 0x5a, size < 64 ? size : 64);
    free(atomic_exchange(&g_slots[slot], p));
  }
  return NULL;
}

int main(void) {
  g_orphaned = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(g_orphaned != MAP_FAILED);
  pthread_t f[kForkers], c[kChurners];
  for (long i = 0; i < kChurners; ++i) CHECK(pthread_create(&c[i], NULL, churner, (void*)i) == 0);
  for (int i = 0; i < kForkers; ++i) CHECK(pthread_create(&f[i], NULL, forker, NULL) == 0);
  for (int i = 0; i < kForkers; ++i) pthread_join(f[i], NULL);
  atomic_store(&g_stop, 1);
  for (int i = 0; i < kChurners; ++i) pthread_join(c[i], NULL);
  for (int i = 0; i < kSlots; ++i) free(atomic_load(&g_slots[i]));
  CHECK(atomic_load(&g_failures) == 0);
  printf(
      "fork_storm: %d forks from %d threads, %ld locks orphaned in the children and "
      "repaired: ok\n",
      kForkers * kForksEach, kForkers, atomic_load(g_orphaned));
  return 0;
}
