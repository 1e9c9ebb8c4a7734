/* Without /sys and /proc (chroot, minimal container, a sandbox that mounts
 * an empty tmpfs over them), malloc must work on every CPU. It segfaulted
 * on any CPU above 0: the CPU count fell back to 1 and only CPU 0's
 * sheaves existed.
 *
 * The library sets itself up before main (its constructor under
 * LD_PRELOAD, the first malloc of libc's start-up when linked), so the
 * environment must be hidden before the program starts: the outer run
 * makes a private mount namespace, mounts empty tmpfs over /sys and /proc
 * and re-executes itself there (LD_PRELOAD and NUMASLUB_CONF pass through
 * the environment), pinned to its lowest CPU, so all the library can learn
 * at start-up is one CPU. The inner run widens its affinity again, pins a thread to each CPU in
 * turn and allocates in every size class, then runs one thread per CPU at once, freeing each
 * other's blocks. Where no namespace can be made it prints why and passes. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <sys/mount.h>

#include "hostile.h"

#define INNER_ENV "NS_HOSTILE_NO_SYSFS_INNER"
#define MAX_CPUS 1024

static cpu_set_t g_allowed;

static void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  CHECK(sched_setaffinity(0, sizeof s, &s) == 0);
}

/* One allocation per class, kept so another thread frees it. */
static void* g_blocks[MAX_CPUS][64];

static void* on_cpu(void* arg) {
  int cpu = (int)(long)arg;
  pin(cpu);
  CHECK(sched_getcpu() == cpu);
  CHECK(touch_every_class() == 0);
  size_t n = 0;
  for (size_t s = 1; s <= 32768 && n < 64; s += (s < 256 ? 16 : s / 4)) {
    g_blocks[cpu][n] = malloc(s);
    CHECK(g_blocks[cpu][n] != NULL);
    memset(g_blocks[cpu][n], cpu, s);
    ++n;
  }
  return NULL;
}

static void* free_other(void* arg) {
  int cpu = (int)(long)arg, ncpu = CPU_COUNT(&g_allowed);
  pin(cpu);
  /* Free the blocks of the next allowed CPU's thread (a remote free). */
  int other = cpu;
  for (int i = 1; i <= MAX_CPUS; ++i) {
    int c = (cpu + i) % MAX_CPUS;
    if (CPU_ISSET(c, &g_allowed)) {
      other = c;
      break;
    }
  }
  (void)ncpu;
  for (int i = 0; i < 64 && g_blocks[other][i]; ++i) free(g_blocks[other][i]);
  CHECK(touch_every_class() == 0);
  return NULL;
}

static int inner(void) {
  /* The point of the test: nothing of /sys or /proc is visible. */
  CHECK(access("/sys/devices/system/cpu/possible", F_OK) != 0);
  CHECK(access("/proc/self/status", F_OK) != 0);
  /* Started on one CPU; every CPU of the cpuset again (the kernel keeps the
   * allowed ones). */
  cpu_set_t all;
  memset(&all, 0xff, sizeof all);
  CHECK(sched_setaffinity(0, sizeof all, &all) == 0);
  CHECK(sched_getaffinity(0, sizeof g_allowed, &g_allowed) == 0);
  int ran = 0;
  /* Each CPU in turn, one thread at a time. */
  for (int c = 0; c < MAX_CPUS; ++c) {
    if (!CPU_ISSET(c, &g_allowed)) continue;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, on_cpu, (void*)(long)c) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    ++ran;
  }
  /* All at once, each freeing another CPU's blocks. */
  pthread_t ts[MAX_CPUS];
  int nt = 0;
  for (int c = 0; c < MAX_CPUS; ++c)
    if (CPU_ISSET(c, &g_allowed))
      CHECK(pthread_create(&ts[nt++], NULL, free_other, (void*)(long)c) == 0);
  for (int i = 0; i < nt; ++i) CHECK(pthread_join(ts[i], NULL) == 0);
  /* The main thread, on each CPU. */
  for (int c = 0; c < MAX_CPUS; ++c) {
    if (!CPU_ISSET(c, &g_allowed)) continue;
    pin(c);
    CHECK(touch_every_class() == 0);
  }
  printf("no_sysfs: %d CPUs, every class on each, without /sys and /proc\n", ran);
  return 0;
}

int main(int argc, char** argv) {
  (void)argc;
  if (getenv(INNER_ENV)) return inner();
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(n > 0);
  self[n] = 0;
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    /* CLONE_NEWNS alone needs CAP_SYS_ADMIN; unprivileged, a user
     * namespace gives it. */
    if (unshare(CLONE_NEWNS) != 0 && unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
      printf("SKIP: no mount namespace (unshare: %s)\n", strerror(errno));
      _exit(77);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("none", "/sys", "tmpfs", 0, "size=4k") != 0 ||
        mount("none", "/proc", "tmpfs", 0, "size=4k") != 0) {
      printf("SKIP: cannot hide /sys and /proc (mount: %s)\n", strerror(errno));
      _exit(77);
    }
    cpu_set_t s;
    CHECK(sched_getaffinity(0, sizeof s, &s) == 0);
    for (int c = 0; c < MAX_CPUS; ++c)
      if (CPU_ISSET(c, &s)) {
        pin(c);
        break;
      }
    setenv(INNER_ENV, "1", 1);
    execv(self, argv);
    printf("SKIP: re-exec failed: %s\n", strerror(errno));
    _exit(77);
  }
  int st = wait_with_deadline(pid, 100);
  CHECK(st != -1); /* a hang */
  if (WIFEXITED(st) && WEXITSTATUS(st) == 77) return 0;
  if (WIFSIGNALED(st)) fprintf(stderr, "no_sysfs: inner run killed by signal %d\n", WTERMSIG(st));
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  return 0;
}
