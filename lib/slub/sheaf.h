// Sheaves: per-CPU arrays of free object pointers (Linux 6.18's percpu
// sheaves), the allocator's fast path.
//
// Each CPU has, per size class, a `main` sheaf that malloc pops from and free
// pushes to, and a `spare` sheaf. Full and empty sheaves are exchanged with
// the node's barn (a per-node, per-class store of sheaves) in one step.
//
// Invariants:
// - main is touched only by code running on its CPU inside an rseq critical
//   section (rseq_ops.h): pop, push and replacing main each commit with a
//   single store of the slot's `main` word, and a section interrupted by
//   preemption, migration or a signal restarts, so no lock and no atomic
//   read-modify-write are needed.
// - spare, and the right to replace main, belong to whoever holds the CPU's
//   `lock` (slow paths only). main is replaced by an rseq section run on that
//   CPU: once it commits, no fast path can still be using the old main (it
//   would have been aborted), so the old sheaf belongs to the lock holder.
// - A drainer on another CPU may take a main with an atomic exchange to the
//   no-sheaf sentinel followed by membarrier(PRIVATE_EXPEDITED_RSEQ) on the
//   main's CPU, holding the CPU's lock (the argument is in slub.cpp, "draining
//   another CPU's sheaves").
// - In per-thread mode (no rseq) the same PercpuSheaves belong to one thread, and
//   none of this is needed; other threads' sets are emptied by their owner
//   when it sees a newer trim generation.
//
// The main word is the sheaf's stack top: the address of the next free
// entry. A sheaf is one 512-byte aligned block of 64 words; its `capacity`
// objects fill the last entries, the word just below them is a sentinel
// (odd, so never an object), and the header sits in the first words. So:
// - pop:  obj = top[-1]; if obj is odd the sheaf is empty; else top -= 1;
// - push: if top is 512-aligned the sheaf is full; else *top = obj, top += 1;
// - the double-free check compares obj with top[-1] (the last freed object,
//   or the sentinel when empty) with no test of the size first;
// - the sheaf is ((top - 1) & ~511), its size top - objects.
// An empty "no sheaf" sentinel sheaf of capacity 0 (kNoSheaf) makes both
// pop and push take the slow path, which sets up a real one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/slub/sheaf_tune.h"
#include "lib/slub/size_class.h"

namespace numaslub {

inline constexpr std::size_t kSheafBytes = 512;
inline constexpr unsigned kSheafWords = kSheafBytes / sizeof(void*);
inline constexpr unsigned kSheafMaxCapacity = kSheafWords - 3;  // header (2) + sentinel (1)
inline constexpr std::uintptr_t kSheafSentinel = 1;

struct alignas(kSheafBytes) Sheaf {
  Sheaf* next;             // barn list link
  std::uint32_t size;      // objects held while this is not a CPU's main sheaf
  std::uint32_t capacity;  // objects it holds when full
  void* words[kSheafWords - 2];

