#include "lib/base/raw_thread.h"

#include <linux/sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <cstdint>
#include <cstring>

#include "lib/base/rseq.h"
#include "lib/base/syscall.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(NS_SANITIZED)
#define NS_RAW_THREAD_PTHREAD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define NS_RAW_THREAD_PTHREAD 1
#endif
#endif

#if NS_RAW_THREAD_PTHREAD
#include <pthread.h>
#endif

namespace numaslub {

namespace {

// Region layout (one anonymous mapping, untouched pages cost nothing):
//   [guard page][stack][fake TLS: zeroed, thread pointer in the middle]
// x86-64 puts TLS below the thread pointer and glibc's thread descriptor
// above it; aarch64 the other way round: zero pages on both sides cover
// either, so a stray TLS read sees zero, not another thread's data.
constexpr std::size_t kGuard = 4096;
constexpr std::size_t kStack = 128 << 10;
constexpr std::size_t kTls = 128 << 10;
constexpr std::size_t kRegion = kGuard + kStack + kTls;

#if !NS_RAW_THREAD_PTHREAD
// clone(flags, sp, ptid, tls) with fn and arg on the new stack (sp[0], sp[1]).
// The child pops them, calls fn(arg) and, should fn return, exits the thread
// alone. The parent gets the child's tid or -errno.
extern "C" long ns_raw_clone(unsigned long flags, void* sp, int* ptid, void* tls);
#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl ns_raw_clone\n"
    ".hidden ns_raw_clone\n"
    ".type ns_raw_clone,@function\n"
    "ns_raw_clone:\n"
    "  .byte 0xf3, 0x0f, 0x1e, 0xfa\n"  // endbr64
    "  movq %rcx, %r8\n"                // tls
    "  xorl %r10d, %r10d\n"             // child_tid: none
    "  movl $56, %eax\n"                // SYS_clone
    "  syscall\n"
    "  testq %rax, %rax\n"
    "  jnz 1f\n"
    "  xorl %ebp, %ebp\n"
    "  popq %rax\n"
    "  popq %rdi\n"
    "  callq *%rax\n"
    "  movl $60, %eax\n"  // SYS_exit: this thread only
    "  xorl %edi, %edi\n"
    "  syscall\n"
    "  hlt\n"
    "1:\n"
    "  ret\n"
    ".size ns_raw_clone, .-ns_raw_clone\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".globl ns_raw_clone\n"
    ".hidden ns_raw_clone\n"
    ".type ns_raw_clone,%function\n"
    "ns_raw_clone:\n"
    "  mov x4, xzr\n"   // child_tid: none (x3 = tls already)
    "  mov x8, #220\n"  // SYS_clone
    "  svc #0\n"
    "  cbnz x0, 1f\n"
    "  ldp x1, x0, [sp], #16\n"
    "  mov x29, xzr\n"
    "  mov x30, xzr\n"
    "  blr x1\n"
    "  mov x0, xzr\n"
    "  mov x8, #93\n"  // SYS_exit
    "  svc #0\n"
    "  brk #0\n"
    "1:\n"
    "  ret\n"
    ".size ns_raw_clone, .-ns_raw_clone\n");
#endif
#endif

}  // namespace

void raw_thread_set_name(const char* name) {
  sys::call(SYS_prctl, PR_SET_NAME, name, 0, 0, 0);
}

#if NS_RAW_THREAD_PTHREAD

int raw_thread_start(RawThread* t, void (*fn)(void*), void* arg) {
  // Sanitizer builds: the component tests run on glibc's malloc, so a
  // pthread is safe here, and the sanitizer runtime sees the thread.
  struct Start {
    static void* run(void* p) {
      auto* rt = static_cast<RawThread*>(p);
      rt->fn(rt->arg);
      return nullptr;
    }
  };
  t->fn = fn;
  t->arg = arg;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStack * 2);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  int e = pthread_create(&th, &attr, Start::run, t);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  t->tid = e ? 0 : 1;
  return e;
}

#else

int raw_thread_start(RawThread* t, void (*fn)(void*), void* arg) {
  char* r = static_cast<char*>(t->region);
  if (!r) {
    long err = 0;
    r = static_cast<char*>(sys::mmap(nullptr, kRegion, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, &err));
    if (!r) return static_cast<int>(err);
    sys::mprotect(r, kGuard, PROT_NONE);
    t->region = r;
  }
  // Reused in a fork child, the region is as the parent's thread left it:
  // no thread runs on it here, and its TLS pages hold only what is written
  // below (the thread writes no TLS).
  t->fn = fn;
  t->arg = arg;
  char* tp = r + kGuard + kStack + kTls / 2;
  auto* tcb = reinterpret_cast<std::uintptr_t*>(tp);
  auto* mine = static_cast<std::uintptr_t*>(__builtin_thread_pointer());
#if defined(__x86_64__)
  // The x86-64 TCB: tcb and self pointers at 0 and 0x10; the compiler's
  // stack-protector canary at %fs:0x28 and glibc's pointer guard at 0x30.
  tcb[0] = reinterpret_cast<std::uintptr_t>(tp);
  tcb[2] = reinterpret_cast<std::uintptr_t>(tp);
  tcb[5] = mine[5];
  tcb[6] = mine[6];
#else
  (void)tcb;
  (void)mine;  // aarch64: the canary is a global, the TCB (dtv) may stay zero
#endif
  std::ptrdiff_t off = rseq_offset();
  if (off > -static_cast<std::ptrdiff_t>(kTls / 2) &&
      off < static_cast<std::ptrdiff_t>(kTls / 2) - 32)
    rseq_mark_unregistered(tp);
  // fn and arg for the child, at the top of its stack (16-byte aligned).
  auto* sp = reinterpret_cast<void**>(r + kGuard + kStack) - 2;
  sp[0] = reinterpret_cast<void*>(fn);
  sp[1] = arg;
  // The child inherits the signal mask: all blocked from its first instruction.
  std::uint64_t all = ~0ULL, old = 0;
  sys::call(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof all);
  int tid = 0;
  constexpr unsigned long kFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
                                   CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS |
                                   CLONE_PARENT_SETTID;
  long rc = ns_raw_clone(kFlags, sp, &tid, tp);
  sys::call(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old);
  if (sys::failed(rc)) return static_cast<int>(-rc);
  t->tid = rc;
  return 0;
}

#endif

}  // namespace numaslub
