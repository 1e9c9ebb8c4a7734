// kswapd: one background reclaim thread per node ("ns-kswapd<N>") that
// returns free memory to the OS, as the kernel's kswapd keeps zones balanced.
//
// When it runs: a zone's free path wakes it (Zone::wake_fn, zone lock held)
// when resident free pages exceed the zone's high watermark, or when it is
// armed, i.e. asleep with nothing to age. The threads are created by
// reclaim_init (called from the library constructor) and again in a forked
// child by its atfork handler: never from malloc or free, which glibc calls
// with its own locks held (pthread_create needs them). With nothing cached a
// thread sleeps on a futex without a timeout: an idle process pays nothing.
//
// What a pass does, in order:
// 1. under pressure (PSI or cgroup limits, pressure.h): release everything —
//    drain every CPU's caches and slabs, then every free resident page;
// 2. above the high watermark: release the coldest free blocks down to low;
// 3. decay: release free blocks not reused for decay_ms;
// 4. per-CPU caches (sheaves, per-CPU page lists) of CPUs whose slow path
//    has not run for idle_drain_ms go back to the slabs and the zone.
// Releasing isolates blocks under the zone lock, calls madvise without it,
// and puts them back as clean (zero-filled) or lazily freed blocks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaslub {

class PageAllocator;

// Installs the wake hooks on every zone of the process page allocator and
// starts the threads. No-op with reclaim=off or when called again. Call it
// only where pthread_create is safe (not from inside malloc or free).
void reclaim_init();

// One synchronous reclaim pass over node nid, as kswapd runs it. Returns
// the pages released. Exposed for tests and tools.
std::size_t reclaim_pass(unsigned nid);

// Releases up to max_pages resident free pages of node nid that were freed
// before before_ns (coarse monotonic; ~0 for any age). Returns pages released.
std::size_t release_cold_pages(PageAllocator* pa, unsigned nid, std::size_t max_pages,
                               std::uint64_t before_ns);

class Mutex;
Mutex& reclaim_init_lock();  // for the fork handlers

// After fork, in the child (atfork handler): the threads did not survive;
// start them again.
void reclaim_fork_child();

// Whether node nid's thread has been started (and not lost to a fork).
bool kswapd_running(unsigned nid);

// "name value" lines: kswapd_wakeups, kswapd_passes, kswapd_released, ...
std::size_t reclaim_vmstat(char* buf, std::size_t cap);

}  // namespace numaslub
