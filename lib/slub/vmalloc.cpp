#include "lib/slub/vmalloc.h"

#include <sys/mman.h>

#include <cstdint>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"
#include "lib/numa/numa.h"

namespace numaslub {
namespace {

struct Entry {
  std::uintptr_t addr;  // 0: empty; kTombstone: deleted
  std::size_t len;
  int nid;  // the node asked for (kNumaNoNode: the CPU's), kept for reuse
};
constexpr std::uintptr_t kTombstone = 1;

constinit Mutex g_lock;
// The table and its capacity in one word (a page-aligned mapping, log2 of
// the power-of-two capacity in the low bits), so that a fork child never
// finds a new table with the old capacity, whatever instant it was made at.
constinit std::uintptr_t g_tab = 0;
constexpr std::uintptr_t kCapBits = 63;
constinit std::size_t g_used = 0;  // live + tombstones
constinit std::size_t g_live = 0;
constinit std::size_t g_bytes = 0;

Entry* table() {
  return reinterpret_cast<Entry*>(g_tab & ~kCapBits);
}
std::size_t capacity() {
  return g_tab ? std::size_t{1} << (g_tab & kCapBits) : 0;
}

std::size_t slot_of(std::uintptr_t a) {
  return static_cast<std::size_t>((a >> kPageShift) * 0x9E3779B97F4A7C15ULL >> 20) &
         (capacity() - 1);
}

Entry* find(std::uintptr_t a) {
  std::size_t cap = capacity();
  Entry* t = table();
  for (std::size_t i = slot_of(a), n = 0; n < cap; i = (i + 1) & (cap - 1), ++n) {
    if (t[i].addr == a) return &t[i];
    if (t[i].addr == 0) return nullptr;
  }
  return nullptr;
}

bool grow() {
  std::size_t cap = capacity() ? capacity() * 2 : 256;
  void* m = sys::mmap(nullptr, cap * sizeof(Entry), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, nullptr);
  if (!m) return false;
  Entry* old = table();
  std::size_t old_cap = capacity();
  auto* t = static_cast<Entry*>(m);
  for (std::size_t i = 0; i < old_cap; ++i) {
    if (old[i].addr <= kTombstone) continue;
    std::size_t j =
        static_cast<std::size_t>((old[i].addr >> kPageShift) * 0x9E3779B97F4A7C15ULL >> 20) &
        (cap - 1);
    while (t[j].addr) j = (j + 1) & (cap - 1);
    t[j] = old[i];
  }
  // Complete before it is published, with one store.
  signal_fence();
  g_tab = reinterpret_cast<std::uintptr_t>(m) | ilog2(cap);
  g_used = g_live;
  if (old) sys::munmap(old, old_cap * sizeof(Entry));
  return true;
}

// The addresses of the last kFreedRing mappings freed (cached or unmapped),
// so that freeing one again is named a double free rather than handed to
// another allocator as foreign. An address mapped again leaves the ring.
constexpr unsigned kFreedRing = 64;
constinit std::uintptr_t g_freed[kFreedRing] = {};
constinit unsigned g_freed_next = 0;

void forget_freed(std::uintptr_t a) {
  for (std::uintptr_t& f : g_freed)
    if (f == a) f = 0;
}

bool insert(std::uintptr_t a, std::size_t len, int nid) {
  if ((g_used + 1) * 2 > capacity() && !grow()) return false;
  forget_freed(a);
  std::size_t cap = capacity();
  Entry* t = table();
  std::size_t i = slot_of(a);
  while (t[i].addr > kTombstone) i = (i + 1) & (cap - 1);
  if (t[i].addr == 0) ++g_used;
  t[i].len = len;
  t[i].nid = nid;
  signal_fence();  // the address (what a lookup matches) last
  t[i].addr = a;
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

// ---- the cache of freed mappings ---------------------------------------
//
// A freed mapping is kept, resident, for reuse by a request of about its
// size (up to 25% larger than asked; 16 entries, 64 MiB), so a program that keeps allocating
// and freeing blocks above 4 MiB (growing buffers, realloc chains) does not
// pay for munmap, mmap and a page fault per page every time. Entries are
// bounded in number and bytes; reclaim unmaps those idle for decay_ms
// (vmalloc_cache_release), and everything under pressure or malloc_trim.

namespace {

struct Cached {
  std::uintptr_t addr;
  std::size_t len;
  std::uint64_t freed_ns;
  int nid;
};
constexpr unsigned kCacheSlots = 16;
constexpr std::size_t kCacheMaxBytes = std::size_t{64} << 20;
constexpr std::size_t kCacheMaxEntry = std::size_t{32} << 20;
constinit Cached g_cache[kCacheSlots] = {};
constinit unsigned g_cached = 0;
constinit std::size_t g_cached_bytes = 0;
using WakeFn = void (*)();
constinit WakeFn g_wake = nullptr;

// Takes a cached mapping of at least len bytes (at most len + len/4),
// aligned to align, made for node nid. Lock held.
std::uintptr_t cache_take(std::size_t len, std::size_t align, int nid, std::size_t* got) {
  unsigned best = kCacheSlots;
  for (unsigned i = 0; i < g_cached; ++i) {
    const Cached& c = g_cache[i];
    if (c.len < len || c.len - len > len / 4 || c.addr % align || c.nid != nid) continue;
    if (best == kCacheSlots || c.len < g_cache[best].len) best = i;
  }
  if (best == kCacheSlots) return 0;
  std::uintptr_t a = g_cache[best].addr;
  *got = g_cache[best].len;
  g_cached_bytes -= *got;
  g_cache[best] = g_cache[--g_cached];
  return a;
}

}  // namespace

void vmalloc_set_wake_hook(void (*wake)()) {
  g_wake = wake;
}

std::size_t vmalloc_cache_release(std::uint64_t before_ns) {
  Cached out[kCacheSlots];
  unsigned n = 0;
  {
    LockGuard<Mutex> g(g_lock);
    for (unsigned i = 0; i < g_cached;) {
      if (g_cache[i].freed_ns <= before_ns) {
        out[n++] = g_cache[i];
        g_cached_bytes -= g_cache[i].len;
        g_cache[i] = g_cache[--g_cached];
      } else {
        ++i;
      }
    }
  }
  std::size_t bytes = 0;
  for (unsigned i = 0; i < n; ++i) {
    sys::munmap(reinterpret_cast<void*>(out[i].addr), out[i].len);
    bytes += out[i].len;
  }
  return bytes >> kPageShift;
}

std::size_t vmalloc_cache_bytes() {
  LockGuard<Mutex> g(g_lock);
  return g_cached_bytes;
}

std::size_t vmalloc_cache_bytes_hint() {
  return __atomic_load_n(&g_cached_bytes, __ATOMIC_RELAXED);
}

namespace {
// Bytes of mapping for a request: at least one page, so a zero-byte block
// still owns its address (a mapping of length 0 would be unmapped at once
// and its address handed out again). size <= kMaxAllocSize: cannot wrap.
std::size_t map_len(std::size_t size) {
  return size ? align_up(size, kPageSize) : kPageSize;
}
}  // namespace

void* vmalloc(std::size_t size, std::size_t align, int nid, bool* zeroed) {
  if (size > kMaxAllocSize || align > kMaxAllocSize) return nullptr;
  // Cache entries are keyed by the node the mapping was bound to, so "the
  // CPU's node" is resolved first: a mapping made on another node's CPU
  // must not be handed to this one.
  if (PageAllocator* pa = page_allocator_if_ready()) nid = static_cast<int>(pa->policy_node(nid));
  {
    std::size_t want = map_len(size), got = 0;
    LockGuard<Mutex> g(g_lock);
    if (g_cached && (g_used + 1) * 2 <= capacity()) {
      if (std::uintptr_t a = cache_take(want, align > kPageSize ? align : kPageSize, nid, &got)) {
        insert(a, got, nid);
        if (zeroed) *zeroed = false;
        return reinterpret_cast<void*>(a);
      }
    }
  }
  if (zeroed) *zeroed = true;
  if (void* p = vmalloc_map(size, align, nid)) return p;
  // Out of address space (RLIMIT_AS) or memory while freed mappings sit in
  // the cache: unmap them and try once more, rather than fail for want of
  // what we hold ourselves.
  if (vmalloc_cache_release(~std::uint64_t{0}) == 0) return nullptr;
  return vmalloc_map(size, align, nid);
}

void* vmalloc_map(std::size_t size, std::size_t align, int nid) {
  if (size > kMaxAllocSize || align > kMaxAllocSize) return nullptr;
  std::size_t len = map_len(size);
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
  if (!insert(p, len, nid)) {
    sys::munmap(reinterpret_cast<void*>(p), len);
    return nullptr;
  }
  return reinterpret_cast<void*>(p);
}

bool vfree(void* p) {
  std::size_t len;
  bool was_empty = false;
  {
    LockGuard<Mutex> g(g_lock);
    Entry* e = find(reinterpret_cast<std::uintptr_t>(p));
    if (!e) return false;
    len = e->len;
    int nid = e->nid;
    erase(e);
    g_freed[g_freed_next++ % kFreedRing] = reinterpret_cast<std::uintptr_t>(p);
    if (g_wake && len <= kCacheMaxEntry && g_cached < kCacheSlots &&
        g_cached_bytes + len <= kCacheMaxBytes) {
      was_empty = g_cached == 0;
      g_cache[g_cached++] = {reinterpret_cast<std::uintptr_t>(p), len, now_coarse_ns(), nid};
      g_cached_bytes += len;
      len = 0;
    }
  }
  if (len) sys::munmap(p, len);
  if (was_empty) g_wake();  // reclaim ages the cache from now on
  return true;
}

std::size_t vmalloc_size(const void* p) {
  LockGuard<Mutex> g(g_lock);
  Entry* e = find(reinterpret_cast<std::uintptr_t>(p));
  return e ? e->len : 0;
}

void* vrealloc(void* p, std::size_t new_size) {
  if (new_size > kMaxAllocSize) return nullptr;  // align_up would wrap
  std::size_t len = map_len(new_size);
  LockGuard<Mutex> g(g_lock);
  Entry* e = find(reinterpret_cast<std::uintptr_t>(p));
  if (!e) return nullptr;
  if ((g_used + 1) * 2 > capacity() && !grow()) return nullptr;
  e = find(reinterpret_cast<std::uintptr_t>(p));  // grow() moved the table
  long r = sys::mremap(p, e->len, len, MREMAP_MAYMOVE, nullptr);
  if (sys::failed(r)) return nullptr;
  int nid = e->nid;
  erase(e);
  insert(static_cast<std::uintptr_t>(r), len, nid);  // cannot fail: room was made above
  return reinterpret_cast<void*>(r);
}

VmallocMisuse vmalloc_misuse(const void* p, std::uintptr_t* mapping) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  LockGuard<Mutex> g(g_lock);
  for (std::uintptr_t f : g_freed)
    if (f == a) return VmallocMisuse::kFreed;
  Entry* t = table();
  for (std::size_t i = 0; i < capacity(); ++i)
    if (t[i].addr > kTombstone && a - t[i].addr < t[i].len) {
      *mapping = t[i].addr;
      return VmallocMisuse::kInterior;
    }
  return VmallocMisuse::kNone;
}

void vmalloc_fork_child(std::uint32_t self) {
  if (!g_lock.reset_if_orphaned(self)) return;
  // A thread gone with the fork held the lock: the table's entries are
  // whole (an address is written last), the counts may be one off.
  g_used = g_live = g_bytes = 0;
  Entry* t = table();
  for (std::size_t i = 0; i < capacity(); ++i) {
    if (t[i].addr) ++g_used;
    if (t[i].addr > kTombstone) {
      ++g_live;
      g_bytes += t[i].len;
    }
  }
  if (g_cached > kCacheSlots) g_cached = kCacheSlots;
  g_cached_bytes = 0;
  for (unsigned i = 0; i < g_cached; ++i) g_cached_bytes += g_cache[i].len;
}

std::size_t vmalloc_list(std::uintptr_t* out, std::size_t max) {
  LockGuard<Mutex> g(g_lock);
  Entry* t = table();
  std::size_t n = 0;
  for (std::size_t i = 0; i < capacity(); ++i)
    if (t[i].addr > kTombstone) {
      if (n < max) {
        out[2 * n] = t[i].addr;
        out[2 * n + 1] = t[i].len;
      }
      ++n;
    }
  return n;
}

void vmalloc_stats(std::size_t* count, std::size_t* bytes) {
  LockGuard<Mutex> g(g_lock);
  *count = g_live;
  *bytes = g_bytes;
}

void vmalloc_hold_lock_for_test(bool hold) {
  if (hold) {
    g_lock.lock();
    --t_ctx.locks_held;
  } else {
    ++t_ctx.locks_held;
    g_lock.unlock();
  }
}

}  // namespace numaslub
