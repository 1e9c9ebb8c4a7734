// Direct mappings for requests above the largest buddy block (4 MiB): the
// kernel's vmalloc for our heap. Each is recorded in an open-addressing hash
// table (address -> length) so free, realloc and usable_size find it in O(1)
// and a pointer we never mapped is recognised as foreign. The table lives in
// raw mappings, never in malloc memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaslub {

// At least size bytes aligned to align (a power of two), from the cache of
// freed mappings or a new mapping; null on failure. *zeroed (if given) says
// whether the memory reads as zero (a new mapping) or not (a reused one).
void* huge_alloc(std::size_t size, std::size_t align, int nid, bool* zeroed = nullptr);
// A new mapping, bypassing the cache.
void* huge_map(std::size_t size, std::size_t align, int nid);
// Unmaps cached mappings freed before before_ns (~0: all); returns pages.
std::size_t huge_cache_release(std::uint64_t before_ns);
std::size_t huge_cache_bytes();
// The same without the lock: a racy read, for the reclaim thread's start rule.
std::size_t huge_cache_bytes_hint();
// Reclaim's wake-up, called when the cache stops being empty. Freed
// mappings are cached only once a hook is set (someone ages them).
void huge_set_wake_hook(void (*wake)());
// Unmaps p if it is a recorded mapping; false otherwise.
bool huge_free(void* p);
// Length of the mapping at p, or 0 when p is not one.
std::size_t huge_size(const void* p);
// Grows or shrinks the mapping at p (mremap, may move); null on failure, p intact.
void* huge_resize(void* p, std::size_t new_size);
class Mutex;
Mutex& huge_lock();  // a leaf lock (fork handlers)

// Live mappings and their bytes (stats).
void huge_stats(std::size_t* count, std::size_t* bytes);

}  // namespace numaslub
