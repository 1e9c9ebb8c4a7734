// kswapd: one background reclaim thread per node ("ns-kswapd<N>") that
// returns free memory to the OS, as the kernel's kswapd keeps zones balanced.
//
// When it runs: a zone's free path wakes it (Zone::wake_fn, zone lock held)
// when resident free pages exceed the zone's high watermark, or when it is
// armed, i.e. asleep with nothing to age.
//
// When it exists (the invariant): a node's thread is started by the first
// wake that finds the node holding at least `reclaim_start` bytes (default
// 32 MiB) of free resident memory: its zone's dirty free pages plus, for
// node 0, the cached direct mappings. Until then the wake hook only re-arms
// the zone, and the process stays single-threaded: a short program (true,
// ls, a small script) never gets a thread, so unshare(CLONE_NEWUSER),
// setns and fork warnings of multi-threaded programs behave as without us.
// Below the mark free memory stays cached (at most `reclaim_start` per node:
// what glibc's malloc keeps in fragmented arenas is of the same order);
// decay starts aging once the thread exists. A fork child starts without a
// thread and starts one by the same rule.
// Starts happen inside the wake hook, i.e. inside free() and with a zone lock
// held, possibly while glibc holds its own locks (its stack-cache lock while
// freeing a dead thread's TLS): so the thread is not a pthread but a raw
// clone() on a stack of our own (lib/base/raw_thread.h), which takes no lock
// to start and needs no libc while it runs. glibc does not count it: a
// program whose last thread calls pthread_exit still exits.
// With nothing cached the thread sleeps on a futex without a timeout: an
// idle process pays nothing. It keeps the process's CPU affinity, narrowed to
// the node's CPUs where they intersect, and never migrates: it drains other
// CPUs' caches remotely (lib/slub/slub.cpp).
//
// What a pass does, in order:
// 1. under pressure (PSI or cgroup limits, pressure.h): release everything —
//    drain every CPU's caches and slabs, then every free resident page;
// 2. above the high watermark: release the coldest free blocks down to low;
// 3. decay: release free blocks not reused for decay_ms;
//    blocks smaller than 2 MiB inside a range backed by a huge page stay in
//    2 (the burst may yet free the whole range, released without a split)
//    and in 3 where the range is dense (thp_split_avoided); the marks count
//    above what stayed;
// 4. per-CPU caches (sheaves, per-CPU page lists) of CPUs whose slow path
//    has not run for idle_drain_ms go back to the slabs and the zone.
// Releasing isolates blocks under the zone lock, calls madvise without it,
// and puts them back as clean (zero-filled) or lazily freed blocks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/buddy/buddy.h"

namespace numaslub {

class PageAllocator;

// Installs the wake hooks on every zone of the process page allocator; the
// threads start later, on demand (above). No-op with reclaim=off or when
// called again.
void reclaim_init();

// One synchronous reclaim pass over node nid, as kswapd runs it. Returns
// the pages released, and in *sleep_ns (if given) how long the thread would
// sleep after it (0: until a wake). Exposed for tests and tools.
std::size_t reclaim_pass(unsigned nid, std::uint64_t* sleep_ns = nullptr);

// Releases up to max_pages resident free pages of node nid that were freed
// before before_ns (coarse monotonic; ~0 for any age). Returns pages released.
// A free block of 2 MiB or more goes in one madvise; a smaller one inside a
// range backed by a huge page only as `split` allows (zone.h's HugeSplit:
// a burst none, decay those of ranges no longer dense, pressure all).
std::size_t release_cold_pages(PageAllocator* pa, unsigned nid, std::size_t max_pages,
                               std::uint64_t before_ns, HugeSplit split = HugeSplit::kSparse);

class Mutex;
Mutex& reclaim_init_lock();  // for the fork handlers

// After fork, in the child (atfork handler): the threads did not survive;
// they start again on demand, by the same rule as at start-up.
void reclaim_fork_child();

// Whether node nid's thread has been started (and not lost to a fork).
bool kswapd_running(unsigned nid);

// "name value" lines: kswapd_wakeups, kswapd_passes, kswapd_released, ...
std::size_t reclaim_vmstat(char* buf, std::size_t cap);

}  // namespace numaslub
