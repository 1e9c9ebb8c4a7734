// Deferred work: something a lower layer needs done outside every allocator
// lock (starting the reclaim threads: pthread_create allocates). It asks
// with defer_work() from wherever it is, even under a zone lock; the next
// allocation slow path, which holds no lock at its end, runs it.
//
// One slot: requests made before the work ran are merged (the work itself
// must find out what is pending).
#pragma once

namespace numaslub {

using DeferredFn = void (*)();

// Requests fn to run soon. Lock-free; safe under any lock.
void defer_work(DeferredFn fn);

// Runs the pending work, if any. Callers hold no allocator lock.
void run_deferred_work_slow();

extern bool g_deferred_pending;
inline void run_deferred_work() {
  if (__builtin_expect(__atomic_load_n(&g_deferred_pending, __ATOMIC_RELAXED), 0))
    run_deferred_work_slow();
}

}  // namespace numaslub
