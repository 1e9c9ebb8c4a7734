// Per-CPU page lists (the kernel's per_cpu_pages): small stacks of order
// 0..3 blocks per CPU and per zone, in front of the zone lock, filled and
// drained in batches so the zone lock is taken once per `batch` blocks.
//
// Invariants:
// - A block on a list has PG_pcp set on its head and is counted neither in
//   the zone's free_pages nor in its allocated blocks.
// - Each PerCpuPages has its own lock. The owning CPU takes it on every
//   operation (uncontended unless a thread migrated mid-operation or a
//   drainer is active); drain_all() takes it from other CPUs. Lock order:
//   pcp lock, then zone lock.
// - count <= high after every operation; a free that pushes count past high
//   returns `batch` of the coldest (bottom of the stack) blocks to the zone.
//
// Runs (the per-CPU cache of large blocks): besides whole buddy blocks, each
// PerCpuPages keeps stacks of runs, blocks of an exact page count above the
// orders' (9 .. kRunMaxPages pages) that kmalloc's large blocks are made of
// (alloc_pages_exact: a buddy block with its tail freed). Their page counts
// come in classes of four per doubling (10 12 14 16 20 24 ... 256 pages,
// run_class_pages), so that a freed block fits the next request of its
// class as it is: no zone lock, no split of a larger block, no trim of its
// tail and no merge of the pieces when it is reused. Invariants:
// - A run on a list has PG_pcp on its head (no PG_head, no PG_large: a free
//   of it is a double free) and counts neither as zone-free nor allocated;
//   its other pages carry nothing. Its page count is its class's.
// - run_pages (the pages on all run lists) <= run_high after every
//   operation; a free past it returns runs to the zone, as naturally
//   aligned pieces: the other classes' coldest, largest classes first, then
//   its own class's older ones, never the run it frees.
// - Runs are never refilled from the zone in batches (an allocation that
//   misses cuts one from a buddy block), and kGfpZero skips them.
//
// The zone's share (the kernel derives pcp->high from the zone's size
// divided among its CPUs, zone_highsize): every CPU's lists and runs of a
// zone together hold at most 1/kPcpZoneShare of its onlined pages, split
// evenly, at least kPcpMinCap pages each; a free that passes it returns
// runs (largest classes first, not the freed one's), then the coldest
// blocks of the largest orders, down to 3/4 of it under one zone lock.
// Invariant: pages() <= cap_pages after every operation (cap_pages only
// grows, with the zone). Why: what a CPU holds is resident memory no other
// CPU and no request of another size can use; at 2 MiB of runs and 64
// blocks of each order it could hold 5.75 MiB, as much as a small
// program's whole heap, which then touches clean memory for the requests
// these caches cannot serve (realloc chains: peak RSS 1.6x jemalloc's).
#pragma once

#include <atomic>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/buddy/zone.h"

