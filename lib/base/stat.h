// A statistics counter bumped from many threads without a lock and read for
// reports. An increment is a relaxed load and store, not a locked
// read-modify-write, so it costs what a plain increment costs; increments
// that race may be lost (a count, never a torn value), which statistics can
// afford and the allocation paths cannot.
#pragma once

#include <atomic>
#include <cstdint>

namespace numaslub {

class StatCounter {
 public:
  constexpr StatCounter() = default;
  void add(std::uint64_t n) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  StatCounter& operator++() {
    add(1);
    return *this;
  }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }
  operator std::uint64_t() const { return get(); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

}  // namespace numaslub
