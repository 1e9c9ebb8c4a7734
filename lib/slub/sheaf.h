// Sheaves: per-CPU arrays of free object pointers (Linux 6.18's percpu
// sheaves), the allocator's fast path.
//
// Each CPU has, per size class, a `main` sheaf that malloc pops from and free
// pushes to, and a `spare` sheaf. Full and empty sheaves are exchanged with
// the node's barn (a per-node, per-class store of sheaves) in one step.
//
// Invariants:
// - main is touched only by code running on its CPU inside an rseq critical
//   section (rseq_ops.h): the pop/push commit with a single store of `size`,
//   and a section interrupted by preemption, migration or a signal restarts,
//   so no lock and no atomic read-modify-write are needed.
// - spare, and the right to replace main, belong to whoever holds the CPU's
//   `lock` (slow paths only). main is replaced by an rseq section whose commit
//   is the single store of the new pointer, run on that CPU: once it commits,
//   no fast path can still be using the old main (it would have been aborted),
//   so the old sheaf belongs to the lock holder.
// - In per-thread mode (no rseq) the same CpuSlots belong to one thread, and
//   none of this is needed.
// - A null main means "not set up": both fast paths branch to the slow path.
// - objects[-1] is `guard`, which is odd and so never equals an object: the
//   push path compares the freed pointer with objects[size-1] (the last
//   freed object, as the kernel's naive double-free check does) without
//   testing size first.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/base/lock.h"
#include "lib/slub/size_class.h"

namespace numaslub {

struct Sheaf {
  std::uint32_t size;      // objects held; objects[0..size) are valid
  std::uint32_t capacity;  // objects the array holds
  Sheaf* next;             // barn list link
  std::uint64_t guard;     // always 1; read as objects[-1]
  void* objects[];         // capacity entries
};
inline constexpr std::size_t kSheafSizeOffset = 0;
inline constexpr std::size_t kSheafCapOffset = 4;
inline constexpr std::size_t kSheafObjectsOffset = 24;
static_assert(offsetof(Sheaf, objects) == kSheafObjectsOffset);

struct SheafSlot {
  Sheaf* main;
  Sheaf* spare;
};

// The per-CPU (or, in thread mode, per-thread) set of sheaves. Per-CPU sets
// sit kCpuSlotsStride bytes apart, indexed by rseq's cpu_id_start.
struct alignas(64) CpuSlots {
  Mutex lock;          // slow paths of this CPU (spare, replacing main)
  std::uint32_t node;  // the CPU's node: its sheaves hold only this node's objects
  std::uint32_t cpu;
  std::uint64_t last_used_ns;  // for idle-sheaf drain
  CpuSlots* pool_next;         // thread mode: link in the pool of unused sets
  std::uint8_t pad[64 - 32];
  SheafSlot slots[kNrClasses];
};
inline constexpr unsigned kCpuSlotsShift = 10;
inline constexpr std::size_t kCpuSlotsStride = std::size_t{1} << kCpuSlotsShift;
inline constexpr std::size_t kSlotsOffset = 64;
static_assert(sizeof(CpuSlots) <= kCpuSlotsStride);
static_assert(offsetof(CpuSlots, slots) == kSlotsOffset);

// A node's store of full and empty sheaves for one class.
struct Barn {
  Mutex lock;
  std::uint32_t nr_full = 0;
  std::uint32_t nr_empty = 0;
  Sheaf* full = nullptr;
  Sheaf* empty = nullptr;
};

}  // namespace numaslub
