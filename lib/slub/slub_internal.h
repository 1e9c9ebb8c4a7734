// State shared by the slub layer's .cpp files; not for other layers.
#pragma once

#include <atomic>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"
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
// prof=1 (prof.h): a sampled small allocation of class size `size`, asked
// for as `asked` bytes, served as a large block of its own (kmalloc.cpp);
// null when there is no memory for one.
void* prof_alloc_sampled(std::size_t size, std::size_t asked);
// The barn and the main/spare hand-offs (barn.cpp).
// An empty sheaf of capacity cap (the barn's, or a new one).
Sheaf* sheaf_get_empty(KmemCache& c, unsigned nid, std::uint32_t cap);
void sheaf_put_empty(KmemCache& c, unsigned nid, Sheaf* s);
void sheaf_flush(KmemCache& c, Sheaf* s);
Sheaf* barn_get_full(KmemCache& c, unsigned nid);
bool barn_put_full(KmemCache& c, unsigned nid, Sheaf* s);
std::size_t barn_flush(KmemCache& c, unsigned nid);
Sheaf* main_take(void** top);
bool prepare_full_spare(KmemCache& c, unsigned nid, Sheaf** spare, std::uint32_t cap);
bool prepare_room_spare(KmemCache& c, unsigned nid, Sheaf** spare, std::uint32_t cap);
// Counts a slow path (refill: an allocation's, else a free's) of class c's
// slot in set cs (its lock held, or the owning thread) at coarse time
// now_ns, and returns the capacity the sheaves the slot prepares now get
// (sheaf_tune.h); the slot's spare is given that capacity there (objects
// beyond it go back to their slabs).
std::uint32_t slot_capacity(KmemCache& c, PercpuSheaves* cs, bool refill, std::uint64_t now_ns);
// How many of a stocked spare's objects an allocation that found main
// empty leaves in the spare (slub.cpp, "splitting a stocked spare").
inline std::uint32_t split_spare_count(const Sheaf* spare) {
  return spare->size / 2;
}
// Draining other CPUs' sheaves (drain.cpp, rseq mode): whether it can be
// done without moving the caller, and the fallback that moves it.
bool remote_drain_available();
void drain_all_by_migration();
void release_slots(PercpuSheaves* cs, bool keep_full);
PercpuSheaves* cpu_sheaves(unsigned cpu);  // rseq mode: CPU cpu's sheaf set
// 64 random bits (getrandom; the clock where it fails), odd.
std::uint64_t random_secret();
Mutex& slub_init_lock();
Mutex& slub_thread_pool_lock();

}  // namespace numaslub
