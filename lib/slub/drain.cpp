// Emptying the per-CPU caches from outside: another CPU's sheaves without
// running there (membarrier's rseq fence), or by migrating to it where the
// kernel cannot fence; and the shrinking that malloc_trim, direct reclaim
// and the reclaim thread ask for (kmem_drain_cpu, kmem_flush_barns,
// kmem_cpu_cached, kmem_shrink_shared; kmem_shrink_all is slub.cpp's).
#include <pthread.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "lib/base/base.h"
#include "lib/slub/debug.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/slab.h"
#include "lib/slub/slub_internal.h"

namespace numaslub {

#if NS_HAVE_RSEQ_ASM
// ---- draining another CPU's sheaves -------------------------------------
//
// A drainer (malloc_trim, direct reclaim, the reclaim thread) empties CPU
// c's caches without running on c, so no application thread is ever moved
// across CPUs (and the reclaim thread needs no rseq area of its own).
//
// The protocol, for one CPU c, with c's slot lock held (so no slow path
// replaces a main, and spares are ours):
//   1. for every class: old = atomic exchange(main, S), S = no_sheaf_top();
//   2. membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, CPU c): every rseq
//      critical section running on c is aborted, and c's earlier stores are
//      visible to us;
//   3. for every class: if main == S, the sheaf `old` is the drainer's; else
//      leave it (see below).
// Why it holds. A fast path on c reads main once at the start of its section
// and commits with one store of a value derived from it (pop: top - 1; push:
// top + 1, after storing the object at top). Sections on one CPU do not
// overlap (preemption aborts them), so when the exchange lands, at most one
// section on c has read the old value and not committed. Either it commits
// before the membarrier reaches c — then main is top +- 1 of the same sheaf,
// never S (a section that reads S finds it empty and full and commits
// nothing), and the sheaf is still c's: the drainer sees main != S and
// leaves it, a hot class on a busy CPU is not idle anyway — or it is still
// running when the membarrier arrives and is aborted, and restarts reading
// S. Every section that starts after the exchange reads S and goes to the
// slow path, which waits for the slot lock. So after step 2, main == S
// means no section can still commit on `old`: it is the drainer's, with the
// size its top says. Nothing else writes S into a main while the lock is
// held by us, so main == S cannot come from anyone but step 1.
//
// Without membarrier's rseq command (Linux < 5.10, or a seccomp filter), the
// calling thread migrates to each CPU and replaces main there, restoring its
// affinity after; the reclaim thread (no rseq) skips the mains then.

namespace {
enum : int { kFenceUnknown = 0, kFenceYes, kFenceNo };
constinit std::atomic<int> g_fence{kFenceUnknown};
constexpr long kMbRseq = 1 << 7;          // MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ
constexpr long kMbRegisterRseq = 1 << 8;  // MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ
constexpr long kMbFlagCpu = 1;            // MEMBARRIER_CMD_FLAG_CPU
}  // namespace

// Aborts the rseq critical sections running on cpu. Registers the process
// on first use (and again in a fork child, whose mm is new: -EPERM). False
// where the kernel cannot do it; then never tried again.
static bool rseq_fence(unsigned cpu) {
  if (g_fence.load(std::memory_order_relaxed) == kFenceNo) return false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    long r = sys::call(SYS_membarrier, kMbRseq, kMbFlagCpu, cpu);
    if (r == 0) {
      g_fence.store(kFenceYes, std::memory_order_relaxed);
      return true;
    }
    if (r != -EPERM /*not registered (yet, or in a fork child)*/ ||
        sys::call(SYS_membarrier, kMbRegisterRseq, 0, 0) != 0)
      break;
  }
  g_fence.store(kFenceNo, std::memory_order_relaxed);
  return false;
}

// Whether drains can use the protocol above (probes once).
bool remote_drain_available() {
  int f = g_fence.load(std::memory_order_relaxed);
  if (f == kFenceUnknown) return rseq_fence(0);
  return f == kFenceYes;
}

// Flushes the spares and, when take_mains, takes every main it can; called
// with cs->lock held. Returns objects returned to the slabs.
static std::size_t drain_slots_locked(PercpuSheaves* cs, bool take_mains) {
  std::size_t n = 0;
  void** old[kNrClasses];
  bool any = false;
  for (unsigned cls = 0; cls < kNrClasses; ++cls) {
    SheafSlot& sl = cs->slots[cls];
    if (sl.spare && sl.spare->size) {
      n += sl.spare->size;
      sheaf_flush(g_kmem.caches[cls], sl.spare);
    }
    old[cls] = nullptr;
    if (!take_mains || __atomic_load_n(&sl.main, __ATOMIC_RELAXED) == no_sheaf_top()) continue;
    old[cls] = __atomic_exchange_n(&sl.main, no_sheaf_top(), __ATOMIC_SEQ_CST);
    any = true;
  }
  if (!any) return n;
  if (!rseq_fence(cs->cpu)) {
    // Cannot happen once remote_drain_available() said yes; if it does, a
    // sheaf whose owner is unknown is left alone (leaked), never reused.
    return n;
  }
  for (unsigned cls = 0; cls < kNrClasses; ++cls) {
    if (!old[cls] || __atomic_load_n(&cs->slots[cls].main, __ATOMIC_ACQUIRE) != no_sheaf_top())
      continue;  // a fast path committed on it: still the CPU's
    Sheaf* s = main_take(old[cls]);
    if (!s) continue;
    n += s->size;
    sheaf_flush(g_kmem.caches[cls], s);
    sheaf_put_empty(g_kmem.caches[cls], cs->node, s);
  }
  return n;
}