namespace numaslub {

inline constexpr unsigned kPcpOrders = 4;  // orders 0..3 (4 KiB .. 32 KiB)
inline constexpr unsigned kPcpCapacity = 128;

// Run classes: four per doubling above 8 pages, up to kRunMaxPages.
inline constexpr std::size_t kRunMinPages = 9;    // above the largest order on the lists
inline constexpr std::size_t kRunMaxPages = 256;  // 1 MiB
inline constexpr unsigned kRunClasses = 20;       // 8..256 pages: 5 doublings x 4
inline constexpr unsigned kRunCapacity = 16;      // runs a class's stack holds
inline constexpr std::size_t kPcpZoneShare = 16;  // all CPUs' caches: 1/16 of the zone
inline constexpr std::size_t kPcpMinCap = 64;     // pages a CPU may always cache (256 KiB)

// The class of a run of `pages` pages (kRunMinPages <= pages <=
// kRunMaxPages): the smallest class at least that large.
constexpr unsigned run_class(std::size_t pages) {
  unsigned k = 63u - static_cast<unsigned>(__builtin_clzll(pages - 1));  // 2^k < pages <= 2^(k+1)
  std::size_t step = (std::size_t{1} << k) / 4;
  return (k - 3) * 4 + static_cast<unsigned>((pages - (std::size_t{1} << k) + step - 1) / step) - 1;
}
// The page count of run class c.
constexpr std::size_t run_class_pages(unsigned c) {
  std::size_t base = std::size_t{8} << (c / 4);
  return base + (c % 4 + 1) * base / 4;
}
// The page count a request of `pages` gets: its class's where it has one.
constexpr std::size_t run_round_pages(std::size_t pages) {
  return pages >= kRunMinPages && pages <= kRunMaxPages ? run_class_pages(run_class(pages)) : pages;
}
static_assert(run_class_pages(0) == 10 && run_class_pages(kRunClasses - 1) == kRunMaxPages);
static_assert(run_class(9) == 0 && run_class(10) == 0 && run_class(11) == 1 && run_class(16) == 3 &&
              run_class(17) == 4 && run_class(256) == kRunClasses - 1);

struct RunList {
  std::uint32_t count = 0;
  Page* stack[kRunCapacity];
};

struct PcpList {
  std::uint32_t count = 0;
  Page* stack[kPcpCapacity];
};

struct alignas(64) PerCpuPages {
  Mutex lock;
  std::uint32_t high = 0;
  std::uint32_t batch = 0;
  std::uint64_t hits = 0;       // allocations served from a list
  std::uint64_t refills = 0;    // batches taken from the zone
  std::uint64_t drains = 0;     // batches returned to the zone
  std::uint64_t run_hits = 0;   // runs reused from a run list
  std::uint64_t run_frees = 0;  // runs put on a run list
  std::uint32_t run_high = 0;   // pages the run lists may hold (0: no runs kept)
  std::uint32_t run_pages = 0;  // pages on the run lists
  // The zone's run_wake_seq when this CPU's runs last woke its reclaim
  // thread (zone.h): a run freed while it differs wakes it again.
  std::uint32_t run_wake_seen = 0;
  // The most pages the lists and runs may hold together: this CPU's share
  // of the zone (set_cap). Atomic: the zone's growth updates it without
  // this lock.
  std::atomic<std::uint32_t> cap_pages{kPcpMinCap};
  PcpList lists[kPcpOrders];
  RunList runs[kRunClasses];

  // Pop a block (refilling from zone when empty); nullptr when the zone has none.
  Page* alloc(Zone& zone, unsigned order);
  // Push a block; drains a batch to zone when past high.
  void free(Zone& zone, Page* page, unsigned order);
  // Pop a run of class c, or nullptr (no refill: the caller cuts one).
  Page* alloc_run(unsigned c);
  // Push run page of class c (its head's flags cleared of the owner's marks
  // by the caller); false, changing nothing, when runs are not kept
  // (run_high 0 or below the run's size): then the caller frees it.
  // *wake: the zone's reclaim thread went to sleep armed since this CPU
  // last woke it for its runs (Zone::run_wake_seq): wake it.
  bool free_run(Zone& zone, Page* page, unsigned c, bool* wake);
  // Return every block and run to zone. Returns the number of pages moved.
  std::size_t drain(Zone& zone);
  std::size_t pages() const;  // pages held on all lists
  // This CPU's share of a zone of `present` onlined pages cached by `cpus`
  // CPUs (kPcpZoneShare); it never shrinks.
  void set_cap(std::size_t present, unsigned cpus);

 private:
  void drain_bottom(Zone& zone, unsigned order, unsigned n);
  void drain_runs_locked(Zone& zone, unsigned c, unsigned n);
  // Returns runs (largest classes first, never class `keep`), then the
  // coldest blocks of the largest orders, until pages() <= 3/4 cap_pages.
  void shrink_to_cap_locked(Zone& zone, unsigned keep);
};

}  // namespace numaslub
