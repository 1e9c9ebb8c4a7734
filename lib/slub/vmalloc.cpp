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

bool insert(std::uintptr_t a, std::size_t len, int nid, bool huge) {
  if ((g_used + 1) * 2 > capacity() && !grow()) return false;
  forget_freed(a);
  std::size_t cap = capacity();
  Entry* t = table();
  std::size_t i = slot_of(a);
  while (t[i].addr > kTombstone) i = (i + 1) & (cap - 1);
  if (t[i].addr == 0) ++g_used;
  t[i].len = len;
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
// A freed mapping's pages go back to the OS at its free (MADV_DONTNEED, in
// vfree); its address range is kept for reuse by a request of about its
// size (up to 25% larger than asked; 16 entries, 64 MiB of address space),
// so a program that keeps allocating and freeing blocks above 4 MiB
// (growing buffers) saves the mmap, mbind and munmap calls, and a reused
// mapping reads as zero (calloc needs no memset). Its pages are faulted in
// again: jemalloc likewise purges its huge arena's blocks at free. Kept
// resident, the cache held up to 64 MiB that no request of another size
// could use, on top of the heap (the `large` workload's peak RSS was 1.6x
// jemalloc's). Entries are bounded in number and bytes; reclaim unmaps
// those idle for decay_ms (vmalloc_cache_release), and everything under
// pressure or malloc_trim.

namespace {

struct Cached {
  std::uintptr_t addr;
  std::size_t len;
  std::uint64_t freed_ns;
  int nid;
  bool huge;
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
std::uintptr_t cache_take(std::size_t len, std::size_t align, int nid, std::size_t* got,
                          bool* huge) {
  unsigned best = kCacheSlots;
  for (unsigned i = 0; i < g_cached; ++i) {
    const Cached& c = g_cache[i];
    if (c.len < len || c.len - len > len / 4 || c.addr % align || c.nid != nid) continue;
    if (best == kCacheSlots || c.len < g_cache[best].len) best = i;
  }
  if (best == kCacheSlots) return 0;
  std::uintptr_t a = g_cache[best].addr;
  *got = g_cache[best].len;
  *huge = g_cache[best].huge;
  g_cached_bytes -= *got;
  g_cache[best] = g_cache[--g_cached];
  return a;
}

}  // namespace

// ---- huge pages for direct mappings (thp=) -----------------------------
//
// A mapping is a block the program asked for whole, but whether it writes
// all of it is the program's business: a huge page over a sparse one makes
// all of it resident (the guide's rule: MADV_HUGEPAGE only where memory is
// densely used). So thp=auto measures: a mapping made without advice is
// sampled at its free (mincore: the pages the program wrote). Once
// thp_dense % of the sampled pages (at least kSampleMinPages of them) were
// written, new mappings start on a 2 MiB boundary and are advised
// MADV_HUGEPAGE before any page is touched, except one in kProbeEvery,
// made plain so that the measure goes on (an advised mapping's pages are
// resident in 2 MiB units and tell nothing). The sample decays: it is
// halved past kSampleMaxPages. thp=always advises every mapping, thp=never
// none. Measured on `large` (blocks of 64 KiB..16 MiB, every page
// written): 80k page faults down to 10k, 0.26 s down to 0.085 s (jemalloc,
// no huge pages: 0.235 s), peak RSS the same.

namespace {

constexpr std::size_t kHugeBytes = kHugePages << kPageShift;  // 2 MiB
constexpr unsigned kProbeEvery = 8;
constexpr std::size_t kSampleMinPages = std::size_t{16} << (20 - kPageShift);  // 16 MiB
constexpr std::size_t kSampleMaxPages = std::size_t{256} << (20 - kPageShift);
constinit std::size_t g_sampled = 0;  // pages of plain mappings measured (g_lock)
constinit std::size_t g_written = 0;  // of those, pages the program wrote (g_lock)
constinit unsigned g_made_dense = 0;  // mappings made while dense, probes counted (g_lock)
constinit std::uint64_t g_thp_advised = 0;

ThpMode thp_mode() {
  PageAllocator* pa = page_allocator_if_ready();
  return pa ? pa->thp() : ThpMode::kNever;  // kNever also where advice is impossible
}

bool dense_locked() {
  return g_sampled >= kSampleMinPages && g_written * 100 >= g_sampled * config().thp_dense;
}

// Whether a new mapping of len bytes gets huge pages. Lock held.
bool want_huge_locked(std::size_t len) {
  if (len < kHugeBytes) return false;
  switch (thp_mode()) {
    case ThpMode::kAlways:
      return true;
    case ThpMode::kNever:
      return false;
    case ThpMode::kAuto:
      break;
  }
  return dense_locked() && ++g_made_dense % kProbeEvery != 0;
}

// Adds plain mapping [p, p + len)'s written pages to the sample (thp=auto).
// mincore, a vector on the stack at a time; no lock held while it runs.
void sample_density(void* p, std::size_t len) {
  if (thp_mode() != ThpMode::kAuto) return;
  unsigned char vec[1024];
  std::size_t pages = len >> kPageShift, written = 0;
  for (std::size_t done = 0; done < pages;) {
    std::size_t n = pages - done < sizeof vec ? pages - done : sizeof vec;
    if (sys::call(SYS_mincore, static_cast<char*>(p) + (done << kPageShift), n << kPageShift,
                  vec) != 0)
      return;
    for (std::size_t i = 0; i < n; ++i) written += vec[i] & 1;
    done += n;
  }
  LockGuard<Mutex> g(g_lock);
  g_sampled += pages;
  g_written += written;
  while (g_sampled > kSampleMaxPages) {
    g_sampled /= 2;
    g_written /= 2;
  }
}

}  // namespace

void vmalloc_thp_stats(std::uint64_t* advised, unsigned* written_pct) {
  LockGuard<Mutex> g(g_lock);
  *advised = g_thp_advised;
  *written_pct = g_sampled ? static_cast<unsigned>(g_written * 100 / g_sampled) : 0;
}

void vmalloc_thp_reset_for_test() {
  LockGuard<Mutex> g(g_lock);
  g_sampled = g_written = 0;
  g_made_dense = 0;
}

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
    bool huge = false;
    LockGuard<Mutex> g(g_lock);
    if (g_cached && (g_used + 1) * 2 <= capacity()) {
      if (std::uintptr_t a =
              cache_take(want, align > kPageSize ? align : kPageSize, nid, &got, &huge)) {
        insert(a, got, nid, huge);
        if (zeroed) *zeroed = true;  // released at its free (vfree)
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
  bool huge;
  {
    LockGuard<Mutex> g(g_lock);
    huge = want_huge_locked(len);
  }
  // Huge pages map whole 2 MiB ranges: the mapping starts on one.
  if (huge && align < kHugeBytes) align = kHugeBytes;
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
  if (huge) ++g_thp_advised;
  if (!insert(p, len, nid, huge)) {
    sys::munmap(reinterpret_cast<void*>(p), len);
    return nullptr;
  }
  return reinterpret_cast<void*>(p);
}

bool vfree(void* p) {
  std::size_t len;
  int nid;
  bool cacheable, huge;
  {
    LockGuard<Mutex> g(g_lock);
    Entry* e = find(reinterpret_cast<std::uintptr_t>(p));
    if (!e) return false;
    len = e->len;
    nid = e->nid;
    huge = e->huge;
    erase(e);
    g_freed[g_freed_next++ % kFreedRing] = reinterpret_cast<std::uintptr_t>(p);
    cacheable = g_wake && len <= kCacheMaxEntry && g_cached < kCacheSlots &&
                g_cached_bytes + len <= kCacheMaxBytes;
  }
  // Off the table and in no cache, the range is this thread's alone: how
  // much of it the program wrote is measured (huge pages, below), its
  // pages go back without the lock (the cache's header above says why),
  // then it joins the cache if there is still room, else it is unmapped.
  if (!huge) sample_density(p, len);
  bool cached = false, was_empty = false;
  if (cacheable && sys::madvise(p, len, MADV_DONTNEED) == 0) {
    LockGuard<Mutex> g(g_lock);
    if (g_cached < kCacheSlots && g_cached_bytes + len <= kCacheMaxBytes) {
      was_empty = g_cached == 0;
      g_cache[g_cached++] = {reinterpret_cast<std::uintptr_t>(p), len, now_coarse_ns(), nid, huge};
      g_cached_bytes += len;
      cached = true;
    }
  }
  if (!cached) sys::munmap(p, len);
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
  bool huge = e->huge;  // mremap keeps the advice
  erase(e);
  insert(static_cast<std::uintptr_t>(r), len, nid, huge);  // cannot fail: room was made above
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
