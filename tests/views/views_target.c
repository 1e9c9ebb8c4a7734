/* The process the live-views tests read (views.sh): it runs under
 * LD_PRELOAD=libnumaslub.so, sets up a known heap, says "ready <pid>" on
 * stdout and waits for SIGTERM (then exits normally, so the library's
 * destructor removes its views file) or SIGKILL.
 *
 *   views_target hold OUTDIR   allocates the amounts of kHold (below), calls
 *                              numaslub_publish(), then writes its in-process
 *                              views (numaslub_buddyinfo, ...) into OUTDIR
 *                              for comparison with what a reader prints
 *   views_target churn         two threads allocate and free without pause
 *   views_target fork          publishes, then forks a child that allocates
 *                              kChildCount blocks of kChildSize and
 *                              publishes too; prints "child <pid>"
 *   views_target publish0      expects numaslub_publish() to fail with
 *                              ENOTSUP (run with NUMASLUB_CONF=publish=0),
 *                              then allocates on slow paths for 3 seconds
 *   views_target slowpaths     the same slow paths, without any call: its
 *                              file must come by itself (the control case)
 *
 * Nothing is printed with stdio after the heap is set up (stdio allocates):
 * messages go out with write(2). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "numaslub/numaslub.h"

#define NS_API(name) ((__typeof__(&name))dlsym(RTLD_DEFAULT, #name))

/* Sizes picked in classes a program's start-up barely uses; the tests
 * expect at least `count` active objects in the cache `name`. */
static const struct {
  size_t size;
  unsigned count;
  const char* name;
} kHold[] = {
    {3000, 4000, "kmalloc-3072"},
    {700, 10000, "kmalloc-768"},
    {13000, 600, "kmalloc-14336"},
    {40, 30000, "kmalloc-48"},
};
enum { kChildSize = 20000, kChildCount = 2000 };

static volatile sig_atomic_t g_stop;

static void on_term(int sig) {
  (void)sig;
  g_stop = 1;
}

static void say(const char* fmt, long v) {
  char buf[128];
  int n = snprintf(buf, sizeof buf, fmt, v);
  if (write(1, buf, (size_t)n) != n) _exit(3);
}

static void die(const char* what) {
  char buf[256];
  int n = snprintf(buf, sizeof buf, "views_target: %s (errno %d)\n", what, errno);
  if (write(2, buf, (size_t)n)) _exit(1);
  _exit(1);
}

static void wait_for_term(void) {
  while (!g_stop) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

static void write_view(const char* dir, const char* name, size_t (*fn)(char*, size_t)) {
  static char buf[1 << 20];
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  size_t n = fn(buf, sizeof buf);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, buf, n) != (ssize_t)n) die("write view");
  close(fd);
}

static int hold(const char* outdir) {
  /* Every symbol first: dlsym may allocate. */
  int (*publish)(void) = NS_API(numaslub_publish);
  size_t (*buddyinfo)(char*, size_t) = NS_API(numaslub_buddyinfo);
  size_t (*zoneinfo)(char*, size_t) = NS_API(numaslub_zoneinfo);
  size_t (*slabinfo)(char*, size_t) = NS_API(numaslub_slabinfo);
  size_t (*vmstat)(char*, size_t) = NS_API(numaslub_vmstat);
  if (!publish || !buddyinfo || !zoneinfo || !slabinfo || !vmstat)
    die("numaslub's API not found: not preloaded?");
  for (size_t i = 0; i < sizeof kHold / sizeof kHold[0]; ++i)
    for (unsigned k = 0; k < kHold[i].count; ++k) {
      char* p = malloc(kHold[i].size);
      if (!p) die("malloc");
      p[0] = (char)k; /* kept until exit */
    }
  if (publish() != 0) die("numaslub_publish");
  /* The same state, as the in-process views print it. */
  write_view(outdir, "buddyinfo", buddyinfo);
  write_view(outdir, "zoneinfo", zoneinfo);
  write_view(outdir, "slabinfo", slabinfo);
  write_view(outdir, "vmstat", vmstat);
  say("ready %ld\n", (long)getpid());
  wait_for_term();
  return 0;
}

static void* churn_thread(void* arg) {
  unsigned seed = (unsigned)(size_t)arg;
  enum { kSlots = 4096 };
  void** slot = calloc(kSlots, sizeof *slot);
  if (!slot) die("calloc");
  while (!g_stop) {
    for (int i = 0; i < 10000; ++i) {
      unsigned r = rand_r(&seed);
      unsigned k = r % kSlots;
      free(slot[k]);
      /* Mostly small, some up to 64 KiB (large blocks: page allocator). */
      size_t size = (r >> 12) % 16 == 0 ? 1 + (r >> 16) % 65536 : 1 + (r >> 16) % 2048;
      slot[k] = malloc(size);
      if (!slot[k]) die("malloc");
      ((char*)slot[k])[0] = 1;
    }
  }
  for (unsigned k = 0; k < kSlots; ++k) free(slot[k]);
  free(slot);
  return NULL;
}

static int churn(void) {
  pthread_t t[2];
  for (long i = 0; i < 2; ++i)
    if (pthread_create(&t[i], NULL, churn_thread, (void*)(i + 1))) die("pthread_create");
  say("ready %ld\n", (long)getpid());
  wait_for_term();
  for (int i = 0; i < 2; ++i) pthread_join(t[i], NULL);
  return 0;
}

static int fork_case(void) {
  int (*publish)(void) = NS_API(numaslub_publish);
  if (!publish) die("numaslub_publish not found: not preloaded?");
  for (int k = 0; k < 1000; ++k) ((char*)malloc(3000))[0] = 1;
  if (publish() != 0) die("numaslub_publish (parent)");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    for (int k = 0; k < kChildCount; ++k) ((char*)malloc(kChildSize))[0] = 1;
    if (publish() != 0) die("numaslub_publish (child)");
    say("child %ld\n", (long)getpid());
    wait_for_term();
    return 0;
  }
  say("ready %ld\n", (long)getpid());
  wait_for_term();
  kill(child, SIGTERM);
  int st;
  waitpid(child, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

static int slowpaths(int expect_off) {
  int (*publish)(void) = NS_API(numaslub_publish);
  if (!publish) die("numaslub_publish not found: not preloaded?");
  if (expect_off) {
    errno = 0;
    if (publish() != -1 || errno != ENOTSUP) die("numaslub_publish should fail with ENOTSUP");
  }
  /* Slow paths for a while, past several publish_ms: blocks above the
   * largest slab class (64 KiB), which always leave the fast path (40 KB
   * blocks did until they became a class, and then slow paths were rare
   * enough that the control run sometimes made no file). */
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  do {
    for (int k = 0; k < 100; ++k) free(malloc(100000 + (size_t)k));
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec - start.tv_sec < 3); /* past the 1 s before a file is made */
  say("ready %ld\n", (long)getpid());
  wait_for_term();
  return 0;
}

int main(int argc, char** argv) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  if (argc == 3 && strcmp(argv[1], "hold") == 0) return hold(argv[2]);
  if (argc == 2 && strcmp(argv[1], "churn") == 0) return churn();
  if (argc == 2 && strcmp(argv[1], "fork") == 0) return fork_case();
  if (argc == 2 && strcmp(argv[1], "publish0") == 0) return slowpaths(1);
  if (argc == 2 && strcmp(argv[1], "slowpaths") == 0) return slowpaths(0);
  fprintf(stderr, "usage: views_target hold OUTDIR | churn | fork | publish0 | slowpaths\n");
  return 2;
}
