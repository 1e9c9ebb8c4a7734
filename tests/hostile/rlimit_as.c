/* Under a small address-space limit (ulimit -v) the heap must work as far
 * as the limit allows, where glibc's malloc does: under 64 MiB even
 * malloc(64) failed, for good (the heap could not be reserved and the
 * failure was final); under 128 MiB small blocks ran out after 16 MiB.
 *
 * The limit must be in force before the library sets itself up (before
 * main), so the outer run sets RLIMIT_AS and re-executes itself (LD_PRELOAD
 * and NUMASLUB_CONF pass through the environment). The inner run checks:
 * malloc(64) works; small blocks, then 256 KiB blocks, then 8 MiB blocks
 * (direct mappings) can be had up to a good part of what the limit leaves;
 * running out is NULL with ENOMEM, never a crash; after freeing, malloc
 * works again. */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/resource.h>

#include "hostile.h"

#define INNER_ENV "NS_HOSTILE_RLIMIT_AS_MIB"
#define MiB (1024u * 1024u)

static size_t vm_size(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  size_t kb = 0;
  if (!f) return 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %zu kB", &kb) == 1) break;
  fclose(f);
  return kb * 1024;
}

static void* g_blocks[1 << 20];

/* Allocates blocks of `size` (each touched at both ends) until malloc fails
 * or `cap` bytes are held; frees them all. Returns the bytes it got. */
static size_t fill(size_t size, size_t cap, int* got_enomem) {
  size_t n = 0, total = 0;
  *got_enomem = 0;
  while (total < cap && n < sizeof g_blocks / sizeof g_blocks[0]) {
    errno = 0;
    unsigned char* p = malloc(size);
    if (!p) {
      *got_enomem = errno == ENOMEM;
      break;
    }
    p[0] = 1;
    p[size - 1] = 2;
    g_blocks[n++] = p;
    total += size;
  }
  /* Out of memory is not the end: a block can be had after freeing some. */
  if (n > 0) {
    free(g_blocks[--n]);
    void* q = malloc(size);
    CHECK(q != NULL);
    g_blocks[n++] = q;
  }
  for (size_t i = 0; i < n; ++i) free(g_blocks[i]);
  return total;
}

static int inner(size_t limit) {
  size_t vm = vm_size();
  void* p = malloc(64);
  CHECK(p != NULL);
  free(p);
  /* What the limit leaves besides the program itself: VmSize now includes
   * the heap's reservation, so take the program as at most 16 MiB. */
  size_t room = limit - 16 * MiB;
  int enomem = 0;
  size_t small = fill(1000, limit, &enomem);
  CHECK(enomem);
  size_t mid = fill(256 * 1024, limit, &enomem);
  CHECK(enomem);
  size_t big = fill(8 * MiB, limit, &enomem);
  CHECK(enomem);
  printf(
      "RLIMIT_AS %zu MiB (VmSize at start %zu MiB): small %zu MiB, 256 KiB blocks %zu MiB, "
      "8 MiB blocks %zu MiB\n",
      limit / MiB, vm / MiB, small / MiB, mid / MiB, big / MiB);
  /* Half of the room for the heap's blocks (glibc gets about all of it),
   * and direct mappings still fit besides. */
  fflush(stdout);
  CHECK(small >= room / 2);
  CHECK(mid >= room / 2);
  CHECK(big >= 8 * MiB);
  CHECK(touch_every_class() == 0);
  p = malloc(64);
  CHECK(p != NULL);
  free(p);
  return 0;
}

int main(int argc, char** argv) {
  (void)argc;
  const char* inner_mib = getenv(INNER_ENV);
  if (inner_mib) return inner((size_t)atol(inner_mib) * MiB);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  CHECK(n > 0);
  self[n] = 0;
  static const unsigned limits_mib[] = {64, 96, 128, 256};
  for (size_t i = 0; i < sizeof limits_mib / sizeof limits_mib[0]; ++i) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      char v[32];
      snprintf(v, sizeof v, "%u", limits_mib[i]);
      setenv(INNER_ENV, v, 1);
      struct rlimit rl = {(rlim_t)limits_mib[i] * MiB, (rlim_t)limits_mib[i] * MiB};
      struct rlimit cur;
      CHECK(getrlimit(RLIMIT_AS, &cur) == 0);
      if (cur.rlim_max != RLIM_INFINITY && cur.rlim_max < rl.rlim_max) rl.rlim_max = cur.rlim_max;
      if (rl.rlim_cur > rl.rlim_max) rl.rlim_cur = rl.rlim_max;
      CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
      execv(self, argv);
      _exit(127);
    }
    int st = wait_with_deadline(pid, 60);
    CHECK(st != -1);
    if (WIFSIGNALED(st)) fprintf(stderr, "limit %u MiB: signal %d\n", limits_mib[i], WTERMSIG(st));
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
      fprintf(stderr, "limit %u MiB: inner run failed\n", limits_mib[i]);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  return 0;
}
