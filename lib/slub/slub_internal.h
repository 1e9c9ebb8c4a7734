// State shared by the slub layer's .cpp files; not for other layers.
#pragma once

#include <atomic>
#include <cstdint>

#include "lib/base/stat.h"
#include "lib/buddy/page_alloc.h"
#include "lib/slub/sheaf.h"
#include "lib/slub/slab.h"

namespace numaslub {

struct ClassStats {
  StatCounter refills;  // main sheaves replaced by a full one
  StatCounter flushes;  // main sheaves replaced by an empty one
};

struct KmemState {
  PageAllocator* pa = nullptr;
  unsigned max_cpu_sheaves = 0;  // the per-CPU table's size (0 before set-up: kMaxCpus)
  KmemCache caches[kNrClasses];
  ClassStats stats[kNrClasses];
  std::atomic<std::uint64_t> direct_reclaims{0};
};
extern KmemState g_kmem;

// A small object of `size` bytes (<= kMaxSmallSize), free tag cleared;
// from the debug path for a debug cache (debug.h), which records `asked`
// as the size asked for.
void* small_alloc_slow(std::size_t size, std::size_t asked);
void small_free_slow(Page* page, void* p);
Sheaf* sheaf_get_empty(KmemCache& c, unsigned nid);
void sheaf_put_empty(KmemCache& c, unsigned nid, Sheaf* s);
void sheaf_flush(KmemCache& c, Sheaf* s);
void release_slots(PercpuSheaves* cs, bool keep_full);
PercpuSheaves* cpu_sheaves(unsigned cpu);  // rseq mode: CPU cpu's sheaf set
bool slub_ready();
// 64 random bits (getrandom; the clock where it fails), odd.
std::uint64_t random_secret();
Mutex& slub_init_lock();
Mutex& slub_thread_pool_lock();

}  // namespace numaslub
