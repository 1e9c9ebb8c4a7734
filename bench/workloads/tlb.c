// tlb: a workload whose cost is TLB misses, for huge pages (thp=).
//
// Allocates `total` bytes of live small objects (default 1 GiB of 64-byte
// nodes, one malloc each), links them into one cycle in a random order, and
// follows that cycle for `steps` dependent loads. Each step lands on a random
// object of the whole heap: with 4 KiB pages nearly every step misses the
// TLB and walks page tables that do not fit the caches; with 2 MiB pages the
// mappings of a GiB fit the second-level TLB. The index array used to build
// the cycle is freed before the measured phase.
//
// elapsed_s is the chase only, cpu_s its CPU time (on a shared machine less
// noisy than elapsed time: preemption does not count); alloc_s is the allocation and linking phase
// (its page faults are cheaper with huge pages too). anon_huge_kib is
// AnonHugePages of /proc/self/smaps_rollup after the chase (what the kernel
// actually mapped huge; -1 without /proc), rss_kib VmRSS then.
//
//   tlb [-T total] [-s object_size] [-n steps] [-L limit_s]
#include "wl_args.h"

struct node {
  struct node* next;
  uint64_t val;
};

// "AnonHugePages:  1234 kB" from smaps_rollup, without stdio.
static long anon_huge_kib(void) {
  static char buf[8192];
  int fd = open("/proc/self/smaps_rollup", O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char* p = strstr(buf, "AnonHugePages:");
  return p ? strtol(p + 14, NULL, 10) : -1;
}

int main(int argc, char** argv) {
  uint64_t total = 1ull << 30, size = 64, steps = 20000000;
  const wl_opt opts[] = {{'T', WL_SIZE, &total, "total"},
                         {'s', WL_SIZE, &size, "object_size"},
                         {'n', WL_SIZE, &steps, "steps"}};
  wl_parse_args(argc, argv, "tlb", opts, WL_NOPTS(opts));
  if (size < sizeof(struct node) || total < size * 2) wl_die("bad arguments");
  size_t n = (size_t)(total / size);

  double t0 = wl_now();
  struct node** v = (struct node**)wl_xmalloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    struct node* p = (struct node*)wl_xmalloc((size_t)size);
    p->val = i;
    v[i] = p;
  }
  wl_rng r;
  wl_seed(&r, 77);
  for (size_t i = n; i > 1; i--) {  // Fisher-Yates, deterministic
    size_t j = (size_t)(wl_next(&r) % i);
    struct node* t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
  for (size_t i = 0; i + 1 < n; i++) v[i]->next = v[i + 1];
  v[n - 1]->next = v[0];
  struct node* start = v[0];
  free(v);
  double t1 = wl_now();

  struct timespec c1, c2;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
  uint64_t sum = 0;
  struct node* p = start;
  for (uint64_t s = 0; s < steps; s++) {
    sum += p->val;
    p = p->next;
  }
  double t2 = wl_now();
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c2);
  double cpu = (double)(c2.tv_sec - c1.tv_sec) + (double)(c2.tv_nsec - c1.tv_nsec) * 1e-9;

  // Check that every object is intact and still on the cycle, then free.
  uint64_t seen = 0, xsum = 0;
  p = start;
  do {
    if (p->val >= n) wl_corrupt("tlb", p, 0, p->val);
    xsum += p->val;
    struct node* next = p->next;
    p = next;
    ++seen;
  } while (p != start && seen <= n);
  if (seen != n || xsum != (uint64_t)n * (n - 1) / 2) wl_corrupt("tlb", start, n, seen);
  long huge = anon_huge_kib(), rss = wl_status_kib("VmRSS");
  p = start;
  for (size_t i = 0; i < n; i++) {
    struct node* next = p->next;
    free(p);
    p = next;
  }

  char extra[192];
  snprintf(extra, sizeof extra, "cpu_s=%.6f alloc_s=%.6f anon_huge_kib=%ld rss_kib=%ld", cpu,
           t1 - t0, huge, rss);
  wl_report("tlb", 1, t2 - t1, wl_mix(sum, n), extra);
  return 0;
}
