#include "lib/buddy/pcp.h"

#include <cstring>

#include "lib/base/base.h"

namespace numaslub {

Page* PerCpuPages::alloc(Zone& zone, unsigned order) {
  LockGuard<Mutex> g(lock);
  PcpList& l = lists[order];
  if (l.count == 0) {
    // Refill half a batch deeper than needed at once, under one zone lock.
    LockGuard<Mutex> zg(zone.lock);
    while (l.count < batch) {
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
}

std::size_t PerCpuPages::drain(Zone& zone) {
  LockGuard<Mutex> g(lock);
  std::size_t moved = 0;
  for (unsigned o = 0; o < kPcpOrders; ++o) {
    moved += std::size_t{lists[o].count} << o;
    drain_bottom(zone, o, lists[o].count);
  }
  return moved;
}

std::size_t PerCpuPages::pages() const {
  std::size_t n = 0;
  for (unsigned o = 0; o < kPcpOrders; ++o) n += std::size_t{lists[o].count} << o;
  return n;
}

}  // namespace numaslub
