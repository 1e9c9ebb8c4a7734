// Helpers shared by the buddy test files (buddy_test, buddy_runs_test): a
// zone over a plain region, free-list counts and the zone's invariants
// checked against the live blocks, CPU pinning, and page allocators over
// fake nodes.
#pragma once

// clean/dirty tracking, double-free detection), per-CPU page lists, the
// page allocator on fake NUMA nodes (placement, kGfpThisNode, fallback,
// kGfpZero) and the buddyinfo/zoneinfo views, plus a multi-threaded stress
// that checks page contents.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lib/base/rseq.h"
#include "lib/buddy/page_alloc.h"

namespace numaslub::buddytest {

inline constexpr std::size_t MiB = 1024 * 1024;
using Counts = std::array<std::size_t, kNrOrders>;

// A zone over a plain anonymous mapping, aligned to the largest block, with
// its descriptors in a vector, every page onlined.
struct PlainZone {
  explicit PlainZone(std::size_t bytes, bool online = true)
      : bytes_(bytes), map(bytes >> kPageShift) {
    raw_ = mmap(nullptr, bytes + kMaxBlockSize, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    EXPECT_NE(raw_, MAP_FAILED);
    base = (reinterpret_cast<std::uintptr_t>(raw_) + kMaxBlockSize - 1) & ~(kMaxBlockSize - 1);
    z.init(0, base, map.data(), map.size());
    LockGuard<Mutex> g(z.lock);
    if (online) z.online_locked(0, map.size());
  }
  ~PlainZone() { munmap(raw_, bytes_ + kMaxBlockSize); }
  std::size_t pages() const { return map.size(); }

  std::size_t bytes_;
  void* raw_ = nullptr;
  std::uintptr_t base = 0;
  std::vector<Page> map;
  Zone z;
};

inline Counts nr_free(const Zone& z) {
  Counts c{};
  for (unsigned o = 0; o < kNrOrders; ++o) c[o] = z.free_area[o].nr_free;
  return c;
}

inline Counts only_max(std::size_t n) {
  Counts c{};
  c[kMaxOrder] = n;
  return c;
}

// A random order 0..10 from r's upper bits: uniform one time in eight, else
// geometric (half of them order 0), so small blocks dominate as in real use.
inline unsigned rand_order(std::uint64_t r) {
  if ((r & 0xe) == 0) return static_cast<unsigned>((r >> 8) % kNrOrders);
  return std::min<unsigned>(__builtin_ctzll((r >> 8) | (1ull << 40)), kMaxOrder);
}

// Walks every free list and checks the zone's invariants against the live
// blocks: list membership matches flags and order, counters match the lists,
// no buddy pair is left unmerged, and free + live blocks tile the zone.
inline void check_zone(const Zone& z, const std::map<std::size_t, unsigned>& live) {
  std::vector<std::uint8_t> cover(z.spanned_pages, 0);
  std::size_t free_pages = 0, clean_pages = 0;
  for (unsigned o = 0; o < kNrOrders; ++o) {
    const FreeArea& a = z.free_area[o];
    std::size_t n = 0, nclean = 0;
    for (int clean = 0; clean < 2; ++clean) {
      const ListNode* head = clean ? &a.clean : &a.dirty;
      for (ListNode* it = head->next; it != head; it = it->next) {
        Page* p = list_entry<Page>(it, offsetof(Page, lru));
        std::size_t pfn = z.pfn(p);
        ASSERT_TRUE(p->flags & PG_buddy) << "pfn " << pfn;
        ASSERT_EQ(p->order, o) << "pfn " << pfn;
        ASSERT_EQ(!!(p->flags & PG_clean), !!clean) << "pfn " << pfn;
        ASSERT_EQ(pfn % (std::size_t{1} << o), 0u);
        if (o < kMaxOrder) {
          Page* b = z.pfn_to_page(pfn ^ (std::size_t{1} << o));
          ASSERT_FALSE((b->flags & PG_buddy) && b->order == o) << "unmerged buddies at " << pfn;
        }
        for (std::size_t i = 0; i < (std::size_t{1} << o); ++i) ASSERT_EQ(cover[pfn + i]++, 0);
        ++n;
        nclean += clean;
      }
    }
    ASSERT_EQ(n, a.nr_free) << "order " << o;
    ASSERT_EQ(nclean, a.nr_clean) << "order " << o;
    free_pages += n << o;
    clean_pages += nclean << o;
  }
  ASSERT_EQ(free_pages, z.free_pages);
  ASSERT_EQ(clean_pages, z.clean_pages);
  for (auto [pfn, o] : live)
    for (std::size_t i = 0; i < (std::size_t{1} << o); ++i) ASSERT_EQ(cover[pfn + i]++, 0);
  for (std::size_t i = 0; i < cover.size(); ++i) ASSERT_EQ(cover[i], 1) << "page " << i;
}

// Pins the calling thread to one CPU it may run on; restores on scope exit.
struct PinCpu {
  PinCpu() {
    sched_getaffinity(0, sizeof old, &old);
    for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &old); ++cpu) {
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ok = sched_setaffinity(0, sizeof one, &one) == 0;
  }
  ~PinCpu() { sched_setaffinity(0, sizeof old, &old); }
  cpu_set_t old;
  int cpu = 0;
  bool ok = false;
};

// A page allocator over (fake) nodes of the machine's topology. Kept alive
// until exit: the arena is never unmapped, and tests must not leak reports.
struct Heap {
  Topology real, topo;
  PageAllocator pa;
};
inline std::vector<std::unique_ptr<Heap>> g_heaps;

// The tests' heap: 256 MiB per node in 16 MiB sections, `tune` setting
// whatever else a test needs in its Config.
template <class Tune>
PageAllocator* make_heap_with(unsigned nodes, Tune tune) {
  auto h = std::make_unique<Heap>();
  h->real.load_sysfs();
  h->topo.make_fake(h->real, nodes);
  Config cfg;
  cfg.arena_size = 256 * MiB;
  cfg.section_size = 16 * MiB;
  tune(cfg);
  if (h->pa.init(cfg, h->topo, os_mem_linux()) != 0) return nullptr;
  g_heaps.push_back(std::move(h));
  return &g_heaps.back()->pa;
}

inline PageAllocator* make_heap(unsigned nodes, bool pcp = true, std::uint32_t high = 64,
                                std::uint32_t batch = 16) {
  return make_heap_with(nodes, [&](Config& cfg) {
    cfg.pcp = pcp;
    cfg.pcp_high = high;
    cfg.pcp_batch = batch;
  });
}

inline std::string view(PageAllocator* pa, bool zoneinfo) {
  std::string s(1 << 20, '\0');
  std::size_t n = zoneinfo ? pa->zoneinfo(s.data(), s.size()) : pa->buddyinfo(s.data(), s.size());
  s.resize(n);
  return s;
}

}  // namespace numaslub::buddytest
