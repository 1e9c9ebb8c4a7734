/* Linked with -static and libnumaslub.a: checks by behaviour that malloc,
 * malloc_trim and mallinfo2 are numaslub's, then forks and threads. */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

size_t numaslub_slabinfo(char* buf, size_t len);

static void* worker(void* arg) {
  (void)arg;
  for (int i = 0; i < 100000; ++i) free(malloc((size_t)(i % 4000) + 1));
  return NULL;
}

int main(void) {
  void* p = malloc(100);
  if (malloc_usable_size(p) != 112) {
    fprintf(stderr, "usable size %zu: not numaslub's malloc\n", malloc_usable_size(p));
    return 1;
  }
  static char buf[1 << 16];
  if (numaslub_slabinfo(buf, sizeof buf) == 0 || !strstr(buf, "kmalloc-112")) return 2;
  struct mallinfo2 mi = mallinfo2();
  if (mi.arena == 0) return 3;
  free(p);
  pthread_t t[2];
  for (int i = 0; i < 2; ++i) pthread_create(&t[i], NULL, worker, NULL);
  for (int i = 0; i < 2; ++i) pthread_join(t[i], NULL);
  pid_t pid = fork();
  if (pid == 0) {
    free(malloc(1000));
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 4;
  if (malloc_trim(0) < 0) return 5;
  printf("static executable runs on numaslub (%zu bytes of heap)\n", mi.arena);
  return 0;
}