  // The objects: the last `capacity` words, preceded by the sentinel.
  void** objects() { return reinterpret_cast<void**>(this + 1) - capacity; }
  void** top() { return objects() + size; }
  // Sets capacity and writes the sentinel; the sheaf starts empty.
  void init(std::uint32_t cap) {
    next = nullptr;
    size = 0;
    capacity = cap;
    objects()[-1] = reinterpret_cast<void*>(kSheafSentinel);
  }
  // Gives a sheaf that is no CPU's main capacity cap (>= size), keeping
  // its objects.
  void resize(std::uint32_t cap) {
    void** from = objects();
    capacity = cap;
    __builtin_memmove(objects(), from, size * sizeof(void*));
    objects()[-1] = reinterpret_cast<void*>(kSheafSentinel);
  }
  static Sheaf* from_top(void** top) {
    return reinterpret_cast<Sheaf*>((reinterpret_cast<std::uintptr_t>(top) - 1) &
                                    ~(kSheafBytes - 1));
  }
  // Writes the size a main word implies back into the sheaf (taking it out of a slot).
  static Sheaf* take(void** top) {
    Sheaf* s = from_top(top);
    s->size = static_cast<std::uint32_t>(top - s->objects());
    return s;
  }
};
static_assert(sizeof(Sheaf) == kSheafBytes);

// The shared sentinel sheaf (capacity 0): a CPU slot holds its top until the
// slow path installs a real sheaf.
extern Sheaf g_no_sheaf;
inline void** no_sheaf_top() {
  return reinterpret_cast<void**>(&g_no_sheaf + 1);
}

struct SheafSlot {
  void** main;   // top of the main sheaf (no_sheaf_top() when none; null before set-up)
  Sheaf* spare;  // null when none
};

// The per-CPU (or, in thread mode, per-thread) set of sheaves. Per-CPU sets
// sit kPercpuSheavesStride bytes apart, indexed by rseq's cpu_id_start.
struct alignas(64) PercpuSheaves {
  Mutex lock;          // slow paths of this CPU (spare, replacing main)
  std::uint32_t node;  // the CPU's node: its sheaves hold only this node's objects
  std::uint32_t cpu;
  std::uint64_t last_used_ns;  // for idle-sheaf drain
  PercpuSheaves* pool_next;    // thread mode: link in the pool of unused sets
  std::uint64_t trim_gen;      // thread mode: the last malloc_trim this set caught up with
  std::uint8_t pad[64 - 40];
  SheafSlot slots[kNrClasses];
  // Per class: how hot the class is on this CPU (sheaf_tune.h); touched by
  // the slow paths only, under `lock` (or by the owning thread).
  SlotTune tune[kNrClasses];
};
inline constexpr unsigned kPercpuSheavesShift = 10;
inline constexpr std::size_t kPercpuSheavesStride = std::size_t{1} << kPercpuSheavesShift;
inline constexpr std::size_t kSlotsOffset = 64;
static_assert(sizeof(PercpuSheaves) <= kPercpuSheavesStride);
// Where CPU 0's set lies from the fast paths' state (kmalloc.h, FastPathBlock).
inline constexpr std::size_t kCpuSetsDisp = 4096;
static_assert(offsetof(PercpuSheaves, slots) == kSlotsOffset);
static_assert(class_slot_offset(0) == kSlotsOffset &&
              class_slot_offset(1) - class_slot_offset(0) == sizeof(SheafSlot));

// The most object bytes a barn's full sheaves may grow to hold (per class and
// node) when the flow between CPUs asks for it; never below the base limit.
inline constexpr std::size_t kBarnMaxBytes = std::size_t{1} << 20;
// The same for a class whose sheaves grow when hot (sheaf_tune.h).
inline constexpr std::size_t kBarnMaxBytesBig = std::size_t{256} << 10;
// The fewest objects a hot slot's sheaves hold.
inline constexpr unsigned kSheafHotObjects = 8;

// A node's store of full and empty sheaves for one class. Everything is
// guarded by `lock`. max_full adapts between the cache's barn_max_full and
// barn_cap_full (slub.cpp, "barn", says when). It counts sheaves, of
// whatever capacity (sheaf_tune.h): a hot slot's sheaves came from a class
// hot somewhere, whose barn holds them as it would hold cold ones
// (counted in objects, the barn refused them, and window cut and freed
// 2.3x the slabs).
struct Barn {
  Mutex lock;
  std::uint32_t nr_full = 0;
  std::uint32_t nr_empty = 0;
  Sheaf* full = nullptr;
  Sheaf* empty = nullptr;
  std::uint32_t max_full = 0;   // set by KmemCache::init
  bool overflowed = false;      // a full sheaf was refused since the last miss
  std::uint64_t hits = 0;       // full sheaves handed to an allocation
  std::uint64_t misses = 0;     // allocations that found no full sheaf
  std::uint64_t overflows = 0;  // full sheaves refused at max_full
  std::uint64_t grows = 0;      // times max_full was raised
};

}  // namespace numaslub
