// The hook through which the layers below lib/views let it publish the
// heap's views (lib/views/publish.h) without knowing it, as Zone::wake_fn
// lets the buddy layer wake kswapd: the allocator's slow paths and the
// kswapd threads call views_tick(); lib/views installs the function when
// publishing is on (publish=1).
//
// Callers hold no allocator lock and are not nested inside the allocator
// (allocator_busy() is false). The installed function reads the clock
// (~4 ns): on every slow path that cost 2-5% of a loop that does nothing
// but fill and empty sheaves. So it sets t_views_skip: 15 when this thread
// looked less than a millisecond ago (its slow paths are frequent: the next
// 15 calls cost a thread-local decrement and a branch), else 0 (they are
// rare: each one looks, and a burst's changes are published promptly).
// With nothing installed (publish=0) a call is a load and a branch.
#pragma once

#include <atomic>
#include <cstdint>

#include "lib/base/compiler.h"

namespace numaslub {

// from_app: the caller is one of the program's threads, which may create
// the file; false for a kswapd thread (a raw thread), which only updates it.
using ViewsTickFn = void (*)(bool from_app);
inline constinit std::atomic<ViewsTickFn> g_views_tick{nullptr};
inline constinit thread_local std::uint32_t t_views_skip NS_TLS_IE = 0;
inline constinit thread_local std::uint64_t t_views_last_ns NS_TLS_IE = 0;

NS_ALWAYS_INLINE void views_tick(bool from_app) {
  ViewsTickFn f = g_views_tick.load(std::memory_order_relaxed);
  if (!f) return;
  if (from_app && t_views_skip) {
    --t_views_skip;
    return;
  }
  f(from_app);
}

}  // namespace numaslub
