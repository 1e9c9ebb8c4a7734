// What the allocator knows about the calling thread, in initial-exec TLS:
// its kernel thread id (lock ownership), how many allocator locks it holds,
// and whether it is inside a per-thread sheaf operation.
//
// Why: a signal handler may call malloc, free or fork while the thread it
// interrupted is inside the allocator. The interrupted frame cannot run
// until the handler returns, so the handler must never wait for anything
// that frame holds. `locks_held` and `sheaf_busy` tell the handler's calls
// that they are nested (see lib/slub/reentry.h), and the owner id in every
// Mutex tells a fork child which locks its own interrupted frame holds (it
// will release them) and which ones died with the other threads.
//
// Invariants:
// - locks_held counts the allocator Mutexes this thread holds; it changes
//   only in Mutex::lock/unlock, so a handler's nested calls leave it as
//   they found it.
// - tid is the thread's id as cached on first use. In a fork child it
//   still holds the forking thread's id in the parent until the child
//   handler refreshes it: that stale value is what identifies the locks
//   held by the child's own interrupted frames.
#pragma once

#include <cstdint>

#include "lib/base/compiler.h"
#include "lib/base/syscall.h"

namespace numaslub {

struct ThreadCtx {
  std::uint32_t tid;         // 0 until first needed
  std::uint32_t locks_held;  // allocator Mutexes held by this thread
  std::uint32_t sheaf_busy;  // inside a per-thread-mode sheaf operation
};

inline constinit thread_local ThreadCtx t_ctx NS_TLS_IE = {};

NS_ALWAYS_INLINE std::uint32_t this_thread_id() {
  std::uint32_t t = t_ctx.tid;
  if (NS_UNLIKELY(t == 0)) t_ctx.tid = t = static_cast<std::uint32_t>(sys::gettid());
  return t;
}

// True when the calling thread is inside the allocator already (a signal
// handler interrupted it there): the call must take no allocator lock and
// touch no per-thread sheaf.
NS_ALWAYS_INLINE bool allocator_busy() {
  return (t_ctx.locks_held | t_ctx.sheaf_busy) != 0;
}

// A compiler barrier that also orders against a signal handler on this
// thread (nothing at run time).
NS_ALWAYS_INLINE void signal_fence() {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

}  // namespace numaslub
