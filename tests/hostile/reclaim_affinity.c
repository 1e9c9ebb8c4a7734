/* Under a one-CPU affinity mask (taskset -c N), a program that frees a big
 * burst gets its memory back, and every thread of the process, the
 * allocator's reclaim thread included, stays within that mask. Before, the
 * reclaim thread reset its affinity to its node's CPUs. malloc_trim must
 * leave the caller's mask as it was too. */
#define _GNU_SOURCE
#include <dirent.h>
#include <malloc.h>
#include <sched.h>

#include "hostile.h"

static long rss_kb(void) {
  FILE* f = fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  CHECK(f != NULL);
  CHECK(fscanf(f, "%ld %ld", &size, &res) == 2);
  fclose(f);
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int nr_tasks(void) {
  DIR* d = opendir("/proc/self/task");
  struct dirent* e;
  int n = 0;
  CHECK(d != NULL);
  while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* Every task's Cpus_allowed_list must read exactly `want`. */
static void check_tasks(const char* want) {
  DIR* d = opendir("/proc/self/task");
  struct dirent* e;
  CHECK(d != NULL);
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[128], line[512], comm[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE* f = fopen(path, "r");
    if (f) {
      if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
      fclose(f);
    }
    snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
    f = fopen(path, "r");
    if (!f) continue; /* gone */
    while (fgets(line, sizeof line, f)) {
      char list[256];
      if (sscanf(line, "Cpus_allowed_list: %255s", list) == 1) {
        if (strcmp(list, want) != 0)
          fprintf(stderr, "task %s (%.*s) Cpus_allowed_list %s, want %s\n", e->d_name,
                  (int)strcspn(comm, "\n"), comm, list, want);
        CHECK(strcmp(list, want) == 0);
      }
    }
    fclose(f);
  }
  closedir(d);
}

int main(void) {
  cpu_set_t set;
  CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
  int cpu = -1;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpu = c; /* the last allowed: rarely a node's first */
  CHECK(cpu >= 0);
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  CHECK(sched_setaffinity(0, sizeof set, &set) == 0);
  char want[16];
  snprintf(want, sizeof want, "%d", cpu);

  long base = rss_kb();
  size_t n = 256 * 16; /* 256 MiB in 64 KiB pieces */
  void** v = malloc(n * sizeof *v);
  CHECK(v != NULL);
  for (size_t i = 0; i < n; ++i) {
    CHECK((v[i] = malloc(65536 - 128 * (i % 16))) != NULL);
    memset(v[i], (int)i, 65536 - 128 * (i % 16));
  }
  long peak = rss_kb();
  for (size_t i = 0; i < n; ++i) free(v[i]);
  free(v);
  /* Memory comes back: within 10% of the burst, in 3 s at most. */
  long limit = base + (peak - base) / 10;
  int ms = 0;
  while (rss_kb() > limit && ms < 3000) {
    usleep(10000);
    ms += 10;
  }
  if (rss_kb() > limit)
    fprintf(stderr, "RSS %ld KiB after 3 s (base %ld, peak %ld)\n", rss_kb(), base, peak);
  CHECK(rss_kb() <= limit);
  check_tasks(want);
  fprintf(stderr, "%d task(s), memory back in %d ms\n", nr_tasks(), ms);

  malloc_trim(0);
  cpu_set_t now;
  CHECK(sched_getaffinity(0, sizeof now, &now) == 0);
  CHECK(CPU_EQUAL(&now, &set));
  CHECK(sched_getcpu() == cpu);
  check_tasks(want);
  return 0;
}
