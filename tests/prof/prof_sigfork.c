// Sampling in every context the allocator runs in (tests/prof/prof.sh,
// case sigfork), with prof_sample small enough that samples are taken all
// the time:
// - a signal handler allocates (sig_site) and frees, called by a timer
//   that interrupts the main loop, itself inside malloc and free often
//   (then the handler's calls are nested: not sampled, never waiting);
// - a second thread allocates and frees meanwhile;
// - the main thread forks children: each allocates at child_site, keeps it,
//   and exits normally (so its prof_final profile, %p in the path, holds
//   child_site and what it inherited from parent_site);
// - the handler forks too, now and then: that child allocates and _exits.
//   (The timer's signal goes to the main thread only, and is blocked around
//   the main thread's own fork: glibc's fork takes its atfork lock, so a
//   handler forking inside a fork deadlocks in glibc, whatever the malloc.)
// It exits 0 when every child exited 0; a deadlock is the test's timeout.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

// noipa: no inlining, no folding of identical functions (the sites must
// stay three functions for the profile to tell them apart).
#define NOINLINE __attribute__((noipa))

volatile int g_which;

void* volatile g_sink;
static volatile sig_atomic_t g_signals;
static volatile int g_stop;

NOINLINE static void* sig_site(size_t n) {
  void* p = malloc(n);
  g_which = 1;
  return p;
}

static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  // The last 16 stay allocated: some are sampled and live at exit.
  static void* ring[16];
  void* p = sig_site(200 + (g_signals % 7) * 1000);
  if (p) memset(p, 1, 16);
  free(ring[g_signals % 16]);
  ring[g_signals % 16] = p;
  if (++g_signals % 50 == 0) {
    pid_t c = fork();
    if (c == 0) {
      void* q = sig_site(4096);
      _exit(q ? 0 : 1);
    }
    if (c > 0) waitpid(c, NULL, 0);
  }
  errno = saved;
}

NOINLINE static void* parent_site(size_t n) {
  void* p = malloc(n);
  g_which = 2;
  return p;
}

NOINLINE static void* child_site(size_t n) {
  void* p = malloc(n);
  g_which = 3;
  return p;
}

static void* churn(void* arg) {
  (void)arg;
  sigset_t alarm;
  sigemptyset(&alarm);
  sigaddset(&alarm, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &alarm, NULL);
  while (!g_stop) {
    void* p = malloc(48);
    g_sink = p;
    free(p);
    void* q = malloc(9000);
    g_sink = q;
    free(q);
  }
  return NULL;
}

int main(void) {
  static void* kept[64];
  for (int i = 0; i < 64; ++i) kept[i] = parent_site(64 << 10);  // sampled, inherited
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 200}, {0, 200}};
  setitimer(ITIMER_REAL, &it, NULL);
  pthread_t t;
  if (pthread_create(&t, NULL, churn, NULL) != 0) return 2;
  int failed = 0;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 20000; ++i) {
      void* p = malloc((size_t)(i % 300) * 16 + 1);
      g_sink = p;
      free(p);
    }
    sigset_t alarm, old;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    sigprocmask(SIG_BLOCK, &alarm, &old);
    pid_t c = fork();
    if (c != 0) sigprocmask(SIG_SETMASK, &old, NULL);
    if (c == 0) {
      static void* mine[32];
      for (int i = 0; i < 32; ++i) mine[i] = child_site(32 << 10);
      g_sink = mine;
      exit(0);  // the destructor writes this child's profile
    }
    int st = 0;
    if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) ++failed;
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  g_stop = 1;
  pthread_join(t, NULL);
  g_sink = kept;
  // The parent's pid names its profile: with pids wrapping around (a busy
  // machine, pid_max 32768), a child's may be the smaller one.
  printf("signals %d failed %d parent %d\n", (int)g_signals, failed, (int)getpid());
  return failed ? 1 : 0;
}
