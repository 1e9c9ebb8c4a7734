// spawn: runs one workload and reports its resource usage from wait4.
//
// Why a helper: Linux folds the hiwater RSS of the address space a process
// execs *from* into its ru_maxrss. A child started by Python (fork or vfork,
// then exec) therefore reports at least the Python interpreter's RSS. Forked
// from this small program it reports its own peak.
//
//   spawn [-p preload.so] [-t timeout_s] -o report_file -- program args...
//
// The program gets LD_PRELOAD=preload.so (none without -p; this helper itself
// never runs under the preloaded allocator), stdin/stdout/stderr inherited.
// After -t seconds it is killed with SIGKILL. The report file gets one line:
//   exit=<code|-1> signal=<sig|0> timedout=<0|1> maxrss_kib=<n> utime_s=<s> stime_s=<s>
//   minflt=<n> majflt=<n>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t g_child;
static volatile sig_atomic_t g_timedout;

static void on_alarm(int sig) {
  (void)sig;
  g_timedout = 1;
  if (g_child > 0) kill(g_child, SIGKILL);
}

int main(int argc, char** argv) {
  const char* preload = NULL;
  const char* report = NULL;
  unsigned timeout = 0;
  int c;
  while ((c = getopt(argc, argv, "+p:t:o:")) != -1) {
    switch (c) {
      case 'p':
        preload = optarg;
        break;
      case 't':
        timeout = (unsigned)atoi(optarg);
        break;
      case 'o':
        report = optarg;
        break;
      default:
        fprintf(stderr, "usage: spawn [-p preload.so] [-t timeout_s] -o report -- program args\n");
        return 2;
    }
  }
  if (!report || optind >= argc) {
    fprintf(stderr, "spawn: need -o report and a program\n");
    return 2;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("spawn: fork");
    return 2;
  }
  if (pid == 0) {
    if (preload)
      setenv("LD_PRELOAD", preload, 1);
    else
      unsetenv("LD_PRELOAD");
    execv(argv[optind], &argv[optind]);
    fprintf(stderr, "spawn: exec %s: %s\n", argv[optind], strerror(errno));
    _exit(127);
  }
  g_child = pid;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  if (timeout) alarm(timeout);
  int st = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  while (wait4(pid, &st, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("spawn: wait4");
      return 2;
    }
  }
  alarm(0);
  FILE* f = fopen(report, "w");
  if (!f) {
    perror("spawn: report");
    return 2;
  }
  fprintf(f,
          "exit=%d signal=%d timedout=%d maxrss_kib=%ld utime_s=%.6f stime_s=%.6f minflt=%ld "
          "majflt=%ld\n",
          WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0, (int)g_timedout,
          ru.ru_maxrss, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6,
          ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6, ru.ru_minflt, ru.ru_majflt);
  fclose(f);
  return 0;
}
