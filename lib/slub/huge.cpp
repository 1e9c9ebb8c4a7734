#include "lib/slub/huge.h"

#include <sys/mman.h>

#include <cstdint>

#include "lib/base/bitops.h"
#include "lib/base/lock.h"
#include "lib/base/syscall.h"
#include "lib/buddy/page_alloc.h"
#include "lib/numa/page.h"

namespace numaslub {
namespace {

struct Entry {
  std::uintptr_t addr;  // 0: empty; kTombstone: deleted
  std::size_t len;
};
constexpr std::uintptr_t kTombstone = 1;

constinit Mutex g_lock;
constinit Entry* g_table = nullptr;
constinit std::size_t g_cap = 0;   // power of two
constinit std::size_t g_used = 0;  // live + tombstones
constinit std::size_t g_live = 0;
constinit std::size_t g_bytes = 0;

std::size_t slot_of(std::uintptr_t a) {
  return static_cast<std::size_t>((a >> kPageShift) * 0x9E3779B97F4A7C15ULL >> 20) & (g_cap - 1);
}

Entry* find(std::uintptr_t a) {
  if (!g_cap) return nullptr;
  for (std::size_t i = slot_of(a);; i = (i + 1) & (g_cap - 1)) {
    if (g_table[i].addr == a) return &g_table[i];
    if (g_table[i].addr == 0) return nullptr;
  }
}

bool grow() {
  std::size_t cap = g_cap ? g_cap * 2 : 256;
  void* m = sys::mmap(nullptr, cap * sizeof(Entry), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, nullptr);
  if (!m) return false;
  Entry* old = g_table;
  std::size_t old_cap = g_cap;
  g_table = static_cast<Entry*>(m);
  g_cap = cap;
  g_used = g_live;
  for (std::size_t i = 0; i < old_cap; ++i) {
    if (old[i].addr <= kTombstone) continue;
    std::size_t j = slot_of(old[i].addr);
    while (g_table[j].addr) j = (j + 1) & (g_cap - 1);
    g_table[j] = old[i];
  }
  if (old) sys::munmap(old, old_cap * sizeof(Entry));
  return true;
}

bool insert(std::uintptr_t a, std::size_t len) {
  if ((g_used + 1) * 2 > g_cap && !grow()) return false;
  std::size_t i = slot_of(a);
  while (g_table[i].addr > kTombstone) i = (i + 1) & (g_cap - 1);
  if (g_table[i].addr == 0) ++g_used;
  g_table[i] = {a, len};
  ++g_live;
  g_bytes += len;
  return true;
}

void erase(Entry* e) {
  g_bytes -= e->len;
  e->addr = kTombstone;
  --g_live;
}

}  // namespace

void* huge_alloc(std::size_t size, std::size_t align, int nid) {
  if (size > (std::size_t{1} << 46)) return nullptr;
  std::size_t len = align_up(size, kPageSize);
  std::size_t extra = align > kPageSize ? align : 0;
  void* m = sys::mmap(nullptr, len + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                      0, nullptr);
  if (!m) return nullptr;
  auto start = reinterpret_cast<std::uintptr_t>(m);
  std::uintptr_t p = extra ? align_up(start, align) : start;
  if (p > start) sys::munmap(m, p - start);
  if (start + len + extra > p + len)
    sys::munmap(reinterpret_cast<void*>(p + len), start + len + extra - (p + len));
  // The heap's memory policy covers direct mappings too (the CPU's home
  // node when nid < 0); a strict binding no allowed node accepts fails.
  PageAllocator* pa = page_allocator_if_ready();
  if (pa && pa->bind_mapping(reinterpret_cast<void*>(p), len, nid) != 0) {
    sys::munmap(reinterpret_cast<void*>(p), len);
    return nullptr;
  }
  LockGuard<Mutex> g(g_lock);
  if (!insert(p, len)) {
    sys::munmap(reinterpret_cast<void*>(p), len);
    return nullptr;
  }
  return reinterpret_cast<void*>(p);
}

bool huge_free(void* p) {
  std::size_t len;
  {
    LockGuard<Mutex> g(g_lock);
    Entry* e = find(reinterpret_cast<std::uintptr_t>(p));
    if (!e) return false;
    len = e->len;
    erase(e);
  }
  sys::munmap(p, len);
  return true;
}

std::size_t huge_size(const void* p) {
  LockGuard<Mutex> g(g_lock);
  Entry* e = find(reinterpret_cast<std::uintptr_t>(p));
  return e ? e->len : 0;
}

void* huge_resize(void* p, std::size_t new_size) {
  std::size_t len = align_up(new_size, kPageSize);
  LockGuard<Mutex> g(g_lock);
  Entry* e = find(reinterpret_cast<std::uintptr_t>(p));
  if (!e) return nullptr;
  if ((g_used + 1) * 2 > g_cap && !grow()) return nullptr;
  e = find(reinterpret_cast<std::uintptr_t>(p));  // grow() moved the table
  long r = sys::mremap(p, e->len, len, MREMAP_MAYMOVE, nullptr);
  if (sys::failed(r)) return nullptr;
  erase(e);
  insert(static_cast<std::uintptr_t>(r), len);  // cannot fail: room was made above
  return reinterpret_cast<void*>(r);
}

Mutex& huge_lock() {
  return g_lock;
}

void huge_stats(std::size_t* count, std::size_t* bytes) {
  LockGuard<Mutex> g(g_lock);
  *count = g_live;
  *bytes = g_bytes;
}

}  // namespace numaslub
