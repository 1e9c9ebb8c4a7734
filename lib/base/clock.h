// Monotonic time for decay and idle decisions. clock_gettime goes through
// the vDSO: no system call, no allocation. The coarse clock (a few ms
// resolution, ~5 ns to read) is precise enough to age free memory.
#pragma once

#include <time.h>

#include <cstdint>

namespace numaslub {

inline std::uint64_t now_coarse_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

inline std::uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace numaslub
