/* A program that allocates a little (every size class, a few MiB in all)
 * stays single-threaded, in the parent and in a fork child: the allocator
 * starts no thread of its own for it. Before, the library constructor and
 * the fork child handler each started ns-kswapd0, so unshare(CLONE_NEWUSER)
 * failed with EINVAL (only single-threaded processes may) and Python warned
 * on every fork. */
#define _GNU_SOURCE
#include <sched.h>

#include "hostile.h"

static int threads(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  int n = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1) break;
  fclose(f);
  return n;
}

static void churn_a_little(void) {
  void* p[256];
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 256; ++i) CHECK((p[i] = malloc((size_t)(i * 97 % 16000) + 1)) != NULL);
    for (int i = 0; i < 256; ++i) free(p[i]);
  }
  CHECK(touch_every_class() == 0);
}

int main(void) {
  churn_a_little();
  CHECK(threads() == 1);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    churn_a_little();
    if (threads() != 1) _exit(2);
    /* Only a multi-threaded process gets EINVAL; EPERM/ENOSPC mean user
     * namespaces are not allowed here, which is not ours to judge. */
    if (unshare(CLONE_NEWUSER) != 0 && errno == EINVAL) _exit(3);
    churn_a_little();
    _exit(0);
  }
  int st = wait_with_deadline(pid, 30);
  CHECK(st >= 0 && WIFEXITED(st));
  if (WEXITSTATUS(st) != 0) fprintf(stderr, "child: 2 = extra thread, 3 = unshare EINVAL\n");
  CHECK(WEXITSTATUS(st) == 0);
  return 0;
}
