/* When a program's last thread calls pthread_exit, glibc ends the process.
 * A reclaim thread made with pthread_create counts as a thread, so the
 * process lived on with only ns-kswapd0: CPython's
 * test_3_join_in_forked_from_thread (a thread forks; the child's only thread
 * finishes with pthread_exit) hung because the fork child handler started
 * one. Two cases, each in a child with a deadline:
 *  a) main frees a big burst (the reclaim thread starts), then pthread_exit;
 *  b) a non-main thread forks, the child allocates and its only thread
 *     calls pthread_exit. */
#define _GNU_SOURCE
#include <pthread.h>

#include "hostile.h"

static void burst(size_t mib) {
  size_t n = mib * 16;
  void** v = malloc(n * sizeof *v);
  CHECK(v != NULL);
  for (size_t i = 0; i < n; ++i) {
    CHECK((v[i] = malloc(65536 - 64 * (i % 8))) != NULL);
    memset(v[i], 1, 4096);
  }
  for (size_t i = 0; i < n; ++i) free(v[i]);
  free(v);
}

static void* forker(void* arg) {
  (void)arg;
  pid_t pid = fork();
  if (pid == 0) {
    burst(8);
    CHECK(touch_every_class() == 0);
    pthread_exit(NULL); /* the child's last thread: glibc calls exit(0) */
  }
  return (void*)(long)wait_with_deadline(pid, 20);
}

int main(void) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    burst(96);
    usleep(100000); /* let the reclaim thread start and run */
    pthread_exit(NULL);
  }
  int st = wait_with_deadline(pid, 20);
  if (st == -1) fprintf(stderr, "a) pthread_exit of main did not end the process\n");
  CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);

  pthread_t t;
  void* r;
  CHECK(pthread_create(&t, NULL, forker, NULL) == 0);
  CHECK(pthread_join(t, &r) == 0);
  st = (int)(long)r;
  if (st == -1) fprintf(stderr, "b) pthread_exit in a fork child did not end it\n");
  CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  return 0;
}
