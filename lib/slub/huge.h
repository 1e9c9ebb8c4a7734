// Direct mappings for requests above the largest buddy block (4 MiB): the
// kernel's vmalloc for our heap. Each is recorded in an open-addressing hash
// table (address -> length) so free, realloc and usable_size find it in O(1)
// and a pointer we never mapped is recognised as foreign. The table lives in
// raw mappings, never in malloc memory.
#pragma once

#include <cstddef>

namespace numaslub {

// Maps at least size bytes aligned to align (a power of two); null on failure.
void* huge_alloc(std::size_t size, std::size_t align, int nid);
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
