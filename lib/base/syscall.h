// Raw Linux system calls.
//
// Every wrapper returns the kernel's result: >= 0 on success, -errno on failure.
// errno is never touched, so free() and the reclaim thread can call them
// without clobbering the application's errno, and nothing here can allocate.
#pragma once

#include <sys/syscall.h>

#include <cstddef>
#include <cstdint>

#include "lib/base/compiler.h"

namespace numaslub::sys {

#if defined(__x86_64__)
NS_ALWAYS_INLINE long raw(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                          long f = 0) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
NS_ALWAYS_INLINE long raw(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0,
                          long f = 0) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
}
#else
#error "numaslub supports x86_64 and aarch64"
#endif

template <typename... A>
NS_ALWAYS_INLINE long call(long n, A... a) {
  return raw(n, ((long)a)...);
}

// A result in [-4095, -1] is an error code, anything else a value.
inline bool failed(long r) {
  return static_cast<unsigned long>(r) > -4096UL;
}

inline void* mmap(void* addr, std::size_t len, int prot, int flags, int fd, long off, long* err) {
  long r = call(SYS_mmap, addr, len, prot, flags, fd, off);
  if (failed(r)) {
    if (err) *err = -r;
    return nullptr;
  }
  return reinterpret_cast<void*>(r);
}
inline long munmap(void* addr, std::size_t len) {
  return call(SYS_munmap, addr, len);
}
inline long mprotect(void* addr, std::size_t len, int prot) {
  return call(SYS_mprotect, addr, len, prot);
}
inline long madvise(void* addr, std::size_t len, int advice) {
  return call(SYS_madvise, addr, len, advice);
}
inline long mremap(void* old, std::size_t old_len, std::size_t new_len, int flags, void* new_addr) {
  return call(SYS_mremap, old, old_len, new_len, flags, new_addr);
}
inline long mbind(void* addr, std::size_t len, int mode, const unsigned long* mask,
                  unsigned long maxnode, unsigned flags) {
  return call(SYS_mbind, addr, len, mode, mask, maxnode, flags);
}
inline long get_mempolicy(int* mode, unsigned long* mask, unsigned long maxnode, void* addr,
                          unsigned long flags) {
  return call(SYS_get_mempolicy, mode, mask, maxnode, addr, flags);
}
inline long getcpu(unsigned* cpu, unsigned* node) {
  return call(SYS_getcpu, cpu, node, nullptr);
}
inline long open(const char* path, int flags) {
  return call(SYS_openat, -100 /*AT_FDCWD*/, path, flags, 0);
}
inline long read(int fd, void* buf, std::size_t n) {
  return call(SYS_read, fd, buf, n);
}
inline long write(int fd, const void* buf, std::size_t n) {
  return call(SYS_write, fd, buf, n);
}
inline long close(int fd) {
  return call(SYS_close, fd);
}
inline long gettid() {
  return call(SYS_gettid);
}
inline long getpid() {
  return call(SYS_getpid);
}
inline long futex(void* uaddr, int op, std::uint32_t val, const void* timeout = nullptr) {
  return call(SYS_futex, uaddr, op, val, timeout, nullptr, 0);
}
struct Rlimit {
  std::uint64_t cur, max;
};
inline long getrlimit(int resource, Rlimit* out) {
  return call(SYS_prlimit64, 0, resource, nullptr, out);
}
inline long sched_yield() {
  return call(SYS_sched_yield);
}
// 64 random bits: getrandom (no blocking), or where that fails (old kernel,
// seccomp) the cycle counter mixed with a stack address. For secrets and
// address randomisation, never for anything that needs to be uniform.
inline std::uint64_t random_u64() {
  std::uint64_t v = 0;
  if (call(SYS_getrandom, &v, sizeof v, 1 /*GRND_NONBLOCK*/) != sizeof v) {
    unsigned lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    v = (std::uint64_t{hi} << 32 | lo) * 0x9E3779B97F4A7C15ULL ^
        reinterpret_cast<std::uintptr_t>(&v);
  }
  return v;
}
[[noreturn]] inline void abort_now() {
  // SIGABRT to ourselves, the way abort() ends, without touching libc state.
  call(SYS_tgkill, getpid(), gettid(), 6 /*SIGABRT*/);
  for (;;) call(SYS_exit_group, 134);
}

}  // namespace numaslub::sys
