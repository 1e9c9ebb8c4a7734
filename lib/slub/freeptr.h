// Free pointer mangling (the kernel's SLAB_FREELIST_HARDENED): how a link
// stored inside a free object (a slab's freelist and remote list, slab.cpp;
// the debug quarantine, debug.cpp) is written, so that a stray write into
// it is found when it is read back, not followed.
//
// stored = (next + key ^ bswap(where)) * kFreePtrMul    (mod 2^64)
// next   = stored * kFreePtrMulInv - (key ^ bswap(where))
//
// key is a secret (per cache and fork generation, or the quarantine's);
// bswap(where), the address of the stored word, makes the same link read
// differently at two places, so a copied word does not decode as itself.
//
// Why the multiply: with a plain xor (next ^ key ^ bswap(where), as before
// and as glibc's safe-linking), a write into the stored word's low byte
// (a one-byte overflow from the object before it, tests/hostile/misuse.c's
// overflow_1) changes only the decoded pointer's low byte: it stays inside
// the slab and, 1 time in 64 for 64-byte objects, lands on another object's
// start, which the reader's check (KmemCache::next_free) accepts, and two
// mallocs can return overlapping blocks. Multiplied, a change d to the
// stored word moves the decoded pointer by d * kFreePtrMulInv, which for
// the changes an overflow or a stray small write makes lands far away.
//
// Invariant (tests/slub_freeptr_test.cpp checks it over every such d): a
// change confined to the stored word's low 4 bytes, or to any 2 adjacent
// bytes of it, moves the decoded pointer by at least kFreePtrMinMove bytes,
// more than 4 times the largest slab (kPageSize << kMaxSlabOrder): it
// cannot decode to another object of the same slab, and the reader's check
// aborts. (A larger change decodes to an essentially random address, which
// starts an object of the slab with probability below 2^-40.) The constant
// was drawn at random and kept because it passed that search.
#pragma once

#include <cstdint>

namespace numaslub {

inline constexpr std::uint64_t kFreePtrMul = 0xdd3da59ebc60f563ULL;
inline constexpr std::uint64_t kFreePtrMulInv = [] {
  std::uint64_t x = kFreePtrMul;  // Newton's iteration for the inverse mod 2^64
  for (int i = 0; i < 6; ++i) x *= 2 - kFreePtrMul * x;
  return x;
}();
static_assert(kFreePtrMul * kFreePtrMulInv == 1, "kFreePtrMul must be odd");
inline constexpr std::uint64_t kFreePtrMinMove = std::uint64_t{1} << 20;

inline std::uint64_t freeptr_where_key(std::uint64_t key, void** where) {
  return key ^ __builtin_bswap64(reinterpret_cast<std::uintptr_t>(where));
}

// The value to store at `where` for a link to `next` (null included).
inline void* freeptr_encode(void* next, std::uint64_t key, void** where) {
  return reinterpret_cast<void*>(
      (reinterpret_cast<std::uintptr_t>(next) + freeptr_where_key(key, where)) * kFreePtrMul);
}

// The link freeptr_encode stored at `where`.
inline void* freeptr_decode(void* stored, std::uint64_t key, void** where) {
  return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(stored) * kFreePtrMulInv -
                                 freeptr_where_key(key, where));
}

}  // namespace numaslub
