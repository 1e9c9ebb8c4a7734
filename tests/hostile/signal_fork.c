/* fork() from a signal handler that interrupted malloc or free on the same
 * thread (issue 10). The allocating thread churns through slow paths
 * (sheaf refills and flushes, large blocks, the zone); a timer signal lands
 * anywhere in it, and the handler forks. Before, the fork's prepare
 * handler waited for a lock the interrupted frame held: a self-deadlock.
 * Now the fork returns in parent and child, and the child allocates in
 * every size class from inside the handler and exits. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/time.h>

#include "hostile.h"

enum { kForks = 300, kMaxPids = 4096 };

static pid_t g_pids[kMaxPids];
static atomic_int g_npids;
static atomic_int g_fork_errors;

static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  if (atomic_load(&g_npids) < kForks) {
    pid_t pid = fork();
    if (pid == 0) _exit(touch_every_class() == 0 ? 0 : 20);
    if (pid < 0) {
      atomic_fetch_add(&g_fork_errors, 1);
    } else {
      int i = atomic_fetch_add(&g_npids, 1);
      if (i < kMaxPids) g_pids[i] = pid;
    }
  }
  errno = saved;
}

/* Slow paths all the time: batches larger than a sheaf, freed in another
 * order, plus large blocks. */
static void* churn(void* arg) {
  (void)arg;
  sigmask_one(SIG_UNBLOCK, SIGALRM);
  void* keep[600];
  unsigned s = 12345;
  while (atomic_load(&g_npids) < kForks) {
    for (int i = 0; i < 600; ++i) {
      s = s * 1103515245u + 12345u;
      size_t size = (i % 50 == 0) ? 65600 + (s >> 8) % 400000 : 16 + (s >> 8) % 1500; /* large */
      keep[i] = malloc(size);
      CHECK(keep[i] != NULL);
      memset(keep[i], 1, 16);
    }
    for (int i = 599; i >= 0; i -= 2) free(keep[i]);
    for (int i = 0; i < 600; i += 2) free(keep[i]);
  }
  return NULL;
}

int main(void) {
  /* Only the churning thread takes the signal. */
  install_blocked_handler(SIGALRM, on_alarm);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, churn, NULL) == 0);  // it unblocks SIGALRM
  struct itimerval it = {{0, 2000}, {0, 2000}};
  CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
  pthread_join(t, NULL);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  int n = atomic_load(&g_npids);
  int bad = 0;
  for (int i = 0; i < n && i < kMaxPids; ++i) {
    int st = wait_with_deadline(g_pids[i], 20.0);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "child %d: status %d\n", g_pids[i], st);
      ++bad;
    }
  }
  CHECK(atomic_load(&g_fork_errors) == 0);
  CHECK(bad == 0);
  printf("signal_fork: %d forks from a signal handler: ok\n", n);
  return 0;
}
