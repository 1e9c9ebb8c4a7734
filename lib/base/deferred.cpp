#include "lib/base/deferred.h"

#include <atomic>

#include "lib/base/compiler.h"

namespace numaslub {

constinit bool g_deferred_pending = false;

namespace {
constinit std::atomic<DeferredFn> g_fn{nullptr};
// Set while the work runs in this thread: the work may allocate, and that
// allocation's slow path must not run it again.
constinit thread_local bool t_running NS_TLS_IE = false;
}  // namespace

void defer_work(DeferredFn fn) {
  g_fn.store(fn, std::memory_order_release);
  __atomic_store_n(&g_deferred_pending, true, __ATOMIC_RELEASE);
}

void run_deferred_work_slow() {
  if (t_running) return;
  if (!__atomic_exchange_n(&g_deferred_pending, false, __ATOMIC_ACQ_REL)) return;
  DeferredFn fn = g_fn.load(std::memory_order_acquire);
  if (!fn) return;
  t_running = true;
  fn();
  t_running = false;
}

}  // namespace numaslub
