// The rseq critical sections of the sheaf fast path (x86-64).
//
// Each section: (0) point rseq->rseq_cs at its descriptor, (1) read
// cpu_id_start and find the CPU's slot, (..) work with plain loads and
// stores, and end with exactly one commit store immediately before label 2
// (post-commit). If the kernel preempts, migrates or signals the thread
// inside [1, 2), it resumes at the abort handler (4), which restarts at (0);
// the kernel has cleared rseq_cs by then, so (0) sets it again. The abort
// handler is preceded by the signature registered with the area.
//
// Each section compares cpu_id_start with `limit`, the number of CPUs whose
// slot sets are set up (it only grows), before it indexes the table: a CPU
// at or beyond it takes the slow path, which sets its set up or, past the
// table's end (machines with more than kMaxCpus CPUs), serves it from a
// shared path. So no CPU id the kernel can report indexes out of bounds or
// into an unset set, whatever count of CPUs set-up believed. A thread whose
// area is not registered yet (our own area) has cpu_id_start == kMaxCpus,
// never below the limit, so it too falls into the slow path, which
// registers it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/slub/sheaf.h"

#if defined(__x86_64__)
#define NS_HAVE_RSEQ_ASM 1

// The descriptor; the signature matches kRseqSignal (0x53053053). Step (0)
// uses rax as scratch: every section must name rax as an early-clobber
// output or a clobber, or the compiler may hand it an operand in rax.
#define NS_RSEQ_CS_TABLE               \
  ".pushsection __rseq_cs, \"aw\"\n\t" \
  ".balign 32\n\t"                     \
  "3:\n\t"                             \
  ".long 0x0, 0x0\n\t"                 \
  ".quad 1f, 2f - 1f, 4f\n\t"          \
  ".popsection\n\t"                    \
  "0:\n\t"                             \
  "leaq 3b(%%rip), %%rax\n\t"
#define NS_RSEQ_CS_DESC NS_RSEQ_CS_TABLE "movq %%rax, 8(%[rs])\n\t"
// The same, for sections that address the area from the thread pointer:
// [rs] is the area's offset from it (%fs), not its address, which saves the
// fast paths the add that forms the address.
#define NS_RSEQ_CS_DESC_FS NS_RSEQ_CS_TABLE "movq %%rax, %%fs:8(%[rs])\n\t"
#define NS_RSEQ_ABORT                       \
  ".pushsection __rseq_failure, \"ax\"\n\t" \
  ".byte 0x0f, 0xb9, 0x3d\n\t"              \
  ".long 0x53053053\n\t"                    \
  "4:\n\t"                                  \
  "jmp 0b\n\t"                              \
  ".popsection\n\t"

