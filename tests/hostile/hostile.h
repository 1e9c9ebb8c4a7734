/* Helpers shared by the hostile-case programs: checks that name what
 * failed, a child run with a deadline (a hang is a failure, not a stuck CI),
 * and a walk over every size class. */
#ifndef NS_HOSTILE_H
#define NS_HOSTILE_H

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* numaslub's own API (include/numaslub/numaslub.h): linked, a direct call;
 * preloaded, the library's symbol (the program is not linked against it). */
#ifdef NS_LINKED
#define NS_API(name) (&name)
#else
#define NS_API(name) ((__typeof__(&name))dlsym(RTLD_DEFAULT, #name))
#endif

#define CHECK(cond)                                                                              \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      fprintf(stderr, "%s:%d: CHECK failed: %s (errno %d)\n", __FILE__, __LINE__, #cond, errno); \
      _exit(1);                                                                                  \
    }                                                                                            \
  } while (0)

/* Waits up to `seconds` for pid; on timeout kills it and returns -1, else
 * the raw wait status. */
static inline int wait_with_deadline(pid_t pid, double seconds) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r < 0 && errno != EINTR) return -2;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) * 1e-9 >
        seconds) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    usleep(1000);
  }
}

/* Runs fn in a child process (so one case's failure does not hide the
 * next), prints its outcome and returns 0 when it exited 0. */
static inline int run_case(const char* name, int (*fn)(void), double seconds) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) _exit(fn());
  int st = wait_with_deadline(pid, seconds);
  int ok = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  fprintf(stderr, "%s: %s", name, ok ? "ok\n" : "FAILED");
  if (!ok && st == -1)
    fprintf(stderr, " (timed out after %g s)\n", seconds);
  else if (!ok && WIFSIGNALED(st))
    fprintf(stderr, " (signal %d)\n", WTERMSIG(st));
  else if (!ok)
    fprintf(stderr, "\n");
  return !ok;
}

/* Installs handler for sig (SA_RESTART) and blocks sig in the calling
 * thread, so that only the threads that unblock it (sigmask_one) take it. */
static inline void install_blocked_handler(int sig, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_RESTART;
  CHECK(sigaction(sig, &sa, NULL) == 0);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
}

/* pthread_sigmask(how) of one signal in the calling thread. */
static inline void sigmask_one(int how, int sig) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  CHECK(pthread_sigmask(how, &set, NULL) == 0);
}

/* Allocates, fills, checks and frees one block of each size from 1 byte to
 * 8 MiB (every small class, large blocks, a direct mapping). Async-signal
 * use is the point of some callers: no stdio here. Returns 0 on success. */
static inline int touch_every_class(void) {
  static const size_t big[] = {40000, 70000, 300000, 1u << 20, 3u << 20, 5u << 20, 8u << 20};
  for (size_t s = 1; s <= 32768 + 1; s += (s < 256 ? 16 : s / 8)) {
    unsigned char* p = (unsigned char*)malloc(s);
    if (!p) return 1;
    memset(p, 0xa5, s);
    if (p[s - 1] != 0xa5) return 2;
    free(p);
  }
  for (size_t i = 0; i < sizeof big / sizeof big[0]; ++i) {
    unsigned char* p = (unsigned char*)malloc(big[i]);
    if (!p) return 3;
    p[0] = 1;
    p[big[i] - 1] = 2;
    free(p);
  }
  return 0;
}

#endif
