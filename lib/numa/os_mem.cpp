#include "lib/numa/os_mem.h"

#include <sys/mman.h>

#include "lib/base/base.h"

namespace numaslub {
namespace {

int linux_reserve(std::size_t len, std::size_t align, void** out) {
  long err = 0;
  // A hint is taken only exactly (it is aligned by the caller); anything
  // else is handed back and the kernel picks.
  if (void* hint = *out) {
    void* p =
        sys::mmap(hint, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, &err);
    if (p == hint) return 0;
    if (p) sys::munmap(p, len);
  }
  // Over-reserve and trim both ends so the range starts on `align`.
  std::size_t span = len + align;
  void* p =
      sys::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, &err);
  if (!p) return static_cast<int>(err);
  auto start = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t aligned = align_up(start, align);
  if (aligned > start) sys::munmap(p, aligned - start);
  std::uintptr_t end = start + span, want_end = aligned + len;
  if (end > want_end) sys::munmap(reinterpret_cast<void*>(want_end), end - want_end);
  *out = reinterpret_cast<void*>(aligned);
  return 0;
}

int linux_commit(void* addr, std::size_t len) {
  long r = sys::mprotect(addr, len, PROT_READ | PROT_WRITE);
  return r < 0 ? static_cast<int>(-r) : 0;
}

int linux_decommit(void* addr, std::size_t len) {
  long r = sys::mprotect(addr, len, PROT_NONE);
  return r < 0 ? static_cast<int>(-r) : 0;
}

int linux_bind(void* addr, std::size_t len, unsigned node) {
  unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {};
  if (node >= 1024) return 22;  // EINVAL
  mask[node / (8 * sizeof(unsigned long))] |= 1UL << (node % (8 * sizeof(unsigned long)));
  long r = sys::mbind(addr, len, 1 /*MPOL_PREFERRED*/, mask, 1024 + 1, 0);
  return r < 0 ? static_cast<int>(-r) : 0;
}

int linux_set_policy(void* addr, std::size_t len, int mode, const unsigned long* mask,
                     unsigned long maxnode) {
  // mbind reads maxnode - 1 bits (a historical off-by-one), hence the + 1.
  long r = sys::mbind(addr, len, mode, mask, maxnode + 1, 0);
  return r < 0 ? static_cast<int>(-r) : 0;
}

int linux_release(void* addr, std::size_t len) {
  long r = sys::madvise(addr, len, MADV_DONTNEED);
  return r < 0 ? static_cast<int>(-r) : 0;
}

int linux_unreserve(void* addr, std::size_t len) {
  long r = sys::munmap(addr, len);
  return r < 0 ? static_cast<int>(-r) : 0;
}

int linux_extend(void* addr, std::size_t len) {
  constexpr int kMapFixedNoreplace = 0x100000;  // Linux 4.17; older kernels take it as a hint
  long err = 0;
  void* p =
      sys::mmap(addr, len, PROT_NONE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | kMapFixedNoreplace, -1, 0, &err);
  if (!p) return static_cast<int>(err);
  if (p != addr) {  // a kernel that ignored the flag put it elsewhere
    sys::munmap(p, len);
    return 17;  // EEXIST
  }
  return 0;
}

// madvise fails with ENOMEM where any part of the range is unmapped, and
// MADV_NORMAL changes nothing where it is all mapped.
bool linux_probe_mapped(void* addr, std::size_t len) {
  return sys::madvise(addr, len, MADV_NORMAL) == 0;
}

// The kernel then faults 2 MiB pages into the range (THP "madvise" mode, the
// common default; "always" does so without asking, "never" ignores it), and
// khugepaged may collapse what is already there. EINVAL where the kernel
// has no THP.
int linux_advise_huge(void* addr, std::size_t len) {
  long r = sys::madvise(addr, len, MADV_HUGEPAGE);
  return r < 0 ? static_cast<int>(-r) : 0;
}

constexpr OsMem kLinux = {linux_reserve,      linux_commit,     linux_decommit,  linux_bind,
                          linux_release,      linux_set_policy, linux_unreserve, linux_extend,
                          linux_probe_mapped, linux_advise_huge};

}  // namespace

const OsMem& os_mem_linux() {
  return kLinux;
}

}  // namespace numaslub
