// The barn: each node's store of full and empty sheaves per class, and the
// main/spare hand-offs of the sheaf slow paths that go through it
// (slub.cpp). The invariants of main/spare ownership are in sheaf.h.
#include <pthread.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "lib/base/base.h"
#include "lib/slub/debug.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/slab.h"
#include "lib/slub/slub_internal.h"

namespace numaslub {

// ---- barn ----------------------------------------------------------------
//
// The barn hands full sheaves from CPUs that free to CPUs that allocate: the
// objects of a producer/consumer pair travel 61 at a time by one pointer
// exchange, never touching their slabs. How many full sheaves it keeps
// adapts to that flow (as tcmalloc's transfer cache resizes). A full sheaf
// that finds the barn at max_full goes back to its slabs object by object
// (an overflow); an allocation that later finds the barn empty has to cut
// objects from the slabs again (a miss) — had the barn kept that sheaf, both
// would have been one exchange. So a miss after an overflow doubles
// max_full, up to barn_cap_full (kBarnMaxBytes of objects). A program that
// frees in bursts larger than the base limit (xmalloc-test: 4096 objects,
// 67 sheaves, per batch) then moves whole bursts through the barn. The
// limit falls back to barn_max_full when the barn is flushed (reclaim finds
// the node's CPUs idle, malloc_trim, direct reclaim), so a pattern that has
// stopped keeps no memory here.

Sheaf* sheaf_get_empty(KmemCache& c, unsigned nid, std::uint32_t cap) {
  Barn& b = c.node[nid].barn;
  Sheaf* s;
  {
    LockGuard<Mutex> g(b.lock);
    s = b.empty;
    if (s) {
      b.empty = s->next;
      --b.nr_empty;
    }
  }
  if (!s && !(s = static_cast<Sheaf*>(boot_alloc(sizeof(Sheaf), kSheafBytes)))) return nullptr;
  s->init(cap);
  return s;
}

void sheaf_put_empty(KmemCache& c, unsigned nid, Sheaf* s) {
  Barn& b = c.node[nid].barn;
  LockGuard<Mutex> g(b.lock);
  s->next = b.empty;
  b.empty = s;
  ++b.nr_empty;
}

// Takes a full sheaf from the barn, or null. An allocation's miss after an
// overflow grows the limit (above).
Sheaf* barn_get_full(KmemCache& c, unsigned nid) {
  Barn& b = c.node[nid].barn;
  LockGuard<Mutex> g(b.lock);
  Sheaf* s = b.full;
  if (s) {
    b.full = s->next;
    --b.nr_full;
    ++b.hits;
    return s;
  }
  ++b.misses;
  if (b.overflowed) {
    b.overflowed = false;
    std::uint32_t grown = b.max_full * 2;
    b.max_full = grown < c.barn_cap_full ? grown : c.barn_cap_full;
    ++b.grows;
  }
  return nullptr;
}

bool barn_put_full(KmemCache& c, unsigned nid, Sheaf* s) {
  Barn& b = c.node[nid].barn;
  LockGuard<Mutex> g(b.lock);
  if (b.nr_full >= b.max_full) {
    ++b.overflows;
    b.overflowed = b.max_full < c.barn_cap_full;
    return false;
  }
  s->next = b.full;
  b.full = s;
  ++b.nr_full;
  return true;
}

// Returns every full sheaf of the barn to the slabs (reclaim, trim); its
// limit starts over. Returns the objects returned.
std::size_t barn_flush(KmemCache& c, unsigned nid) {
  Barn& b = c.node[nid].barn;
  Sheaf* list;
  {
    LockGuard<Mutex> g(b.lock);
    list = b.full;
    b.full = nullptr;
    b.nr_full = 0;
    b.max_full = c.barn_max_full;
    b.overflowed = false;
  }
  std::size_t n = 0;
  while (Sheaf* s = list) {
    list = s->next;
    n += s->size;
    sheaf_flush(c, s);
    sheaf_put_empty(c, nid, s);
  }
  return n;
}

void sheaf_flush(KmemCache& c, Sheaf* s) {
  c.free_batch(s->objects(), s->size);
  s->size = 0;
}

// The sheaf a slot's main word refers to, with its size written back, or
// null for "no sheaf".
Sheaf* main_take(void** top) {
  if (!top || top == no_sheaf_top()) return nullptr;
  Sheaf* s = Sheaf::take(top);
  // The objects were pushed by fast paths on the sheaf's CPU (TSan: the
  // edge from each free to this owner).
  for (std::uint32_t i = 0; i < s->size; ++i) NS_TSAN_ACQUIRE(s->objects()[i]);
  return s;
}

// Makes *spare a sheaf with objects (for an allocation); one it fills from
// the slabs gets capacity cap. False when out of memory.
bool prepare_full_spare(KmemCache& c, unsigned nid, Sheaf** spare, std::uint32_t cap) {
  if (!*spare && !(*spare = sheaf_get_empty(c, nid, cap))) return false;
  if ((*spare)->size) return true;
  if (Sheaf* full = barn_get_full(c, nid)) {
    sheaf_put_empty(c, nid, *spare);
    *spare = full;
    return true;
  }
  Sheaf* s = *spare;
  if (s->capacity != cap) s->init(cap);
  s->size = c.fill(nid, s->objects(), s->capacity);
  c.deal_by_line(s->objects(), s->size);
  for (std::uint32_t i = 0; i < s->size; ++i) NS_TSAN_RELEASE(s->objects()[i]);
  return s->size > 0;
}

// Makes *spare a sheaf with room (for a free): empty, or partly filled (a
// spare split_spare left half of; installed as main, it takes at least
// capacity - size frees). A full one goes to the barn or its slabs; the
// empty one that replaces it gets capacity cap. False when out of memory.
bool prepare_room_spare(KmemCache& c, unsigned nid, Sheaf** spare, std::uint32_t cap) {
  if (!*spare) return (*spare = sheaf_get_empty(c, nid, cap)) != nullptr;
  Sheaf* s = *spare;
  if (s->size < s->capacity) return true;
  if (barn_put_full(c, nid, s)) {
    *spare = sheaf_get_empty(c, nid, cap);
    return *spare != nullptr;
  }
  sheaf_flush(c, s);
  if (s->capacity != cap) s->init(cap);
  return true;
}

std::uint32_t slot_capacity(KmemCache& c, PercpuSheaves* cs, bool refill, std::uint64_t now_ns) {
  if (c.sheaf_capacity_hot == c.sheaf_capacity) return c.sheaf_capacity;
  std::uint32_t cap =
      slot_tune(cs->tune[c.cls], now_ns, refill) ? c.sheaf_capacity_hot : c.sheaf_capacity;
  // The spare takes the capacity now (it is no CPU's main): a slot that
  // swaps main and spare without the barn or the slabs (a churn of a few
  // objects) would otherwise never see a sheaf of the other capacity. Cut
  // down, it keeps what a cold one would; the rest goes to the slabs.
  Sheaf* s = cs->slots[c.cls].spare;
  if (s && s->capacity != cap) {
    if (s->size > cap) {
      c.free_batch(s->objects() + cap, s->size - cap);
      s->size = cap;
    }
    s->resize(cap);
  }
  return cap;
}

}  // namespace numaslub