static std::size_t drain_cpu_remote(unsigned cpu, bool take_mains) {
  PercpuSheaves* cs = cpu_sheaves(cpu);
  LockGuard<Mutex> g(cs->lock);
  return drain_slots_locked(cs, take_mains);
}

// The old way: run on cpu and replace each main there (the kernel's
// per-CPU drain work). The caller restores its affinity.
static std::size_t drain_cpu_migrate(unsigned cpu) {
  unsigned long mask[kMaxCpus / 64] = {};
  mask[cpu / 64] = 1UL << (cpu % 64);
  if (sys::call(SYS_sched_setaffinity, 0, sizeof mask, mask) != 0) return 0;
  RseqAbi* rs = rseq_area();
  if (!rs) return 0;
  PercpuSheaves* cs = cpu_sheaves(cpu);
  LockGuard<Mutex> g(cs->lock);
  std::size_t n = drain_slots_locked(cs, false);
  for (unsigned cls = 0; cls < kNrClasses; ++cls) {
    SheafSlot& sl = cs->slots[cls];
    if (sl.main == no_sheaf_top()) continue;
    void** top = rseq_replace_main(rs, cpu, &sl.main, no_sheaf_top());
    if (top == kReplaceFailed) continue;
    Sheaf* old = main_take(top);
    if (!old) continue;
    n += old->size;
    sheaf_flush(g_kmem.caches[cls], old);
    sheaf_put_empty(g_kmem.caches[cls], cs->node, old);
  }
  return n;
}

// Drains every CPU in the calling thread's affinity by migrating, then
// restores it; if the saved mask cannot be set again (a cpuset changed
// meanwhile), every CPU is allowed rather than leaving the thread pinned.
void drain_all_by_migration() {
  unsigned long saved[kMaxCpus / 64] = {};
  if (sys::call(SYS_sched_getaffinity, 0, sizeof saved, saved) <= 0) return;
  for (unsigned cpu = 0; cpu < slub_nr_cpu_sheaves(); ++cpu)
    if (saved[cpu / 64] & (1UL << (cpu % 64))) drain_cpu_migrate(cpu);
  if (sys::call(SYS_sched_setaffinity, 0, sizeof saved, saved) != 0) {
    unsigned long all[kMaxCpus / 64];
    std::memset(all, 0xff, sizeof all);
    sys::call(SYS_sched_setaffinity, 0, sizeof all, all);
  }
}
#endif

std::size_t kmem_drain_cpu(unsigned cpu) {
#if NS_HAVE_RSEQ_ASM
  if (slub_ready() && g_fastpath.mode == CacheMode::kRseq && cpu < slub_nr_cpu_sheaves())
    return drain_cpu_remote(cpu, remote_drain_available());
#endif
  (void)cpu;
  return 0;
}

std::size_t kmem_flush_barns(unsigned nid) {
  if (!slub_ready() || nid >= g_kmem.pa->nr_nodes()) return 0;
  std::size_t n = 0;
  for (unsigned cls = 0; cls < kNrClasses; ++cls) {
    n += barn_flush(g_kmem.caches[cls], nid);
  }
  return n;
}

std::size_t kmem_cpu_cached(unsigned cpu, std::uint64_t* last_used_ns) {
  if (!slub_ready() || g_fastpath.mode != CacheMode::kRseq || cpu >= slub_nr_cpu_sheaves())
    return 0;
  PercpuSheaves* cs = cpu_sheaves(cpu);
  // Racy reads: a hint for reclaim, which takes the locks before acting.
  std::size_t n = 0;
  for (const SheafSlot& sl : cs->slots) {
    void** top = __atomic_load_n(&sl.main, __ATOMIC_RELAXED);
    if (top && top != no_sheaf_top())
      n += static_cast<std::size_t>(top - Sheaf::from_top(top)->objects());
    if (Sheaf* s = __atomic_load_n(&sl.spare, __ATOMIC_RELAXED))
      n += __atomic_load_n(&s->size, __ATOMIC_RELAXED);
  }
  if (last_used_ns) *last_used_ns = __atomic_load_n(&cs->last_used_ns, __ATOMIC_RELAXED);
  return n;
}

// Every CPU's caches, the barns, the slabs and the per-CPU page lists; no
// thread-local state is touched and no thread moves (the reclaim thread's
// part of kmem_shrink_all).
std::size_t kmem_shrink_shared() {
  if (!slub_ready()) return 0;
#if NS_HAVE_RSEQ_ASM
  if (g_fastpath.mode == CacheMode::kRseq) {
    bool remote = remote_drain_available();
    for (unsigned cpu = 0; cpu < slub_nr_cpu_sheaves(); ++cpu) drain_cpu_remote(cpu, remote);
  }
#endif
  std::size_t pages = 0;
  if (debug_enabled()) debug_quarantine_drain();
  for (unsigned cls = 0; cls < kNrClasses; ++cls) {
    KmemCache& c = g_kmem.caches[cls];
    for (unsigned nid = 0; nid < g_kmem.pa->nr_nodes(); ++nid) barn_flush(c, nid);
    pages += c.shrink(true);
  }
  return pages + g_kmem.pa->drain_all_pcp();
}

}  // namespace numaslub
