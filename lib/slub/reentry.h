// Calls made inside the allocator: a signal handler that interrupted
// malloc or free on its own thread and allocates or frees itself (or forks,
// and its child does), the kernel's "atomic context".
//
// The interrupted frame cannot run until the handler returns, so a nested
// call must not wait for anything it may hold: a lock (t_ctx.locks_held),
// or this thread's per-thread sheaves mid-update (t_ctx.sheaf_busy). Such a
// call (allocator_busy()) takes these paths, which need no allocator lock:
// - allocations become direct mappings of their own, registered in a
//   lock-free table so free, realloc and usable_size know them;
// - frees of heap blocks that would need a lock go onto a lock-free
//   deferred list, given back by the next slow path of any thread that is
//   not nested (nothing is lost, nothing waits).
// The fast paths (rseq sheaves) are safe in a handler as they are: an rseq
// section interrupted by a signal restarts.
#pragma once

#include <cstddef>

namespace numaslub {

// A block of at least size bytes aligned to align (a power of two), as a
// mapping of its own (zeroed). Null when the kernel refuses or the table of
// such blocks is full.
void* reentry_alloc(std::size_t size, std::size_t align);
// If p is such a block: unmaps it and returns true.
bool reentry_free(void* p);
// Usable size of such a block; 0 for any other pointer.
std::size_t reentry_size(const void* p);

// Defers the free of a heap block (small, large or a direct mapping) to a later slow path.
void reentry_defer_free(void* p);
// True when deferred frees wait (a relaxed load: cheap on slow paths).
bool reentry_frees_pending();
// Frees every deferred block with kfree. Only where allocator_busy() is false.
void reentry_drain_frees();

struct ReentryStats {
  unsigned long blocks;    // nested allocations served by a mapping of their own
  unsigned long live;      // of those, not freed yet
  unsigned long deferred;  // nested frees deferred to a later slow path
};
ReentryStats reentry_stats();

}  // namespace numaslub
