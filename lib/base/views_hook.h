// The hook through which the layers below lib/views let it publish the
// heap's views (lib/views/publish.h) without knowing it, as Zone::wake_fn
// lets the buddy layer wake kswapd: the allocator's slow paths and the
// kswapd threads call views_tick(); lib/views installs the function when
// publishing is on (publish=1).
//
// Callers hold no allocator lock and are not nested inside the allocator
// (allocator_busy() is false). With nothing installed a call costs a load
// and a branch.
#pragma once

#include <atomic>

#include "lib/base/compiler.h"

namespace numaslub {

// from_app: the caller is one of the program's threads, which may create
// the file; false for a kswapd thread (a raw thread), which only updates it.
using ViewsTickFn = void (*)(bool from_app);
inline constinit std::atomic<ViewsTickFn> g_views_tick{nullptr};

NS_ALWAYS_INLINE void views_tick(bool from_app) {
  if (ViewsTickFn f = g_views_tick.load(std::memory_order_relaxed)) f(from_app);
}

}  // namespace numaslub
