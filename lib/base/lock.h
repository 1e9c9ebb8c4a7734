// A futex-based mutex that records its owner (after Drepper's "Futexes Are
// Tricky", with the owner's thread id as the "locked" value).
//
// state: 0 = unlocked; otherwise the owner's thread id, with kWaiters set
// once a waiter may sleep. Invariant: a thread that sleeps in FUTEX_WAIT has
// first set kWaiters, so the unlocking thread, seeing it, always issues a
// wake. The lock spins briefly before sleeping because our critical
// sections are short (list splices).
//
// Why the owner: fork takes no allocator lock (DESIGN rule 5: that would
// deadlock against stdio's and NSS's locks, and a signal handler's fork
// against its own interrupted frame). A fork child finds each lock as it
// was at the fork: held by the child's own interrupted frame (owner == the
// child's stale thread id: leave it, that frame will release it), or held by
// a thread that no longer exists (reset it, and repair what it guarded:
// see fork_child_repair in each layer). The owner also turns a self-deadlock
// (a signal handler taking a lock its own thread holds) into a message.
//
// Locks never allocate. Each lock and unlock also counts the thread's held
// locks (lib/base/thread_ctx.h), which tells a signal handler's malloc that
// it interrupted the allocator.
#pragma once

#include <linux/futex.h>

#include <atomic>
#include <cstdint>

#include "lib/base/compiler.h"
#include "lib/base/syscall.h"
#include "lib/base/thread_ctx.h"

namespace numaslub {

[[noreturn]] NS_COLD void mutex_self_deadlock(const void* lock);

// Locks a fork child found held by a thread that did not survive the fork
// (vmstat: fork_orphaned_locks): how often the child's repairs ran.
inline constinit std::atomic<std::uint64_t> g_fork_orphaned_locks{0};

class Mutex {
 public:
  static constexpr std::uint32_t kWaiters = 1u << 31;
  static constexpr std::uint32_t kOwnerMask = kWaiters - 1;

  constexpr Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // locks_held is raised before the lock is taken and lowered after it is
  // released (with compiler fences: a signal handler on this thread sees the
  // stores in this order), so it never undercounts what this thread holds.
  NS_ALWAYS_INLINE void lock() {
    std::uint32_t me = this_thread_id();
    ++t_ctx.locks_held;
    signal_fence();
    std::uint32_t expected = 0;
    if (NS_UNLIKELY(!state_.compare_exchange_strong(expected, me, std::memory_order_acquire,
                                                    std::memory_order_relaxed)))
      lock_slow(me);
  }

  NS_ALWAYS_INLINE bool try_lock() {
    ++t_ctx.locks_held;
    signal_fence();
    std::uint32_t expected = 0;
    if (state_.compare_exchange_strong(expected, this_thread_id(), std::memory_order_acquire,
                                       std::memory_order_relaxed))
      return true;
    signal_fence();
    --t_ctx.locks_held;
    return false;
  }

  NS_ALWAYS_INLINE void unlock() {
    if (NS_UNLIKELY(state_.exchange(0, std::memory_order_release) & kWaiters))
      sys::futex(&state_, FUTEX_WAKE_PRIVATE, 1);
    signal_fence();
    --t_ctx.locks_held;
  }

  bool is_locked() const { return state_.load(std::memory_order_relaxed) != 0; }
  // The owner's thread id (0 when unlocked).
  std::uint32_t owner() const { return state_.load(std::memory_order_relaxed) & kOwnerMask; }

  // Fork child: true if the lock was held at the fork by a thread other
  // than `self` (the forking thread's id in the parent), in which case it
  // is now free again and whatever it guards may be half-updated. A lock
  // held by `self` stays held: the child's own interrupted frame owns it.
  bool reset_if_orphaned(std::uint32_t self) {
    std::uint32_t o = owner();
    if (o == 0 || o == self) return false;
    state_.store(0, std::memory_order_relaxed);
    g_fork_orphaned_locks.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

 private:
  NS_NOINLINE void lock_slow(std::uint32_t me) {
    for (int spin = 0; spin < 128; ++spin) {
      std::uint32_t expected = 0;
      if (state_.load(std::memory_order_relaxed) == 0 &&
          state_.compare_exchange_strong(expected, me, std::memory_order_acquire,
                                         std::memory_order_relaxed))
        return;
      cpu_relax();
    }
    // Announce a waiter and sleep until the holder releases. Whoever takes
    // the lock after sleeping keeps kWaiters set: others may still sleep.
    for (;;) {
      std::uint32_t cur = state_.load(std::memory_order_relaxed);
      if (cur == 0) {
        if (state_.compare_exchange_strong(cur, me | kWaiters, std::memory_order_acquire,
                                           std::memory_order_relaxed))
          return;
        continue;
      }
      if ((cur & kOwnerMask) == me) mutex_self_deadlock(this);
      if (!(cur & kWaiters) &&
          !state_.compare_exchange_strong(cur, cur | kWaiters, std::memory_order_relaxed,
                                          std::memory_order_relaxed))
        continue;
      sys::futex(&state_, FUTEX_WAIT_PRIVATE, cur | kWaiters);
    }
  }

  std::atomic<std::uint32_t> state_{0};
};

template <typename L>
class LockGuard {
 public:
  explicit LockGuard(L& l) : l_(l) { l_.lock(); }
  ~LockGuard() { l_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  L& l_;
};

}  // namespace numaslub
