// Compiler helpers shared by every layer. Nothing here allocates or calls libc.
#pragma once

#include <cstddef>
#include <cstdint>

#define NS_LIKELY(x) __builtin_expect(!!(x), 1)
#define NS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define NS_ALWAYS_INLINE inline __attribute__((always_inline))
#define NS_NOINLINE __attribute__((noinline))
#define NS_COLD __attribute__((cold, noinline))
#define NS_HIDDEN __attribute__((visibility("hidden")))
#define NS_EXPORT __attribute__((visibility("default")))
// Initial-exec TLS: one instruction to reach, and no __tls_get_addr (which can
// allocate). Costs static TLS space, so keep every such variable small.
#define NS_TLS_IE __attribute__((tls_model("initial-exec")))

// A function whose reads race with another thread's writes by design, as the
// kernel marks them with data_race(): the caller holds a lock the writer does
// not take, and acts only on a value the writer never stores. ThreadSanitizer
// does not instrument it (nor may it inline it into an instrumented caller),
// so neither side of such a race is reported; keep such functions to the one
// racy read, so that the races TSan should see stay visible.
#if defined(__SANITIZE_THREAD__)
#define NS_DATA_RACE_FN __attribute__((noinline, no_sanitize("thread")))
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NS_DATA_RACE_FN __attribute__((noinline, no_sanitize("thread")))
#endif
#endif
#ifndef NS_DATA_RACE_FN
#define NS_DATA_RACE_FN inline
#endif

namespace numaslub {

inline constexpr std::size_t kCacheLine = 64;

NS_ALWAYS_INLINE void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

}  // namespace numaslub
