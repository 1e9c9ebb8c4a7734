// Direct mappings for requests above the largest buddy block (4 MiB): the
// kernel's vmalloc for our heap. Each is recorded in an open-addressing hash
// table (address -> length) so free, realloc and usable_size find it in O(1)
// and a pointer we never mapped is recognised as foreign. The table lives in
// raw mappings, never in malloc memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaslub {

// The largest request (size, and alignment) the heap ever serves: half of
// the 47-bit user address space that x86-64 (4-level paging) and aarch64
// (48-bit VA) give a mapping made without an address hint, which is how
// every mapping here is made. A larger request can never fit, whatever is
// freed or reclaimed first, so the API fails it at once with ENOMEM; every
// size computation below relies on size, align <= this (no wrap-around).
inline constexpr std::size_t kMaxAllocSize = std::size_t{1} << 46;

// At least size bytes (one page for size 0) aligned to align (a power of
// two), from the cache of freed mappings or a new mapping (2 MiB-aligned
// and advised MADV_HUGEPAGE where thp= says so: vmalloc.cpp); null on failure,
// and always for size or align above kMaxAllocSize. With zero, the memory
// reads as zero (always a new mapping); without, it may hold what an
// earlier block left (a cached one, its pages kept).
void* vmalloc(std::size_t size, std::size_t align, int nid, bool zero);
// Unmaps cached mappings freed before before_ns (~0: all); returns pages.
std::size_t vmalloc_cache_release(std::uint64_t before_ns);
// Bytes the cache holds (at most 64 MiB, mapped and resident as the
// program left them).
std::size_t vmalloc_cache_bytes();
// Reclaim's wake-up, called (no lock held) each time a freed mapping joins
// the cache, `first` when the cache was empty: reclaim ages the cache and
// counts its bytes as free resident memory. Freed mappings are cached only
// once a hook is set (someone ages them).
void vmalloc_set_wake_hook(void (*wake)(bool first));
// Frees p if it is a recorded mapping (false otherwise): cached for reuse
// with its pages (the oldest cached ones unmapped to make room), or
// unmapped when above 32 MiB or when no reclaim ages the cache.
bool vfree(void* p);
// For a pointer that is not a mapping's start (vfree said false): what
// misuse it is, if it was ours. kFreed: a mapping freed lately (the last
// 64) starts there, so this is a double free; kInterior: it points inside
// live mapping *mapping. Scans the table: for error paths only.
enum class VmallocMisuse { kNone, kFreed, kInterior };
VmallocMisuse vmalloc_misuse(const void* p, std::uintptr_t* mapping);
// Length of the mapping at p, or 0 when p is not one.
std::size_t vmalloc_size(const void* p);
// Grows or shrinks the mapping at p (mremap, may move); null on failure
// (new_size above kMaxAllocSize included), p intact.
void* vrealloc(void* p, std::size_t new_size);
// In a fork child (`self`: the forking thread's id in the parent): frees the
// table lock if a thread that did not survive the fork held it, and
// recounts what it guarded.
void vmalloc_fork_child(std::uint32_t self);

// Copies up to max live mappings (start, length) into out, two words each;
// returns how many there are (the leak check's scan, leak.h).
std::size_t vmalloc_list(std::uintptr_t* out, std::size_t max);

// Live mappings and their bytes (stats).
void vmalloc_stats(std::size_t* count, std::size_t* bytes);
// Huge pages for mappings (vmalloc.cpp, thp=): mappings advised
// MADV_HUGEPAGE so far, and the percentage of the sampled plain mappings'
// pages the program wrote (thp=auto's measure).
void vmalloc_thp_stats(std::uint64_t* advised, unsigned* written_pct);
// Tests: forgets the sample (thp=auto starts over, not dense).
void vmalloc_thp_reset_for_test();

// Tests: the calling thread takes (hold) or releases (!hold) the table's
// lock without counting it as held (so its own calls do not take the nested
// paths, lib/base/thread_ctx.h): a call of its own that then takes the lock
// aborts at once as a self-deadlock (lock.h), which shows that a path never
// takes it.
void vmalloc_hold_lock_for_test(bool hold);

}  // namespace numaslub
