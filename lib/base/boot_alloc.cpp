#include "lib/base/boot_alloc.h"

#include <sys/mman.h>

#include "lib/base/bitops.h"
#include "lib/base/compiler.h"
#include "lib/base/lock.h"
#include "lib/base/syscall.h"

namespace numaslub {
namespace {

constexpr std::size_t kChunk = 1 << 20;

constinit Mutex g_lock;
constinit char* g_cur = nullptr;
constinit char* g_end = nullptr;
constinit std::size_t g_bytes = 0;
constinit unsigned g_skip_for_test = 0;
constinit unsigned g_fail_for_test = 0;

}  // namespace

void* boot_alloc(std::size_t size, std::size_t align) {
  if (align < 64) align = 64;
  LockGuard<Mutex> g(g_lock);
  if (NS_UNLIKELY(g_fail_for_test)) {
    if (g_skip_for_test) {
      --g_skip_for_test;
    } else {
      --g_fail_for_test;
      return nullptr;
    }
  }
  auto cur = reinterpret_cast<std::uintptr_t>(g_cur);
  std::uintptr_t start = align_up(cur, align);
  if (!g_cur || start + size > reinterpret_cast<std::uintptr_t>(g_end)) {
    // Larger requests get a mapping of their own; the current chunk stays.
    std::size_t len = align_up(size + align, 4096);
    bool own = len > kChunk / 2;
    if (!own) len = kChunk;
    void* p = sys::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0,
                        nullptr);
    if (!p) return nullptr;
    start = align_up(reinterpret_cast<std::uintptr_t>(p), align);
    if (own) {
      g_bytes += size;
      return reinterpret_cast<void*>(start);
    }
    g_cur = static_cast<char*>(p);
    g_end = g_cur + len;
  }
  g_cur = reinterpret_cast<char*>(start + size);
  g_bytes += size;
  return reinterpret_cast<void*>(start);
}

void boot_alloc_fork_child(std::uint32_t self) {
  // A thread gone with the fork may have been switching chunks (g_cur and
  // g_end of different chunks): start a fresh chunk, leaving the old one.
  if (g_lock.reset_if_orphaned(self)) g_cur = g_end = nullptr;
}

void boot_alloc_fail_for_test(unsigned skip, unsigned n) {
  LockGuard<Mutex> g(g_lock);
  g_skip_for_test = skip;
  g_fail_for_test = n;
}

std::size_t boot_alloc_bytes() {
  LockGuard<Mutex> g(g_lock);
  return g_bytes;
}

}  // namespace numaslub
