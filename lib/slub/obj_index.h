// Is an address the start of an object? Answered without a divide, for
// the always-on check that a freed pointer starts an object of its slab
// (hardening).
//
// Slab geometry is fixed per class: order from slab_order_for, objects =
// slab bytes / class size, and a slab is a buddy block, aligned to its size
// in the heap, so a heap offset masked with (slab bytes - 1) is the offset
// into its slab. For class size d, let M = floor(2^64 / d) + 1, so that
// d * M = 2^64 + e with 0 < e <= d. For an offset off = k * d + r into a slab
// (0 <= r < d, off < 2^18: order kMaxSlabOrder at most, so k * e <= k * d
// <= off < 2^18), modulo 2^64:
//     off * M == k * e                    when r == 0, and
//     off * M == r * M + k * e >= M       when r > 0 (r * M <= 2^64 + e - M,
//                                         and k * e < M - e: no wrap),
// with M >= 2^64 / 2^17 = 2^47 (d <= 64 KiB). So one compare with limit =
// objects * e (<= 2^18) accepts exactly the starts of objects 0 .. objects - 1 and
// rejects every other offset, the unused tail's included (k == objects
// there). An and, a multiply, a compare, each with its operand in the
// table: cheap enough for the free fast path. (Lemire, Kaser and Kurz's
// divisibility test, with its bound moved to count objects.)
//
// The table is indexed by Page::sheaf_off (below); pages that are not a
// slab's find an entry with limit == 0, so every offset fails.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/numa/numa.h"
#include "lib/slub/size_class.h"

namespace numaslub {

// 256 KiB: a slab of 48 KiB objects holds 5 with 1/16 waste (at order 5,
// 2 with a quarter). No class below 48 KiB reaches it; debug slabs of the
// 64 KiB class need it for one object with its red zones.
inline constexpr unsigned kMaxSlabOrder = 6;

// Smallest order whose tail waste is at most 1/8 of the slab, preferring at
// least 8 objects per slab for small objects (fewer trips to the buddy).
constexpr unsigned slab_order_for(std::uint32_t size) {
  for (unsigned o = 0; o <= kMaxSlabOrder; ++o) {
    std::uint64_t bytes = std::uint64_t{kPageSize} << o;
    std::uint64_t objs = bytes / size;
    if (objs == 0) continue;
    if ((bytes - objs * size) * 8 > bytes) continue;
    if (objs < 8 && o < 3) continue;
    return o;
  }
  return kMaxSlabOrder;
}

// 32 bytes, so that the free fast path addresses an entry as
// table + 2 * slot, and every field is a memory operand of its instruction.
struct ObjIndex {
  std::uint64_t mult;     // floor(2^64 / size) + 1
  std::uint64_t limit;    // objects * (size * mult mod 2^64); 0: not a slab page
  std::uint32_t mask;     // slab bytes - 1: slabs are aligned to their size
  std::uint32_t objects;  // objects per slab
  std::uint64_t size;     // the class's object size (realloc's fast path); 0: not a slab page
};
static_assert(sizeof(ObjIndex) == 32);

namespace detail {

// Indexed by Page::sheaf_off / 16 (the class's sheaf-slot offset,
// size_class.h): the free fast path has that offset at hand already. The
// entries before the first class's, sheaf_off 0 included, are for pages that
// are not a slab's: no objects.
constexpr std::array<ObjIndex, class_slot_offset(kNrClasses) / 16> make_obj_index() {
  std::array<ObjIndex, class_slot_offset(kNrClasses) / 16> t{};
  for (unsigned c = 0; c < kNrClasses; ++c) {
    std::uint32_t d = kClassSize[c];
    std::uint32_t bytes = std::uint32_t{kPageSize} << slab_order_for(d);
    // floor(2^64 / d) + 1; (2^64 - 1) / d falls one short when d divides 2^64.
    std::uint64_t mult = ~std::uint64_t{0} / d + 1 + ((d & (d - 1)) == 0);
    t[class_slot_offset(c) / 16] = {mult, (bytes / d) * (d * mult), bytes - 1, bytes / d, d};
  }
  return t;
}

}  // namespace detail

// The fast paths read a copy kept in g_fastpath (kmalloc.h), addressed from the
// same base register as the fields next to it.
inline constexpr auto kObjIndex = detail::make_obj_index();
using ObjIndexTable = decltype(kObjIndex);
// Slot offsets step by 16 bytes, half an entry: table + 2 * slot is the entry.
static_assert(2 * (class_slot_offset(1) - class_slot_offset(0)) == sizeof(ObjIndex));

// The entry of `table` for a page whose Page::sheaf_off is `slot`.
NS_ALWAYS_INLINE const ObjIndex& obj_index_entry(const ObjIndexTable& table, std::size_t slot) {
  return *reinterpret_cast<const ObjIndex*>(reinterpret_cast<const char*>(table.data()) + 2 * slot);
}

// Whether heap offset `off` is the start of an object of the slab it lies
// in (a slab of e's class; never for a page of no slab).
NS_ALWAYS_INLINE bool obj_start(const ObjIndex& e, std::uint64_t off) {
  return (off & e.mask) * e.mult < e.limit;
}

// obj_start for the free fast path: the entry of `slot` in `table`, which
// lies `table_off` bytes into the object at `base`. The same three
// instructions, each with its operand addressed from base and slot (the
// compiler would first compute the entry's address: one more instruction
// on every free).
template <std::size_t table_off>
NS_ALWAYS_INLINE bool obj_start_at(const void* base, const ObjIndexTable& table, std::size_t slot,
                                   std::uint64_t off) {
#if defined(__x86_64__)
  bool start;
  __asm__(
      "andl %c[mask](%[base],%[slot],2), %k[off]\n\t"
      "imulq %c[mult](%[base],%[slot],2), %[off]\n\t"
      "cmpq %c[limit](%[base],%[slot],2), %[off]"
      : [off] "+&r"(off), "=@ccb"(start)
      : [base] "r"(base), [slot] "r"(slot), [mask] "i"(table_off + offsetof(ObjIndex, mask)),
        [mult] "i"(table_off + offsetof(ObjIndex, mult)),
        [limit] "i"(table_off + offsetof(ObjIndex, limit)), "m"(table));
  return start;
#else
  (void)base;
  return obj_start(obj_index_entry(table, slot), off);
#endif
}

}  // namespace numaslub
