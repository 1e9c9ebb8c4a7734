// Huge pages for direct mappings (thp=, vmalloc_thp.cpp): whether a new
// mapping is advised MADV_HUGEPAGE, and thp=auto's measure of how densely
// the program writes the mappings it frees. Internal to lib/slub's
// vmalloc.cpp; its counters are read through vmalloc_thp_stats (vmalloc.h).
#pragma once

#include <cstddef>

#include "lib/buddy/buddy.h"

namespace numaslub {

// A huge mapping starts on, and is fitted in, whole 2 MiB units.
inline constexpr std::size_t kHugeMappingBytes = kHugePages << kPageShift;

// Whether a new mapping of len bytes gets huge pages (thp=always: every one
// of at least 2 MiB; never: none; auto: while the sample is dense, but for
// one probe in eight). Takes no lock.
bool vmalloc_want_huge(std::size_t len);
// thp=auto: adds plain mapping [p, p + len)'s written pages (mincore) to
// the sample, at its free. The caller owns the range.
void vmalloc_sample_density(void* p, std::size_t len);
// Counts a mapping the kernel accepted the advice for (vmstat vmalloc_thp).
void vmalloc_count_advised();

}  // namespace numaslub
