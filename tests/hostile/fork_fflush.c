/* fork() racing fflush(NULL) and getline (glibc's tst-malloc-fork-deadlock,
 * issue 10). getline holds its FILE's lock while it grows the line buffer
 * with realloc; fflush(NULL) holds stdio's list lock and waits for each
 * FILE's lock; glibc's fork takes the list lock after running the atfork
 * prepare handlers. An allocator whose prepare handler takes its own locks
 * deadlocks: the forker holds ours and waits for the list lock, the flusher
 * holds it and waits for the FILE, the reader holds the FILE and waits for
 * ours in realloc. Lines are long so the reallocs need the page allocator's
 * locks, not only a lock-free sheaf. */
#include <pthread.h>
#include <stdatomic.h>

#include "hostile.h"

enum { kForks = 120, kLines = 48 };

static atomic_int g_stop;
static char g_path[64];

static void* reader(void* arg) {
  (void)arg;
  FILE* f = fopen(g_path, "r");
  CHECK(f != NULL);
  while (!atomic_load(&g_stop)) {
    char* line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, f) < 0) rewind(f);
    free(line); /* every line grows a new buffer from nothing */
  }
  fclose(f);
  return NULL;
}

static void* flusher(void* arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) fflush(NULL);
  return NULL;
}

int main(void) {
  snprintf(g_path, sizeof g_path, "/tmp/ns-fork-fflush.%d", (int)getpid());
  FILE* w = fopen(g_path, "w");
  CHECK(w != NULL);
  for (int i = 0; i < kLines; ++i) {
    int n = 1000 + (i * 7919) % 300000;
    for (int k = 0; k < n; ++k) fputc('a' + k % 26, w);
    fputc('\n', w);
  }
  CHECK(fclose(w) == 0);
  pthread_t rd[2], fl;
  for (int i = 0; i < 2; ++i) CHECK(pthread_create(&rd[i], NULL, reader, NULL) == 0);
  CHECK(pthread_create(&fl, NULL, flusher, NULL) == 0);
  int bad = 0;
  for (int i = 0; i < kForks; ++i) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      /* The child may use stdio and malloc freely. */
      char* s = malloc(100);
      if (!s) _exit(30);
      snprintf(s, 100, "child %d", i);
      fflush(NULL);
      _exit(touch_every_class());
    }
    int st = wait_with_deadline(pid, 20.0);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "child %d: status %d\n", pid, st);
      ++bad;
    }
  }
  atomic_store(&g_stop, 1);
  for (int i = 0; i < 2; ++i) pthread_join(rd[i], NULL);
  pthread_join(fl, NULL);
  unlink(g_path);
  CHECK(bad == 0);
  printf("fork_fflush: %d forks racing fflush(NULL) and getline: ok\n", kForks);
  return 0;
}
