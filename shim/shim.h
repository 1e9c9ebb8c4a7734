// Shared by the shim's files: the next allocator (for pointers the heap
// does not own) and the counters of the mmap wrappers.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace numaslub::shim {

// glibc's own functions, found with dlsym(RTLD_NEXT) in the library
// constructor (never on a malloc path: dlsym allocates). Null where there is
// no next allocator (static links).
struct NextAllocator {
  void (*free)(void*) = nullptr;
  void* (*realloc)(void*, std::size_t) = nullptr;
  std::size_t (*usable_size)(void*) = nullptr;
};
extern NextAllocator g_next;

struct MmapStats {
  std::atomic<std::uint64_t> mmaps{0}, munmaps{0}, mremaps{0}, bytes_mapped{0}, failures{0};
};
extern MmapStats g_mmap_stats;

// Writes the NUMASLUB_STATS report (buddyinfo, zoneinfo, slabinfo, vmstat) to fd.
void write_report(int fd);
// The report's vmstat lines (also the published views', lib/views/publish.h).
std::size_t report_vmstat(char* buf, std::size_t cap);

}  // namespace numaslub::shim
