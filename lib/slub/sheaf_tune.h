// Sheaf capacity by demand: a CPU's sheaves of a big class stay small while
// the class is cold and grow while it churns on that CPU (issue 14).
//
// A class's sheaves exist to spare its slow path. For classes of a few KiB
// and above a sheaf of 32 KiB holds only a few objects, and whether more
// are worth their memory depends on the program:
// - window (sizes 8 B .. 64 KiB, log-uniform, each thread allocating and
//   freeing its own): every class is hot on every CPU, allocations and
//   frees interleave, and sheaves of 1..4 big objects sent one malloc+free
//   pair in six to the barn or the slabs (141k slow paths in 800k pairs;
//   with hot sheaves 49k; callgrind: 134 library instructions per pair,
//   100 with every slot hot);
// - mstress (rounds of threads that end by freeing most of their objects):
//   the big classes see a few operations per millisecond, and whatever
//   their sheaves and barns hold at the peak is resident memory no other
//   class can use (3.4 MiB of 33 at its peak in the classes above 16 KiB,
//   2.4 MiB of it in the 40..64 KiB ones'; 2.0 MiB in all now); with 8
//   objects a sheaf for every class its peak RSS grew 2 MiB. (Holding
//   nothing more in those classes, no barn and no empty slab kept, and 4
//   KiB sheaves for every class, gave the same peak: what mstress keeps
//   above jemalloc's now is free pages, per-CPU page lists and dirty
//   fragments, in the page allocator; pcp=0 takes 1 MiB of it.)
// So each CPU slot of such a class (KmemCache::sheaf_capacity below
// sheaf_capacity_hot) counts its slow paths per interval of the coarse
// clock (kTuneShift: ~4 ms), by direction. A slot is hot for the next
// interval when the last one saw at least kGetHot refills and as many
// flushes (kStayHot to stay hot): churn, which only a bigger buffer on the
// CPU removes. A one-way flow (a producer's frees, a consumer's
// allocations, the burst of frees a thread ends with) is what the barn's
// exchange of whole sheaves is for, and stays at the base capacity. At each
// slow path the slot's spare takes the capacity the state says
// (slot_capacity, barn.cpp: cut down, its extra objects go to their
// slabs), and so does every empty sheaf the slot prepares; main keeps its
// own until it becomes the spare.
//
// Rates, for scale (this 2-core machine): window's hot classes take
// hundreds of slow paths per interval at the base capacity and tens at the
// hot one; mstress's big classes about 20 allocations and 10 frees. 32 of
// each, at ~300 ns a slow path, is ~0.5% of a CPU spent on one class.
#pragma once

#include <cstdint>

namespace numaslub {

struct SlotTune {
  std::uint8_t tick = 0;     // the interval counted (coarse ns >> kTuneShift, mod 256)
  std::uint8_t refills = 0;  // slow paths of allocations in it (saturating)
  std::uint8_t flushes = 0;  // slow paths of frees in it (saturating)
  std::uint8_t hot = 0;      // sheaves prepared now get the hot capacity
};
static_assert(sizeof(SlotTune) == 4);

inline constexpr unsigned kTuneShift = 22;  // 2^22 ns: 4.2 ms
inline constexpr unsigned kGetHot = 32;     // refills and flushes in an interval to get hot
// ... to stay hot: one of each. A hot sheaf absorbs most of the churn that
// made it hot (window: tens of slow paths an interval where there were
// hundreds), so a higher bar would drop the slot to cold, and back a
// moment later.
inline constexpr unsigned kStayHot = 1;

// Counts one slow path of the slot (refill: an allocation's; else a
// free's) at coarse time now_ns and returns whether the slot is hot. The
// verdict on an interval is taken at the first slow path after it; an
// interval that is not the one just before (the slot was idle since, or
// the tick wrapped) says nothing: cold.
inline bool slot_tune(SlotTune& t, std::uint64_t now_ns, bool refill) {
  auto tick = static_cast<std::uint8_t>(now_ns >> kTuneShift);
  if (tick != t.tick) {
    // A coarse clock of 4 ms may step over one interval of 4.2 ms.
    bool recent = static_cast<std::uint8_t>(tick - t.tick) <= 2;
    unsigned need = t.hot ? kStayHot : kGetHot;
    t.hot = recent && t.refills >= need && t.flushes >= need;
    t.tick = tick;
    t.refills = t.flushes = 0;
  }
  std::uint8_t& n = refill ? t.refills : t.flushes;
  n = static_cast<std::uint8_t>(n + (n < 255));
  return t.hot != 0;
}

}  // namespace numaslub
