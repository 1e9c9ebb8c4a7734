// Run under a small RLIMIT_AS (set by the test before exec, so the heap is
// sized for it at start-up) with reclaim=off: fills the heap with small
// objects, frees them all, then asks for large blocks until the heap is full
// again. The last of those need the memory the slab caches still hold, which
// only direct reclaim gives back. Exit 0 when it did.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "lib/buddy/page_alloc.h"
#include "lib/slub/kmalloc.h"

using namespace numaslub;

int main() {
  if (!slub_init()) return 2;
  PageAllocator* pa = page_allocator();
  std::size_t heap = pa->arena().size();
  if (heap > (std::size_t{2} << 30)) {
    std::printf("heap of %zu MiB: run me under ulimit -v (I fill the whole heap)\n", heap >> 20);
    return 77;
  }
  std::vector<void*> small;
  small.reserve(heap / 2048);
  for (;;) {
    void* p = kmalloc(2000);
    if (!p) break;
    small.push_back(p);
  }
  if (errno != ENOMEM) return 3;
  for (void* p : small) kfree(p);
  std::vector<void*> large;
  for (;;) {
    void* p = kmalloc(2 << 20);
    if (!p) break;
    large.push_back(p);
  }
  static char buf[8192];
  vmstat(buf, sizeof buf);
  const char* dr = std::strstr(buf, "direct_reclaim ");
  unsigned long n = dr ? std::strtoul(dr + 15, nullptr, 10) : 0;
  std::size_t got = large.size() * (2 << 20);
  std::printf("heap %zu MiB, small objects %zu, large blocks %zu MiB, direct reclaims %lu\n",
              heap >> 20, small.size(), got >> 20, n);
  if (n == 0) return 4;
  if (got < heap / 100 * 90) return 5;  // the cached memory came back
  return 0;
}
