// A futex-based mutex (three states, after Drepper's "Futexes Are Tricky").
//
// state: 0 = unlocked, 1 = locked with no waiters, 2 = locked, waiters may sleep.
// Invariant: a thread that sleeps in FUTEX_WAIT has first set state to 2, so the
// unlocking thread, seeing 2, always issues a wake. The lock spins briefly
// before sleeping because our critical sections are short (list splices).
//
// Locks never allocate. After fork() the child calls reset_after_fork() on
// every lock it took in the atfork prepare handler (see shim/ and DESIGN rule 5).
#pragma once

#include <linux/futex.h>

#include <atomic>
#include <cstdint>

#include "lib/base/compiler.h"
#include "lib/base/syscall.h"

namespace numaslub {

class Mutex {
 public:
  constexpr Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  NS_ALWAYS_INLINE void lock() {
    std::uint32_t expected = 0;
    if (NS_LIKELY(state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                                 std::memory_order_relaxed)))
      return;
    lock_slow();
  }

  NS_ALWAYS_INLINE bool try_lock() {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  NS_ALWAYS_INLINE void unlock() {
    if (NS_UNLIKELY(state_.exchange(0, std::memory_order_release) == 2))
      sys::futex(&state_, FUTEX_WAKE_PRIVATE, 1);
  }

  bool is_locked() const { return state_.load(std::memory_order_relaxed) != 0; }

  // Only in a fork child, where the lock's holder (the forking thread) is the
  // only thread left and holds it from the prepare handler.
  void reset_after_fork() { state_.store(0, std::memory_order_relaxed); }

 private:
  NS_NOINLINE void lock_slow() {
    for (int spin = 0; spin < 128; ++spin) {
      if (state_.load(std::memory_order_relaxed) == 0 && try_lock()) return;
      cpu_relax();
    }
    // Announce a waiter (2) and sleep until the holder releases.
    while (state_.exchange(2, std::memory_order_acquire) != 0)
      sys::futex(&state_, FUTEX_WAIT_PRIVATE, 2);
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