namespace numaslub {

// The pop and push sections below find CPU c's slot set at
// fp + kCpuSetsDisp + (c << kPercpuSheavesShift), where fp is the fast
// paths' state (kmalloc.h, FastPathBlock), whose address the compiler holds
// in a register already: no load of a table base, and the slot's offset is
// added to the CPU's in one step. rs_off is the rseq area's offset from the
// thread pointer.

// Pops the last object of this CPU's main sheaf at slot offset `off` (see
// sheaf.h for the stack-top encoding). Returns nullptr when it is empty or
// the CPU is at or beyond `limit`. (asm goto: a miss jumps straight to the
// caller's slow path, no result register to test.)
NS_ALWAYS_INLINE void* rseq_pop(std::ptrdiff_t rs_off, const void* fp, const std::uint32_t& limit,
                                std::size_t off) {
  void* obj;
  __asm__ goto(
      NS_RSEQ_CS_DESC_FS
      "1:\n\t"
      "movl %%fs:(%[rs]), %%r11d\n\t"
      "cmpl %[limit], %%r11d\n\t"
      "jae %l[miss]\n\t"
      "shlq $10, %%r11\n\t"
      "addq %[off], %%r11\n\t"
      "movq %c[sets](%[fp],%%r11), %%rcx\n\t"
      "movq -8(%%rcx), %%rax\n\t"
      "testb $1, %%al\n\t"
      "jnz %l[miss]\n\t"
      "subq $8, %%rcx\n\t"
      "movq %%rcx, %c[sets](%[fp],%%r11)\n\t"
      "2:\n\t" NS_RSEQ_ABORT
      : "=&a"(obj)
      : [rs] "r"(rs_off), [fp] "r"(fp), [sets] "i"(kCpuSetsDisp), [limit] "m"(limit), [off] "r"(off)
      : "rcx", "r11", "memory", "cc"
      : miss);
  // Sheaf entries are objects or the odd sentinel, never null: tell the
  // compiler, so that its callers' null tests fold away.
  if (obj == nullptr) __builtin_unreachable();
  return obj;
miss:
  return nullptr;
}

enum PushResult : int { kPushed = 0, kPushFull = 1, kPushDoubleFree = 2 };

// Pushes obj onto this CPU's main sheaf at slot offset `off`. kPushFull when
// the sheaf is full (or is the no-sheaf sentinel, or the CPU is at or beyond
// `limit`); with kCheckTop, kPushDoubleFree when obj is the object freed
// last. The double-free test comes first, so a free that would find the
// sheaf full is still checked. (Hardened builds check every free against
// its object's free tag before the push, kmalloc.h, which catches this case
// and more: they push without the test.) The misses leave the section by
// asm goto, to the caller's code for each result.
#define NS_RSEQ_PUSH_HEAD         \
  NS_RSEQ_CS_DESC_FS              \
  "1:\n\t"                        \
  "movl %%fs:(%[rs]), %%r11d\n\t" \
  "cmpl %[limit], %%r11d\n\t"     \
  "jae %l[full]\n\t"              \
  "shlq $10, %%r11\n\t"           \
  "addq %[off], %%r11\n\t"        \
  "movq %c[sets](%[fp],%%r11), %%rcx\n\t"
#define NS_RSEQ_PUSH_TAIL                 \
  "testl $511, %%ecx\n\t"                 \
  "jz %l[full]\n\t"                       \
  "movq %[obj], (%%rcx)\n\t"              \
  "addq $8, %%rcx\n\t"                    \
  "movq %%rcx, %c[sets](%[fp],%%r11)\n\t" \
  "2:\n\t" NS_RSEQ_ABORT
#define NS_RSEQ_PUSH_OPERANDS                                                     \
  : /* no outputs */                                                                  \
  : [rs] "r"(rs_off), [fp] "r"(fp), [sets] "i"(kCpuSetsDisp), [limit] "m"(limit),     \
    [off] "r"(off), [obj] "r"(obj)                                                    \
  : "rax", "rcx", "r11", "memory", "cc" /* rax: NS_RSEQ_CS_DESC_FS's scratch */
template <bool kCheckTop>
NS_ALWAYS_INLINE int rseq_push(std::ptrdiff_t rs_off, const void* fp, const std::uint32_t& limit,
                               std::size_t off, void* obj) {
  if constexpr (kCheckTop) {
    __asm__ goto(NS_RSEQ_PUSH_HEAD
                 "cmpq %[obj], -8(%%rcx)\n\t"
                 "je %l[twice]\n\t" NS_RSEQ_PUSH_TAIL NS_RSEQ_PUSH_OPERANDS
                 : full, twice);
  } else {
    __asm__ goto(NS_RSEQ_PUSH_HEAD NS_RSEQ_PUSH_TAIL NS_RSEQ_PUSH_OPERANDS : full);
  }
  return kPushed;
full:
  return kPushFull;
twice:
  __attribute__((unused));  // kCheckTop only
  return kPushDoubleFree;
}
#undef NS_RSEQ_PUSH_HEAD
#undef NS_RSEQ_PUSH_TAIL
#undef NS_RSEQ_PUSH_OPERANDS

// Stores `top` as main at `slot` (a slot of CPU `cpu`), but only while
// running on that CPU. Returns the previous main, or kReplaceFailed when the
// thread is on another CPU (the caller retries from its new CPU).
inline void** const kReplaceFailed = reinterpret_cast<void**>(~std::uintptr_t{0});
// static: each file that uses it has its own copy, with its own descriptor.
// An inline function's copies are COMDAT, and the linker keeps one: the
// __rseq_cs descriptors of the copies it drops would point into discarded
// text (an error at link time).
static NS_NOINLINE inline void** rseq_replace_main(RseqAbi* rs, unsigned cpu, void*** slot,
                                                   void** top) {
  void** old;
  __asm__ volatile(NS_RSEQ_CS_DESC
                   "1:\n\t"
                   "cmpl %[cpu], (%[rs])\n\t"
                   "jne 5f\n\t"
                   "movq (%[slot]), %%rax\n\t"
                   "movq %[top], (%[slot])\n\t"
                   "2:\n\t"
                   "jmp 6f\n\t"
                   "5:\n\t"
                   "movq $-1, %%rax\n\t"
                   "6:\n\t" NS_RSEQ_ABORT
                   : "=&a"(old)
                   : [rs] "r"(rs), [cpu] "r"(cpu), [slot] "r"(slot), [top] "r"(top)
                   : "memory", "cc");
  return old;
}

}  // namespace numaslub

#undef NS_RSEQ_CS_DESC
#undef NS_RSEQ_CS_DESC_FS
#undef NS_RSEQ_ABORT
#else
#define NS_HAVE_RSEQ_ASM 0
#endif
