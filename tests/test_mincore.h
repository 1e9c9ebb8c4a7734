// Residency as the kernel sees it, for the tests that check memory went
// back (or stayed): shared by buddy_test, slub_rss_test and reclaim_test.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <vector>

namespace numaslub::testutil {

// Resident pages of [p, p + len) by mincore, or ~0 when any of it is unmapped.
inline std::size_t resident_pages(const void* p, std::size_t len) {
  std::vector<unsigned char> vec((len + 4095) / 4096);
  if (mincore(const_cast<void*>(p), len, vec.data()) != 0) return ~std::size_t{0};
  std::size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

}  // namespace numaslub::testutil
