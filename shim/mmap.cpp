// mmap, mmap64, munmap and mremap wrappers: the kernel's exact result and
// errno, the configured NUMA policy (mmap_policy) applied to anonymous
// mappings, and counters for the stats report. They make the system calls
// directly: resolving the next symbol with dlsym would allocate, and an
// allocation inside mmap is how a preloaded allocator deadlocks.
#include <sys/mman.h>

#include <cerrno>
#include <cstdarg>

#include "lib/base/base.h"
#include "lib/numa/numa.h"
#include "shim/shim.h"

using namespace numaslub;

namespace numaslub::shim {
constinit MmapStats g_mmap_stats;
}  // namespace numaslub::shim

namespace {

// mmap_policy='s values: the indices of its choices (lib/base/config.h).
enum class MmapPolicy : std::uint8_t { kDefault, kLocal, kInterleave, kBind };
static_assert(choice_index(kMmapPolicyChoices, "default") == int(MmapPolicy::kDefault) &&
              choice_index(kMmapPolicyChoices, "local") == int(MmapPolicy::kLocal) &&
              choice_index(kMmapPolicyChoices, "interleave") == int(MmapPolicy::kInterleave) &&
              choice_index(kMmapPolicyChoices, "bind") == int(MmapPolicy::kBind));

void apply_policy(void* addr, std::size_t len) {
  const Config& cfg = config();
  auto policy = static_cast<MmapPolicy>(cfg.mmap_policy);
  if (policy == MmapPolicy::kDefault) return;
  unsigned long mask[16] = {};
  constexpr unsigned kBits = 8 * sizeof(unsigned long);
  int mode;
  const Topology& topo = topology();
  switch (policy) {
    case MmapPolicy::kLocal:
      mode = 4;  // MPOL_LOCAL
      break;
    case MmapPolicy::kInterleave:
      mode = 3;  // MPOL_INTERLEAVE over every node's physical node
      for (unsigned n = 0; n < topo.nr_nodes; ++n)
        mask[topo.phys_node[n] / kBits] |= 1UL << (topo.phys_node[n] % kBits);
      break;
    default: {
      mode = 2;  // MPOL_BIND
      unsigned phys = cfg.mmap_node < topo.nr_nodes ? topo.phys_node[cfg.mmap_node] : 0;
      mask[phys / kBits] |= 1UL << (phys % kBits);
    }
  }
  // Best effort: the mapping is valid whatever the policy call says.
  sys::mbind(addr, len, mode, mode == 4 ? nullptr : mask, mode == 4 ? 0 : 16 * kBits, 0);
}

void* do_mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) {
  long r = sys::call(SYS_mmap, addr, len, prot, flags, fd, off);
  if (sys::failed(r)) {
    shim::g_mmap_stats.failures.fetch_add(1, std::memory_order_relaxed);
    errno = static_cast<int>(-r);
    return MAP_FAILED;
  }
  shim::g_mmap_stats.mmaps.fetch_add(1, std::memory_order_relaxed);
  shim::g_mmap_stats.bytes_mapped.fetch_add(len, std::memory_order_relaxed);
  if (flags & MAP_ANONYMOUS) apply_policy(reinterpret_cast<void*>(r), len);
  return reinterpret_cast<void*>(r);
}

}  // namespace

extern "C" {

NS_EXPORT void* mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) {
  return do_mmap(addr, len, prot, flags, fd, off);
}

NS_EXPORT void* mmap64(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) {
  return do_mmap(addr, len, prot, flags, fd, off);
}

NS_EXPORT int munmap(void* addr, std::size_t len) {
  long r = sys::munmap(addr, len);
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  shim::g_mmap_stats.munmaps.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

NS_EXPORT void* mremap(void* old, std::size_t old_len, std::size_t new_len, int flags, ...) {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  long r = sys::mremap(old, old_len, new_len, flags, new_addr);
  if (sys::failed(r)) {
    errno = static_cast<int>(-r);
    return MAP_FAILED;
  }
  shim::g_mmap_stats.mremaps.fetch_add(1, std::memory_order_relaxed);
  return reinterpret_cast<void*>(r);
}

}  // extern "C"
