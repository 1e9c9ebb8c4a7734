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
#pragma once

#include <cstdint>

#include "lib/base/base.h"
#include "lib/buddy/zone.h"

namespace numaslub {

inline constexpr unsigned kPcpOrders = 4;  // orders 0..3 (4 KiB .. 32 KiB)
inline constexpr unsigned kPcpCapacity = 128;

struct PcpList {
  std::uint32_t count = 0;
  Page* stack[kPcpCapacity];
};

struct alignas(64) PerCpuPages {
  Mutex lock;
  std::uint32_t high = 0;
  std::uint32_t batch = 0;
  std::uint64_t hits = 0;     // allocations served from a list
  std::uint64_t refills = 0;  // batches taken from the zone
  std::uint64_t drains = 0;   // batches returned to the zone
  PcpList lists[kPcpOrders];

  // Pop a block (refilling from zone when empty); nullptr when the zone has none.
  Page* alloc(Zone& zone, unsigned order);
  // Push a block; drains a batch to zone when past high.
  void free(Zone& zone, Page* page, unsigned order);
  // Return every block to zone. Returns the number of pages moved.
  std::size_t drain(Zone& zone);
  std::size_t pages() const;  // pages held on all lists

 private:
  void drain_bottom(Zone& zone, unsigned order, unsigned n);
};

}  // namespace numaslub
