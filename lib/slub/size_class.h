// Size classes of the kmalloc caches.
//
// 16-byte steps up to 128 bytes, then four classes per doubling up to 64 KiB:
// 160 192 224 256, 320 384 448 512, ... 40960 49152 57344 65536. A request
// of n bytes gets the smallest class >= n, so the internal waste is below
// 16 bytes up to 128 bytes and below 25% for every size above 48 bytes (the
// 16-byte alignment every object needs makes 17 -> 32 unavoidable; the
// worst case above 128 is just past a step: 129 -> 160).
// Every class is a multiple of 16 (16-byte alignment for every object) and
// every power of two up to 64 KiB is a class, whose objects are then
// naturally aligned (slabs are aligned to their size).
//
// The classes above 32 KiB (kMaxDenseClassSize) were large blocks before
// (issue 14): a malloc+free pair of 40 KiB cost ~930 instructions through
// the page allocator's run lists (locks, current_cpu twice, the zone on a
// miss) against ~80 for a class's sheaves. Their objects are what programs
// touch sparsely (buffers sized for the worst case), so their slabs are
// placed as large blocks are (kGfpSparse: outside huge ranges), and calloc
// of them still takes a clean large block (no memset, no RSS for pages it
// never touches).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"

namespace numaslub {

inline constexpr unsigned kNrClasses = 44;
inline constexpr std::size_t kMaxSmallSize = 65536;
// The largest class whose slabs are placed densely (see above).
inline constexpr std::size_t kMaxDenseClassSize = 32768;

namespace detail {

constexpr std::array<std::uint32_t, kNrClasses> make_class_sizes() {
  std::array<std::uint32_t, kNrClasses> s{};
  unsigned i = 0;
  for (std::uint32_t n = 16; n <= 128; n += 16) s[i++] = n;
  for (std::uint32_t base = 128; base < kMaxSmallSize; base *= 2)
    for (std::uint32_t q = 1; q <= 4; ++q) s[i++] = base + q * base / 4;
  return s;
}

template <std::size_t N, unsigned kStep>
constexpr std::array<std::uint8_t, N> make_class_lookup() {
  constexpr auto sizes = make_class_sizes();
  std::array<std::uint8_t, N> t{};
  for (std::size_t i = 0; i < N; ++i) {
    unsigned c = 0;
    while (sizes[c] < i * kStep) ++c;
    t[i] = static_cast<std::uint8_t>(c);
  }
  return t;
}

}  // namespace detail

inline constexpr auto kClassSize = detail::make_class_sizes();
// Lookup tables: index (n+15)/16 for n <= 1024, (n+127)/128 above.
inline constexpr auto kClassBySize16 = detail::make_class_lookup<1024 / 16 + 1, 16>();
inline constexpr auto kClassBySize128 = detail::make_class_lookup<kMaxSmallSize / 128 + 1, 128>();

// Where a class's sheaf slot sits in a CPU's slot set (sheaf.h checks this
// against PercpuSheaves): 64-byte header, then 16 bytes per class.
constexpr std::size_t class_slot_offset(unsigned cls) {
  return 64 + 16 * std::size_t{cls};
}

namespace detail {
template <std::size_t N>
constexpr std::array<std::uint16_t, N> make_slot_lookup(const std::array<std::uint8_t, N>& cls) {
  std::array<std::uint16_t, N> t{};
  for (std::size_t i = 0; i < N; ++i) t[i] = static_cast<std::uint16_t>(class_slot_offset(cls[i]));
  return t;
}
}  // namespace detail

// The same lookups giving the sheaf-slot offset directly (malloc's fast path).
inline constexpr auto kSlotBySize16 = detail::make_slot_lookup(kClassBySize16);
inline constexpr auto kSlotBySize128 = detail::make_slot_lookup(kClassBySize128);

// Small requests are the common case: their lookup is the fall-through path.
[[gnu::always_inline]] constexpr std::size_t size_to_slot_offset(std::size_t n) {
  if (__builtin_expect(n <= 1024, 1)) return kSlotBySize16[(n + 15) >> 4];
  return kSlotBySize128[(n + 127) >> 7];
}

// Class index for a request of n bytes (n <= kMaxSmallSize); 0 bytes -> 16.
[[gnu::always_inline]] constexpr unsigned size_to_class(std::size_t n) {
  return n <= 1024 ? kClassBySize16[(n + 15) >> 4] : kClassBySize128[(n + 127) >> 7];
}

namespace detail {
constexpr bool class_waste_ok() {
  for (std::size_t n = 1; n <= kMaxSmallSize; ++n) {
    std::uint32_t c = kClassSize[size_to_class(n)];
    if (c < n || (n <= 128 && c - n >= 16)) return false;
    if (n > 48 && (c - n) * 4 >= c) return false;
  }
  return true;
}
static_assert(kClassSize[kNrClasses - 1] == kMaxSmallSize);
static_assert(class_waste_ok(), "size class waste bound broken");
}  // namespace detail

}  // namespace numaslub
