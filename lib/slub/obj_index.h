// Object index from an address, without a divide: the always-on check that
// a freed pointer is the start of an object of its slab (hardening).
//
// Slab geometry is fixed per class: order from slab_order_for, objects =
// slab bytes / class size, and a slab is a buddy block, aligned to its size
// in the heap, so a heap offset masked with (slab bytes - 1) is the offset
// into its slab. For an offset `off` into a slab (off < 2^17) and
// class size d = d0 * 2^t (d0 odd), let inv = d0^-1 mod 2^64. Then
//     rotr64(off * inv, t) == off / d      when d divides off, and
//     rotr64(off * inv, t) >= 2^32         when it does not:
// if off's low t bits are not all zero, (odd inv) the product's are not
// either, and the rotation moves them to the top; if they are, off = m * 2^t
// and the result is m * inv mod 2^(64 - t), which is at most
// (2^(64-t) - 1) / d0 exactly when d0 divides m (Granlund-Montgomery), and
// otherwise larger than that, so at least 2^47 / 2^15. One compare with the
// object count then tells "start of an object of this slab" from anything
// else, the unused tail after the last object included. A multiply, a
// rotate, a compare: cheap enough for the free fast path.
//
// The table is indexed by Page::slab_slot (below); pages that are not a
// slab's find an entry with objects == 0, so every offset fails.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/numa/numa.h"
#include "lib/slub/size_class.h"

namespace numaslub {

inline constexpr unsigned kMaxSlabOrder = 5;

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
  std::uint64_t inv;      // inverse of the class size's odd part, mod 2^64
  std::uint64_t objects;  // objects per slab (0: not a slab page)
  std::uint32_t mask;     // slab bytes - 1: slabs are aligned to their size
  std::uint8_t shift;     // trailing zero bits of the class size
  std::uint8_t unused[11];
};
static_assert(sizeof(ObjIndex) == 32);

namespace detail {

constexpr std::uint64_t inverse_mod_2_64(std::uint64_t odd) {
  std::uint64_t x = odd;  // correct to 3 bits; each step doubles them
  for (int i = 0; i < 5; ++i) x *= 2 - odd * x;
  return x;
}

// Indexed by Page::slab_slot / 16 (the class's sheaf-slot offset,
// size_class.h): the free fast path has that offset at hand already. The
// entries before the first class's, slab_slot 0 included, are for pages that
// are not a slab's: no objects.
constexpr std::array<ObjIndex, class_slot_offset(kNrClasses) / 16> make_obj_index() {
  std::array<ObjIndex, class_slot_offset(kNrClasses) / 16> t{};
  for (unsigned c = 0; c < kNrClasses; ++c) {
    std::uint32_t d = kClassSize[c];
    unsigned shift = static_cast<unsigned>(std::countr_zero(d));
    std::uint32_t bytes = std::uint32_t{kPageSize} << slab_order_for(d);
    t[class_slot_offset(c) / 16] = {
        inverse_mod_2_64(d >> shift), bytes / d, bytes - 1, static_cast<std::uint8_t>(shift), {}};
  }
  return t;
}

}  // namespace detail

// The fast paths read a copy kept in g_slub (kmalloc.h), addressed from the
// same base register as the fields next to it.
inline constexpr auto kObjIndex = detail::make_obj_index();
using ObjIndexTable = decltype(kObjIndex);
// Slot offsets step by 16 bytes, half an entry: table + 2 * slot is the entry.
static_assert(2 * (class_slot_offset(1) - class_slot_offset(0)) == sizeof(ObjIndex));

// The entry of `table` for a page whose Page::slab_slot is `slot`.
NS_ALWAYS_INLINE const ObjIndex& obj_index_entry(const ObjIndexTable& table, std::size_t slot) {
  return *reinterpret_cast<const ObjIndex*>(reinterpret_cast<const char*>(table.data()) + 2 * slot);
}

// off / size when heap offset `off` is the start of an object of the slab
// it lies in; otherwise a value >= e.objects.
NS_ALWAYS_INLINE std::uint64_t obj_index(const ObjIndex& e, std::uint64_t off) {
  return std::rotr((off & e.mask) * e.inv, e.shift);
}

}  // namespace numaslub
