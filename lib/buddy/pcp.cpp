#include "lib/buddy/pcp.h"

#include <cstring>

#include "lib/base/base.h"

namespace numaslub {

Page* PerCpuPages::alloc(Zone& zone, unsigned order) {
  LockGuard<Mutex> g(lock);
  PcpList& l = lists[order];
  if (l.count == 0) {
    // Refill a batch at once, under one zone lock; no deeper than the
    // CPU's share of the zone (one block at least: the one asked for).
    std::size_t held = pages(), cap = cap_pages.load(std::memory_order_relaxed);
    std::size_t room = held < cap ? (cap - held) >> order : 0;
    std::uint32_t want = room < batch ? static_cast<std::uint32_t>(room) : batch;
    if (want == 0) want = 1;
    LockGuard<Mutex> zg(zone.lock);
    while (l.count < want) {
      Page* p = zone.alloc_locked(order, false);
      if (!p) break;
      p->flags |= PG_pcp;
      l.stack[l.count++] = p;
    }
    if (l.count == 0) return nullptr;
    ++refills;
  } else {
    ++hits;
  }
  Page* p = l.stack[--l.count];
  p->flags &= ~PG_pcp;
  return p;
}

void PerCpuPages::drain_bottom(Zone& zone, unsigned order, unsigned n) {
  PcpList& l = lists[order];
  if (n > l.count) n = l.count;
  if (!n) return;
  {
    LockGuard<Mutex> zg(zone.lock);
    for (unsigned i = 0; i < n; ++i) {
      Page* p = l.stack[i];
      bool clean = p->flags & PG_clean;
      p->flags &= ~(PG_pcp | PG_clean);
      zone.free_locked(p, order, clean);
    }
  }
  std::memmove(l.stack, l.stack + n, (l.count - n) * sizeof(Page*));
  l.count -= n;
  ++drains;
}

void PerCpuPages::free(Zone& zone, Page* page, unsigned order) {
  NS_CHECK(!(page->flags & (PG_buddy | PG_pcp)), "double free of page block %p (order %u)",
           zone.address(page), order);
  LockGuard<Mutex> g(lock);
  PcpList& l = lists[order];
  page->flags = PG_pcp;  // a freed block was used: not clean
  page->order = static_cast<std::uint8_t>(order);
  l.stack[l.count++] = page;
  if (l.count > high || l.count == kPcpCapacity) drain_bottom(zone, order, batch ? batch : 1);
  if (pages() > cap_pages.load(std::memory_order_relaxed)) shrink_to_cap_locked(zone, kRunClasses);
}

void PerCpuPages::shrink_to_cap_locked(Zone& zone, unsigned keep) {
  // Down to 3/4 of the cap, under one zone lock: a CPU that keeps freeing
  // past its share pays for a shrink once per quarter of it, not per free.
  std::size_t target = cap_pages.load(std::memory_order_relaxed) / 4 * 3;
  std::size_t held = pages();
  LockGuard<Mutex> zg(zone.lock);
  for (unsigned k = kRunClasses; held > target && k-- > 0;) {
    RunList& l = runs[k];
    std::size_t size = run_class_pages(k);
    unsigned n = 0;
    while (k != keep && held > target && n < l.count) {
      l.stack[n]->flags &= ~PG_pcp;
      zone.free_range_locked(l.stack[n++], size);
      held -= size;
      run_pages -= static_cast<std::uint32_t>(size);
    }
    std::memmove(l.stack, l.stack + n, (l.count - n) * sizeof(Page*));
    l.count -= n;
  }
  for (unsigned o = kPcpOrders; held > target && o-- > 0;) {
    PcpList& l = lists[o];
    unsigned n = 0;
    while (held > target && n < l.count) {
      Page* p = l.stack[n++];
      bool clean = p->flags & PG_clean;
      p->flags &= ~(PG_pcp | PG_clean);
      zone.free_locked(p, o, clean);
      held -= std::size_t{1} << o;
    }
    std::memmove(l.stack, l.stack + n, (l.count - n) * sizeof(Page*));
    l.count -= n;
  }
  ++drains;
}

void PerCpuPages::set_cap(std::size_t present, unsigned cpus) {
  std::size_t share = present / (kPcpZoneShare * (cpus ? cpus : 1));
  if (share < kPcpMinCap) share = kPcpMinCap;
  if (share > UINT32_MAX) share = UINT32_MAX;
  if (share > cap_pages.load(std::memory_order_relaxed))
    cap_pages.store(static_cast<std::uint32_t>(share), std::memory_order_relaxed);
}

Page* PerCpuPages::alloc_run(unsigned c) {
  LockGuard<Mutex> g(lock);
  RunList& l = runs[c];
  if (l.count == 0) return nullptr;
  Page* p = l.stack[--l.count];
  run_pages -= static_cast<std::uint32_t>(run_class_pages(c));
  ++run_hits;
  p->flags &= ~PG_pcp;
  return p;
}

// Returns the bottom n runs of class c to the zone (the lock held).
void PerCpuPages::drain_runs_locked(Zone& zone, unsigned c, unsigned n) {
  RunList& l = runs[c];
  if (n > l.count) n = l.count;
  if (!n) return;
  std::size_t pages = run_class_pages(c);
  {
    LockGuard<Mutex> zg(zone.lock);
    for (unsigned i = 0; i < n; ++i) {
      l.stack[i]->flags &= ~PG_pcp;
      zone.free_range_locked(l.stack[i], pages);
    }
  }
  std::memmove(l.stack, l.stack + n, (l.count - n) * sizeof(Page*));
  l.count -= n;
  run_pages -= static_cast<std::uint32_t>(n * pages);
  ++drains;
}

bool PerCpuPages::free_run(Zone& zone, Page* page, unsigned c, bool* wake) {
  std::size_t pages = run_class_pages(c);
  if (pages > run_high || pages > cap_pages.load(std::memory_order_relaxed)) return false;
  NS_CHECK(!(page->flags & (PG_buddy | PG_pcp)), "double free of page run %p (%zu pages)",
           zone.address(page), pages);
  LockGuard<Mutex> g(lock);
  RunList& l = runs[c];
  if (l.count == kRunCapacity) drain_runs_locked(zone, c, kRunCapacity / 2);
  std::uint32_t seq = zone.run_wake_seq.load(std::memory_order_relaxed);
  *wake = seq != run_wake_seen;
  run_wake_seen = seq;
  page->flags = PG_pcp;
  l.stack[l.count++] = page;
  run_pages += static_cast<std::uint32_t>(pages);
  ++run_frees;
  // Past the limit: the runs of other classes go first, largest classes
  // first (they hold the most memory and are the rarest to be asked for
  // again soon), each class's coldest first; this class's own older runs
  // last, and the run just freed never (it is the likeliest to be reused).
  for (unsigned k = kRunClasses; run_pages > run_high && k-- > 0;)
    while (k != c && run_pages > run_high && runs[k].count) drain_runs_locked(zone, k, 1);
  if (run_pages > run_high) drain_runs_locked(zone, c, l.count - 1);
  // Past the zone's share: the other runs, then the lists' coldest blocks,
  // and only then this class's older runs.
  std::size_t cap = cap_pages.load(std::memory_order_relaxed);
  if (this->pages() > cap) {
    shrink_to_cap_locked(zone, c);
    if (this->pages() > cap) drain_runs_locked(zone, c, l.count - 1);
  }
  return true;
}

std::size_t PerCpuPages::drain(Zone& zone) {
  LockGuard<Mutex> g(lock);
  std::size_t moved = 0;
  for (unsigned o = 0; o < kPcpOrders; ++o) {
    moved += std::size_t{lists[o].count} << o;
    drain_bottom(zone, o, lists[o].count);
  }
  moved += run_pages;
  for (unsigned c = 0; c < kRunClasses; ++c) drain_runs_locked(zone, c, runs[c].count);
  return moved;
}

std::size_t PerCpuPages::pages() const {
  std::size_t n = run_pages;
  for (unsigned o = 0; o < kPcpOrders; ++o) n += std::size_t{lists[o].count} << o;
  return n;
}

}  // namespace numaslub
