/* Linked with -static and libnumaslub.a: checks by behaviour that malloc,
 * malloc_trim and mallinfo2 are numaslub's, then forks and threads. CTest
 * runs it with per-CPU (rseq) caches and with per-thread caches. */
#include <fcntl.h>
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

/* Resident pages of the process (/proc/self/statm's second field), read
 * without stdio so that reading it allocates nothing. */
static long resident_pages(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* field = strchr(buf, ' ');
  return field ? strtol(field + 1, NULL, 10) : -1;
}

/* malloc_trim returns 1 when it gave memory back to the OS, 0 when there was
 * none to give. 16 MiB of large blocks, written and then freed, stay cached
 * as resident free pages (under reclaim_start, 32 MiB, so no reclaim thread
 * starts and releases them first): a trim must release them, and the
 * resident size drop by most of them; a second trim right after finds
 * nothing. Large blocks bypass the per-CPU and per-thread object caches, so
 * this holds in both cache modes. */
static int check_trim(void) {
  enum { kBlocks = 16, kBlockSize = 1 << 20 };
  static void* blocks[kBlocks];
  malloc_trim(0); /* start with nothing cached */
  for (int i = 0; i < kBlocks; ++i) {
    blocks[i] = malloc(kBlockSize);
    if (!blocks[i]) return 5;
    memset(blocks[i], 0x5a, kBlockSize);
  }
  long before = resident_pages();
  for (int i = 0; i < kBlocks; ++i) free(blocks[i]);
  int first = malloc_trim(0);
  int second = malloc_trim(0);
  long after = resident_pages();
  long want = (long)kBlocks * kBlockSize / 4096 * 3 / 4;
  if (first != 1) {
    fprintf(stderr, "malloc_trim after freeing 16 MiB returned %d, not 1\n", first);
    return 6;
  }
  if (second != 0) {
    fprintf(stderr, "a second malloc_trim right after returned %d, not 0\n", second);
    return 7;
  }
  if (before < 0 || after < 0 || before - after < want) {
    fprintf(stderr, "malloc_trim: resident %ld -> %ld pages, want a drop of %ld\n", before, after,
            want);
    return 8;
  }
  return 0;
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
  int rc = check_trim();
  if (rc != 0) return rc;
  printf("static executable runs on numaslub (%zu bytes of heap)\n", mi.arena);
  return 0;
}
