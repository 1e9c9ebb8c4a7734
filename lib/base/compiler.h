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
