#include "lib/slub/vmalloc.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"
#include "lib/numa/numa.h"
#include "lib/slub/vmalloc_thp.h"

namespace numaslub {
namespace {

struct Entry {
  std::uintptr_t addr;  // 0: empty; kTombstone: deleted
  std::size_t len;
  // The mmap (or mremap move) the range was cut from: ranges of one origin
  // side by side are one VMA, and rejoin in the cache when both are free.
  std::uint64_t origin;
  int nid;    // the node asked for (kNumaNoNode: the CPU's), kept for reuse
  bool huge;  // advised MADV_HUGEPAGE when made (its density tells nothing)
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
constinit std::atomic<std::uint64_t> g_origins{0};

std::uint64_t new_origin() {
  return g_origins.fetch_add(1, std::memory_order_relaxed) + 1;
}

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

bool insert(std::uintptr_t a, std::size_t len, std::uint64_t origin, int nid, bool huge) {
  if ((g_used + 1) * 2 > capacity() && !grow()) return false;
  forget_freed(a);
  std::size_t cap = capacity();
  Entry* t = table();
  std::size_t i = slot_of(a);
  while (t[i].addr > kTombstone) i = (i + 1) & (cap - 1);
  if (t[i].addr == 0) ++g_used;
  t[i].len = len;
  t[i].origin = origin;
  t[i].nid = nid;
  t[i].huge = huge;
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
// A program that keeps allocating and freeing blocks above 4 MiB (growing
// buffers, per-request scratch, an interpreter's big arrays) would pay at
// every round the mmap, mbind and munmap calls and, above all, a fault and
// the kernel's zeroing for every page it writes again: `large` (blocks of
// 64 KiB..16 MiB, every page written) spent 0.5 s of its 0.55 s in the
// kernel, 280k faults where mimalloc, which keeps its freed memory, took
// 48k. So a freed mapping of up to 32 MiB stays mapped and resident, as it
// is, in a cache of at most 16 entries and 64 MiB (the newest freed stay;
// the oldest are unmapped to make room). Any request but calloc's can take
// one: a longer one grows it in place or moves it (mremap moves page
// tables, not data: only the new tail faults), a shorter one cuts it and
// leaves the rest cached (from 1 MiB on; less stays in the block), and a
// block freed next to a cached range of its mapping rejoins it (`origin`).
// Before, the rest was unmapped: `large` unmapped 750 MiB of tails in 500
// blocks and faulted as much in again to grow other entries; cut and
// rejoined, its faults fell from 67.8k to 39.0k with blocks of 4..16 MiB
// (tcmalloc 45.3k) and its CPU time from 0.17 to 0.10 s (tcmalloc 0.09),
// peak RSS 160 to 157 MB (tcmalloc 172; 6 interleaved runs, medians). Its
// pages hold what the last block left, so calloc does not take one: a
// calloc'd block is often written sparsely, and a new mapping's zero pages
// cost only where touched.
// Two earlier designs: entries kept resident but reused only for about
// their own size held up to 64 MiB that requests of other sizes could not
// use (`large`'s peak RSS was 1.6x jemalloc's); entries whose pages were
// released at free held nothing but saved no faults either. Reclaim unmaps
// the entries idle for decay_ms (vmalloc_cache_release), and all of them
// under pressure or malloc_trim. Measured with bench/run.py --full --runs
// 5 -w large (time, peak RSS; x jemalloc in the same run): 0.38x, 0.93x
// before; 0.12-0.15x, 1.00-1.01x after (mimalloc 0.08-0.10x, 1.44-1.50x).
// A bound of half the live mappings' bytes instead of 64 MiB kept peak RSS
// at 0.86x but only reached 0.28x; --quick's short run (40 blocks a thread)
// shows the cost: peak RSS 0.91x -> 1.32x.

namespace {

struct Cached {
  std::uintptr_t addr;
  std::size_t len;
  std::uint64_t freed_ns;
  std::uint64_t origin;  // as Entry's
  int nid;
  bool huge;
};
constexpr unsigned kCacheSlots = 16;
constexpr std::size_t kCacheMaxBytes = std::size_t{64} << 20;
constexpr std::size_t kCacheMaxEntry = std::size_t{32} << 20;
// The least that a request cuts off an entry to leave cached; a shorter
// rest stays in the block (under a quarter of any request taken here).
constexpr std::size_t kSplitMin = std::size_t{1} << 20;
constinit Cached g_cache[kCacheSlots] = {};
constinit unsigned g_cached = 0;
// Written under g_lock; read without it by reclaim (vmalloc_cache_bytes,
// under a zone lock: g_lock is never taken there).
constinit std::atomic<std::size_t> g_cached_bytes{0};
using WakeFn = void (*)(bool first);
constinit WakeFn g_wake = nullptr;

// The cache is kept in the order of the frees, oldest first.
Cached cache_remove(unsigned i) {
  Cached c = g_cache[i];
  g_cached_bytes.store(g_cached_bytes.load(std::memory_order_relaxed) - c.len,
                       std::memory_order_relaxed);
  for (--g_cached; i < g_cached; ++i) g_cache[i] = g_cache[i + 1];
  return c;
}

// Adds c in its place by free time (a slot is free).
void cache_add(const Cached& c) {
  unsigned i = g_cached++;
  for (; i > 0 && g_cache[i - 1].freed_ns > c.freed_ns; --i) g_cache[i] = g_cache[i - 1];
  g_cache[i] = c;
  g_cached_bytes.store(g_cached_bytes.load(std::memory_order_relaxed) + c.len,
                       std::memory_order_relaxed);
}

// Takes the cached range that best serves a request of len bytes aligned
// to align for node nid into *out: the shortest that holds it, else the
// longest (it will grow); among those, one with the huge page advice thp=
// wants for the request (`huge`) first, but a range of the other kind
// before none: it keeps its kind (a plain one grown stays plain; a huge one
// taken by thp=auto's probe is not measured at its free), and its pages are
// resident, where a new mapping faults and zeroes its own. Under thp=auto a
// program's first mappings are plain (nothing measured yet); when only
// ranges of the asked kind could serve, `large` made 16 new mappings where
// thp=never made 4, unmapped 190-240 MiB of cached ranges for them (75) and
// zeroed 338 MiB (175); now 172 MiB, and 0.083 -> 0.065 s (6 interleaved
// runs; tcmalloc 0.055 s). Only one shorter than len that can grow without
// losing its alignment (align <= a page). A longer one
// is cut: the rest, from kSplitMin on, stays cached (whole 2 MiB units of
// a huge one), with no system call: the mapping stays whole, and the rest
// rejoins the block when both are free (vfree). Lock held.
bool cache_take(std::size_t len, std::size_t align, int nid, bool huge, Cached* out) {
  unsigned best = kCacheSlots;
  // Holding len ranks first, then the advice asked for: a range of the
  // other kind still beats a new mapping (see above).
  auto rank = [&](const Cached& c) { return (c.len >= len ? 2 : 0) + (c.huge == huge ? 1 : 0); };
  for (unsigned i = 0; i < g_cached; ++i) {
    const Cached& c = g_cache[i];
    if (c.nid != nid || c.addr % align) continue;
    if (c.len < len && align > kPageSize) continue;
    if (best == kCacheSlots) {
      best = i;
      continue;
    }
    int rc = rank(c), rb = rank(g_cache[best]);
    std::size_t b = g_cache[best].len;
    if (rc > rb || (rc == rb && (c.len >= len ? c.len < b : c.len > b))) best = i;
  }
  if (best == kCacheSlots) return false;
  Cached c = cache_remove(best);
  std::size_t keep = c.huge ? align_up(len, kHugeMappingBytes) : len;
  if (c.len >= keep + kSplitMin) {
    Cached rest = c;
    rest.addr = c.addr + keep;
    rest.len = c.len - keep;
    cache_add(rest);  // in the slot c left
    c.len = keep;
  }
  *out = c;
  return true;
}

// Fits cached range *c (off the cache: this thread's alone) to len bytes:
// one cut to size already fits; a shorter one grows, where it is or moved
// (mremap: the pages move with their page tables; only the new tail will
// fault), a moved one with a new origin. A huge mapping keeps its 2 MiB
// alignment and whole 2 MiB units, so no huge page is split. False, with
// the range unmapped, when it cannot grow (address space).
bool fit_cached(Cached* c, std::size_t len) {
  constexpr std::size_t kHuge = kHugeMappingBytes;
  if (c->len >= len) return true;
  auto* old = reinterpret_cast<void*>(c->addr);
  long r = sys::mremap(old, c->len, len, 0, nullptr);  // in place
  if (sys::failed(r) && !c->huge) {
    r = sys::mremap(old, c->len, len, MREMAP_MAYMOVE, nullptr);
  } else if (sys::failed(r)) {
    // Moved onto a 2 MiB boundary: a range reserved for it, then replaced.
    void* m = sys::mmap(nullptr, len + kHuge, PROT_NONE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, nullptr);
    if (m) {
      auto start = reinterpret_cast<std::uintptr_t>(m);
      std::uintptr_t to = align_up(start, kHuge);
      if (to > start) sys::munmap(m, to - start);
      sys::munmap(reinterpret_cast<void*>(to + len), start + kHuge - to);
      r = sys::mremap(old, c->len, len, MREMAP_MAYMOVE | MREMAP_FIXED, reinterpret_cast<void*>(to));
      if (sys::failed(r)) sys::munmap(reinterpret_cast<void*>(to), len);
    }
  }
  if (sys::failed(r)) {
    sys::munmap(old, c->len);
    return false;
  }
  if (static_cast<std::uintptr_t>(r) != c->addr) c->origin = new_origin();
  c->addr = static_cast<std::uintptr_t>(r);
  c->len = len;
  return true;
}

}  // namespace

void vmalloc_set_wake_hook(void (*wake)(bool first)) {
  g_wake = wake;
}

std::size_t vmalloc_cache_release(std::uint64_t before_ns) {
  Cached out[kCacheSlots];
  unsigned n = 0;
  {
    LockGuard<Mutex> g(g_lock);
    for (unsigned i = 0; i < g_cached;) {
      if (g_cache[i].freed_ns <= before_ns)
        out[n++] = cache_remove(i);
      else
        ++i;
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
  return g_cached_bytes.load(std::memory_order_relaxed);
}

namespace {
// Bytes of mapping for a request: at least one page, so a zero-byte block
// still owns its address (a mapping of length 0 would be unmapped at once
// and its address handed out again). size <= kMaxAllocSize: cannot wrap.
std::size_t map_len(std::size_t size) {
  return size ? align_up(size, kPageSize) : kPageSize;
}

// A new mapping of size bytes (<= kMaxAllocSize), advised MADV_HUGEPAGE if
// huge (thp='s choice, made by the caller) and the kernel agrees.
void* map_new(std::size_t size, std::size_t align, int nid, bool huge) {
  std::size_t len = map_len(size);
  // Huge pages map whole 2 MiB ranges: the mapping starts on one.
  if (huge && align < kHugeMappingBytes) align = kHugeMappingBytes;
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
  // Before any page is touched: its faults then map 2 MiB at once. A
  // kernel without THP refuses the advice, and nothing else changes.
  if (huge) huge = sys::madvise(reinterpret_cast<void*>(p), len, MADV_HUGEPAGE) == 0;
  LockGuard<Mutex> g(g_lock);
  if (huge) vmalloc_count_advised();
  if (!insert(p, len, new_origin(), nid, huge)) {
    sys::munmap(reinterpret_cast<void*>(p), len);
    return nullptr;
  }
  return reinterpret_cast<void*>(p);
}

}  // namespace

void* vmalloc(std::size_t size, std::size_t align, int nid, bool zero) {
  if (size > kMaxAllocSize || align > kMaxAllocSize) return nullptr;
  // Cache entries are keyed by the node the mapping was bound to, so "the
  // CPU's node" is resolved first: a mapping made on another node's CPU
  // must not be handed to this one.
  if (PageAllocator* pa = page_allocator_if_ready()) nid = static_cast<int>(pa->policy_node(nid));
  std::size_t want = map_len(size);
  Cached c;
  bool took = false, huge = vmalloc_want_huge(want);
  {
    LockGuard<Mutex> g(g_lock);
    took =
        !zero && g_cached && cache_take(want, align > kPageSize ? align : kPageSize, nid, huge, &c);
  }
  // Fitted and recorded outside the cache: the entry is this thread's
  // (fit_cached unmaps it when it fails; so does a failed insert: no table).
  if (took && fit_cached(&c, want)) {
    LockGuard<Mutex> g(g_lock);
    if (insert(c.addr, c.len, c.origin, c.nid, c.huge)) return reinterpret_cast<void*>(c.addr);
    sys::munmap(reinterpret_cast<void*>(c.addr), c.len);
  }
  if (void* p = map_new(size, align, nid, huge)) return p;
  // Out of address space (RLIMIT_AS) or memory while freed mappings sit in
  // the cache: unmap them and try once more, rather than fail for want of
  // what we hold ourselves.
  if (vmalloc_cache_release(~std::uint64_t{0}) == 0) return nullptr;
  return map_new(size, align, nid, huge);
}

bool vfree(void* p) {
  std::size_t len;
  std::uint64_t origin;
  int nid;
  bool cacheable, huge;
  {
    LockGuard<Mutex> g(g_lock);
    Entry* e = find(reinterpret_cast<std::uintptr_t>(p));
    if (!e) return false;
    len = e->len;
    origin = e->origin;
    nid = e->nid;
    huge = e->huge;
    erase(e);
    g_freed[g_freed_next++ % kFreedRing] = reinterpret_cast<std::uintptr_t>(p);
    cacheable = g_wake && len <= kCacheMaxEntry;
  }
  // Off the table and in no cache, the range is this thread's alone: how
  // much of it the program wrote is measured (huge pages, below) without
  // the lock, then it joins the cache or is unmapped.
  if (!huge) vmalloc_sample_density(p, len);
  Cached evicted[kCacheSlots];
  unsigned n_evicted = 0;
  bool was_empty = false;
  if (cacheable) {
    LockGuard<Mutex> g(g_lock);
    was_empty = g_cached == 0;
    Cached c = {reinterpret_cast<std::uintptr_t>(p), len, now_coarse_ns(), origin, nid, huge};
    // Rejoined with the cached ranges of its mapping on either side (cut
    // off it, or it off them): requests longer than either then find one
    // range that holds them, where they would grow one and fault the
    // difference in (`large`). Not past kCacheMaxBytes.
    for (unsigned i = 0; i < g_cached;) {
      const Cached& n = g_cache[i];
      if (n.origin == c.origin && c.len + n.len <= kCacheMaxBytes &&
          (n.addr + n.len == c.addr || c.addr + c.len == n.addr)) {
        Cached m = cache_remove(i);
        if (m.addr < c.addr) c.addr = m.addr;
        c.len += m.len;
        i = 0;  // the other side may be further back
        continue;
      }
      ++i;
    }
    // The newest freed is likeliest to be asked for again: the oldest
    // entries make room for it (c.len <= kCacheMaxBytes).
    while (g_cached == kCacheSlots ||
           g_cached_bytes.load(std::memory_order_relaxed) + c.len > kCacheMaxBytes)
      evicted[n_evicted++] = cache_remove(0);
    cache_add(c);
  }
  for (unsigned i = 0; i < n_evicted; ++i)
    sys::munmap(reinterpret_cast<void*>(evicted[i].addr), evicted[i].len);
  if (!cacheable) sys::munmap(p, len);
  // Reclaim ages the cache from its first entry on; every entry added asks
  // it again whether the thread is worth starting (the cache's pages count).
  if (cacheable) g_wake(was_empty);
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
  bool huge = e->huge;  // mremap keeps the advice
  std::uint64_t origin = r == reinterpret_cast<long>(p) ? e->origin : new_origin();
  erase(e);
  // Cannot fail: room was made above.
  insert(static_cast<std::uintptr_t>(r), len, origin, nid, huge);
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
  std::size_t bytes = 0;
  for (unsigned i = 0; i < g_cached; ++i) bytes += g_cache[i].len;
  g_cached_bytes.store(bytes, std::memory_order_relaxed);
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
