// A thread the C library does not know about: made with a raw clone() on a
// stack of our own, so it can be started from any context — inside free()
// while glibc holds its stack-cache lock, inside a signal handler, in a fork
// child handler — with no lock of anyone's taken.
//
// What the thread may do (the invariant every function it runs keeps):
// - no libc function that takes a lock, reads errno, uses TLS or allocates:
//   raw system calls (lib/base/syscall.h), our own futex Mutex, and pure
//   functions (memcpy, memset, strstr, clock_gettime through the vDSO) only;
// - no malloc/free, no rseq: its thread pointer is a fake TCB over zeroed
//   pages (the stack-protector canary and pointer guard copied from the
//   creator), and the rseq areas at the process's TLS offsets read "not
//   registered", so an allocation made by mistake would take the slow path
//   without a sheaf instead of touching CPU 0's;
// - every signal blocked (the creator blocks all around clone(), the child
//   inherits that mask): signals for the process go to the program's threads.
// What follows from glibc not knowing it:
// - it is not counted in glibc's thread count: when the program's last
//   thread calls pthread_exit, glibc calls exit(), and exit_group ends this
//   thread too (a pthread would keep the process alive with only itself);
// - it does not exist in a fork child (fork copies the calling thread only);
//   its stack region does, and can be reused there;
// - /proc/self/task and `ps -T` list it under the name it gives itself;
// - set*id() in glibc changes the credentials of glibc's threads only: this
//   one keeps those it was created with. It only releases memory and reads
//   /proc and /sys files.
// Built with a sanitizer, whose runtime keeps per-thread state, it is a
// plain detached pthread instead (the component tests use that build).
#pragma once

#include <cstddef>

namespace numaslub {

struct RawThread {
  void* region = nullptr;       // guard page, stack, fake TLS; kept for a restart after fork
  long tid = 0;                 // kernel thread id (0 before the start)
  void (*fn)(void*) = nullptr;  // what it runs (the pthread fallback reads them here)
  void* arg = nullptr;
};

// Starts fn(arg) on t (reusing t->region when set). fn must not return.
// Returns 0 or an errno. Async-signal-safe, takes no lock.
int raw_thread_start(RawThread* t, void (*fn)(void*), void* arg);

// Names the calling thread (prctl PR_SET_NAME, at most 15 characters).
void raw_thread_set_name(const char* name);

}  // namespace numaslub
