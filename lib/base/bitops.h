// Bit and alignment arithmetic on sizes, orders and page frame numbers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaslub {

constexpr bool is_pow2(std::uint64_t x) {
  return x != 0 && (x & (x - 1)) == 0;
}

// floor(log2(x)); x must be nonzero.
constexpr unsigned ilog2(std::uint64_t x) {
  return 63u - static_cast<unsigned>(__builtin_clzll(x));
}

// ceil(log2(x)); ilog2_ceil(1) == 0.
constexpr unsigned ilog2_ceil(std::uint64_t x) {
  return x <= 1 ? 0 : ilog2(x - 1) + 1;
}

// Round x up / down to a multiple of the power of two a.
constexpr std::uint64_t align_up(std::uint64_t x, std::uint64_t a) {
  return (x + a - 1) & ~(a - 1);
}
constexpr std::uint64_t align_down(std::uint64_t x, std::uint64_t a) {
  return x & ~(a - 1);
}

// Largest power of two <= x (x > 0).
constexpr std::uint64_t pow2_floor(std::uint64_t x) {
  return std::uint64_t{1} << ilog2(x);
}

// A fixed-size bitmap (for CPU and node masks) that needs no allocation.
template <unsigned kBits>
struct Bitmap {
  static constexpr unsigned kWords = (kBits + 63) / 64;
  std::uint64_t w[kWords] = {};

  constexpr void set(unsigned i) {
    if (i < kBits) w[i / 64] |= std::uint64_t{1} << (i % 64);
  }
  constexpr bool test(unsigned i) const { return i < kBits && (w[i / 64] >> (i % 64)) & 1; }
  constexpr unsigned count() const {
    unsigned n = 0;
    for (auto x : w) n += static_cast<unsigned>(__builtin_popcountll(x));
    return n;
  }
  // Index of the first set bit at or after `from`, or kBits.
  constexpr unsigned next(unsigned from) const {
    for (unsigned i = from; i < kBits; ++i)
      if (test(i)) return i;
    return kBits;
  }
  constexpr bool empty() const { return count() == 0; }
};

}  // namespace numaslub
