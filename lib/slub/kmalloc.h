// The internal allocation API (kmalloc and friends) and its fast paths.
//
// malloc: size -> sheaf-slot offset (table lookup) -> pop from this CPU's
// main sheaf in an rseq critical section (rseq_ops.h). free: address -> page
// descriptor (subtract, shift) -> its slab's sheaf-slot offset -> the
// always-on checks (below) -> push onto this CPU's main sheaf. No lock, no
// atomic read-modify-write. One compare of a byte picks the per-CPU mode
// (malloc: g_fastpath.mode; free: free_unchecked, which folds in whether a
// check is due): rseq, per-thread sheaves, or none yet. Before set-up the
// mode is none and the thread has no sheaves, so the first call takes the
// slow path, which sets up. An rseq section compares the CPU id with the number of CPUs whose
// sheaves are set up before it indexes them, so a CPU without sheaves takes
// the slow path too. Anything else (empty/full sheaf, large and vmalloc sizes,
// another node's object, foreign or invalid pointers) goes to the
// out-of-line slow paths.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "lib/base/base.h"
#include "lib/numa/numa.h"
#include "lib/slub/obj_index.h"
#include "lib/slub/rseq_ops.h"
#include "lib/slub/sheaf.h"
#include "lib/slub/size_class.h"

namespace numaslub {

enum class CacheMode : std::uint8_t { kNone = 0, kRseq, kThread };

// Malloc's fast path looks a request of up to kSlotDirectMax bytes up in a
// table indexed by the size itself (FastPathState::slot_by_size): one load,
// where the 16-byte steps of size_class.h's tables need a rounding add and
// a shift before it. Larger small requests use kSlotBySize128.
inline constexpr std::size_t kSlotDirectMax = 1024;

// What the fast paths read; written once at set-up (and never after, but
// for nr_cpu_sheaves, which grows). Zero (mode none, heap_size 0, empty
// tables) until then: every fast path misses.
struct FastPathState {
  CacheMode mode;
  bool multi_node;
  // What a free must check before it pushes (kFreeCheck*): read by every
  // free, in place of multi_node, so that the sized frees' debug check
  // costs nothing when it is off.
  std::uint8_t free_checks;
  std::uint8_t node_shift;  // log2(bytes per node range)
  // Per kind of free (index: sized or not), the mode (a CacheMode) its fast
  // path pushes in with no check, or kNone when free_checks asks a check of
  // that kind (or before set-up). The free fast path compares this one byte
  // where it would test mode and free_checks. Stored last, with release
  // order; read with acquire order.
  std::uint8_t free_unchecked[2];
  std::ptrdiff_t rseq_off;  // thread pointer -> rseq area
  // CPUs 0..nr_cpu_sheaves-1 have their set in FastPathBlock::cpu_sets set
  // up. Only grows (release store after the sets are written); the rseq
  // sections compare each CPU id with it before indexing (rseq_ops.h).
  std::uint32_t nr_cpu_sheaves;
  std::uintptr_t heap_base;
  std::uintptr_t heap_size;
  Page* mem_map;
  const std::uint16_t* cpu_node;  // node of each CPU (multi-node only)
  // Copies of obj_index.h's kObjIndex and of the sheaf-slot offset of each
  // request size up to kSlotDirectMax, filled by set-up before it publishes
  // heap_size and mode: addressed from the same base register as the fields
  // above (and in .bss, with the CPU sets after them).
  std::remove_const_t<ObjIndexTable> obj_index;
  std::uint16_t slot_by_size[kSlotDirectMax + 1];
};

// The fast paths' state and, at a fixed distance after it, the per-CPU sheaf
// sets (CPUs 0..kMaxCpus-1, kPercpuSheavesStride apart): the rseq sections
// address a CPU's set from the register that holds &g_fastpath (rseq_ops.h,
// kCpuSetsDisp), with no base pointer to load. In .bss: only the pages of
// CPUs that are set up ever become resident.
struct alignas(4096) FastPathBlock {
  FastPathState state;
  alignas(4096) char cpu_sets[kMaxCpus * kPercpuSheavesStride];
};
static_assert(offsetof(FastPathBlock, cpu_sets) == kCpuSetsDisp);
extern FastPathBlock g_fastpath_block;
inline constexpr FastPathState& g_fastpath = g_fastpath_block.state;
// FastPathState::free_checks. Node: the object must be this CPU's (thread's)
// node's (multi-node heaps). Size: a sized free checks the size it is given
// (debug=1, which slub_debug's F turns on) in kfree_sized_slow; a plain free
// ignores this bit.
inline constexpr std::uint8_t kFreeCheckNode = 1;
inline constexpr std::uint8_t kFreeCheckSize = 2;
extern constinit thread_local PercpuSheaves* t_sheaves NS_TLS_IE;

// ThreadSanitizer cannot see an object change hands through a sheaf (the
// rseq sections are assembly): in a TSan build, a free releases the object
// and an allocation acquires it, the edge the sheaf provides.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#define NS_TSAN_ACQUIRE(p) __tsan_acquire(p)
#define NS_TSAN_RELEASE(p) __tsan_release(p)
#else
#define NS_TSAN_ACQUIRE(p) ((void)0)
#define NS_TSAN_RELEASE(p) ((void)0)
#endif

// The fast paths' lambdas are inlined whatever their number of uses.
#define NS_LAMBDA_INLINE __attribute__((always_inline))

// g_fastpath is written once by set-up, which stores `heap_size` and then
// `mode` last with release order; the fast paths load those two with
// acquire order (a plain load on x86-64) before the fields they guard.
// (The generic __atomic_load: clang's __atomic_load_n takes no enum.)
NS_ALWAYS_INLINE CacheMode fast_mode() {
  CacheMode m;
  __atomic_load(&g_fastpath.mode, &m, __ATOMIC_ACQUIRE);
  return m;
}

// Whether the byte b equals v, read with acquire order: one compare with a
// memory operand (x86-64 loads are acquire loads; the memory clobber keeps
// the compiler from moving later loads above it). The compiler never folds
// an atomic load into a compare: a load, a compare and a branch, one
// instruction more on each fast path. (TSan builds keep the atomic load,
// which TSan sees.)
NS_ALWAYS_INLINE bool byte_is_acquire(const std::uint8_t& b, std::uint8_t v) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
  bool eq;
  __asm__ volatile("cmpb %[v], %[b]" : "=@cce"(eq) : [b] "m"(b), [v] "i"(v) : "memory");
  return eq;
#else
  return __atomic_load_n(&b, __ATOMIC_ACQUIRE) == v;
#endif
}
// mode == kRseq (acquire, as fast_mode).
NS_ALWAYS_INLINE bool fast_mode_rseq() {
  return byte_is_acquire(reinterpret_cast<const std::uint8_t&>(g_fastpath.mode),
                         static_cast<std::uint8_t>(CacheMode::kRseq));
}

// Hardening, always on: a free takes the fast path only for the start of an
// object of its slab (obj_index.h) that is not free already. Invariant: word
// 1 of every small object that is free (in a sheaf, a barn, a slab's
// freelist or remote list) holds free_tag(p), the address of p's page
// descriptor; allocation clears it before handing the object out, so a live
// object holds it only if the program stored there a pointer into our
// descriptor array, which it is never given. (Not a secret: forging a tag
// only makes a live object's free abort, and a write that destroys one
// needs no knowledge of it. Per page rather than per object, so the fast
// path has it in a register already.) A free that finds the tag is a
// double free, wherever the first free left the object; the slow path
// aborts with a message. The tag is written before the push that publishes
// the object (after it, another thread may already have it) and undone if
// the push fails. Objects of a new slab carry no tag: never allocated, they
// cannot be freed twice. (Word 0 is the slab freelist's next pointer.)
// NUMASLUB_HARDENED=OFF (CMake) builds without the fast paths' checks and
// tags, to measure what they cost; the slow path still checks boundaries.
#ifndef NS_HARDENED
#define NS_HARDENED 1
#endif
inline constexpr bool kHardened = NS_HARDENED;

NS_ALWAYS_INLINE std::uintptr_t free_tag_of(const Page& page) {
  return reinterpret_cast<std::uintptr_t>(&page);
}
// p: in the heap.
NS_ALWAYS_INLINE std::uintptr_t free_tag(const void* p) {
  return free_tag_of(
      g_fastpath
          .mem_map[(reinterpret_cast<std::uintptr_t>(p) - g_fastpath.heap_base) >> kPageShift]);
}
// Whether heap offset `off`, on a page whose sheaf_off is `soff`, starts an
// object of its slab: obj_index.h's check on the fast paths' copy of the
// table (free and realloc's).
NS_ALWAYS_INLINE bool fast_obj_start(std::size_t soff, std::uintptr_t off) {
  return obj_start_at<offsetof(FastPathState, obj_index)>(&g_fastpath, g_fastpath.obj_index, soff,
                                                          off);
}
NS_ALWAYS_INLINE void clear_free_tag(void* obj) {
  if constexpr (kHardened) static_cast<std::uintptr_t*>(obj)[1] = 0;
}

// Slow paths (slub.cpp, kmalloc.cpp).
NS_NOINLINE void* kmalloc_slow(std::size_t size);
// The slow path of an allocation of `size` bytes (a class size) asked for
// as `asked` bytes (kmalloc_aligned): a debug cache records `asked`.
NS_NOINLINE void* kmalloc_slow_asked(std::size_t size, std::size_t asked);
NS_NOINLINE void kfree_slow(void* p);
// kfree_sized's: checks the size under debug, then frees.
NS_NOINLINE void kfree_sized_slow(void* p, std::size_t size);

NS_ALWAYS_INLINE RseqAbi* fast_rseq_area() {
  return reinterpret_cast<RseqAbi*>(static_cast<char*>(__builtin_thread_pointer()) +
                                    g_fastpath.rseq_off);
}

// The pop of kmalloc's fast path, for the slot offset `slot_off()` (read
// after the mode: the direct table is filled by set-up); `slow` on a miss.
template <class SlotOff, class Slow>
NS_ALWAYS_INLINE void* kmalloc_pop(SlotOff slot_off, Slow slow) {
#if NS_HAVE_RSEQ_ASM
  if (NS_LIKELY(fast_mode_rseq())) {
    if (void* obj =
            rseq_pop(g_fastpath.rseq_off, &g_fastpath, g_fastpath.nr_cpu_sheaves, slot_off())) {
      NS_TSAN_ACQUIRE(obj);
      clear_free_tag(obj);
      return obj;
    }
  } else
#endif
      if (PercpuSheaves* t = t_sheaves; t && NS_LIKELY(!t_ctx.sheaf_busy)) {
    // Per-thread sheaves: a signal handler's malloc must not pop between
    // our read and our store, so the operation is marked busy (a nested
    // call then takes the slow path, which defers to reentry.h).
    t_ctx.sheaf_busy = 1;
    signal_fence();
    void*** top = &reinterpret_cast<SheafSlot*>(reinterpret_cast<char*>(t) + slot_off())->main;
    void* obj = (*top)[-1];
    bool got = !(reinterpret_cast<std::uintptr_t>(obj) & kSheafSentinel);
    if (NS_LIKELY(got)) --*top;
    signal_fence();
    t_ctx.sheaf_busy = 0;
    if (NS_LIKELY(got)) {
      NS_TSAN_ACQUIRE(obj);
      clear_free_tag(obj);
      return obj;
    }
  }
  return slow();
}

// kmalloc's fast path; `slow` is called on a miss (kmalloc_aligned's tells
// the slow path the size asked for). The common sizes pass one compare
// before their table (kSlotDirectMax), the others two.
template <class Slow>
NS_ALWAYS_INLINE void* kmalloc_or(std::size_t size, Slow slow) {
  if (NS_LIKELY(size <= kSlotDirectMax))
    return kmalloc_pop(
        [size]() NS_LAMBDA_INLINE { return std::size_t{g_fastpath.slot_by_size[size]}; }, slow);
  if (NS_LIKELY(size <= kMaxSmallSize))
    return kmalloc_pop(
        [size]() NS_LAMBDA_INLINE { return std::size_t{kSlotBySize128[(size + 127) >> 7]}; }, slow);
  return slow();
}

NS_ALWAYS_INLINE void* kmalloc(std::size_t size) {
  return kmalloc_or(size, [size] { return kmalloc_slow(size); });
}

// The free fast path, for kfree (kSized false, `size` unused) and for
// kfree_sized: the same instructions, each kind reading its own byte of
// free_unchecked (a sized free leaves for kfree_sized_slow when it must
// check its size).
// (TSan: p is released after its descriptor is read, here and in the slow
// path's check_small: whoever gets p next may free its slab and rewrite the
// descriptor.)
template <bool kSized>
NS_ALWAYS_INLINE void kfree_fast(void* p, std::size_t size) {
  std::uintptr_t hsize = __atomic_load_n(&g_fastpath.heap_size, __ATOMIC_ACQUIRE);
  std::uintptr_t off = reinterpret_cast<std::uintptr_t>(p) - g_fastpath.heap_base;
  if (NS_LIKELY(off < hsize)) {
    const Page& pg = g_fastpath.mem_map[off >> kPageShift];
    std::size_t soff = pg.sheaf_off;
    auto* word = static_cast<std::uintptr_t*>(p);
    std::uintptr_t tag = free_tag_of(pg);
    bool take;
    if constexpr (kHardened) {
      // The start of an object of this page's slab (a page of no slab has
      // no objects) that is not free: read its tag only then, the word lies
      // inside the object.
      take = fast_obj_start(soff, off) && word[1] != tag;
    } else {
      take = soff != 0;
      NS_TSAN_RELEASE(p);
    }
    if (NS_LIKELY(take)) {
      if constexpr (kHardened) {
        word[1] = tag;       // before the push publishes p
        NS_TSAN_RELEASE(p);  // and the store with it
      }
      // Only the node check is due (free_unchecked says a check is): a
      // sized free that must check its size goes to its slow path.
      auto node_only = []() NS_LAMBDA_INLINE {
        return !kSized ||
               __atomic_load_n(&g_fastpath.free_checks, __ATOMIC_RELAXED) == kFreeCheckNode;
      };
      // p's node. Its heap offset is formed again: kept from above for
      // these rare paths, it cost the common path a register copy.
      auto node_of_p = [p]() NS_LAMBDA_INLINE {
        return (reinterpret_cast<std::uintptr_t>(p) - g_fastpath.heap_base) >>
               g_fastpath.node_shift;
      };
      auto unchecked_in = [](CacheMode m) NS_LAMBDA_INLINE {
        return byte_is_acquire(g_fastpath.free_unchecked[kSized], static_cast<std::uint8_t>(m));
      };
      // Per-thread sheaves: pushes when `ok(t)` holds for the thread's set.
      auto thread_push = [soff, p](auto ok) NS_LAMBDA_INLINE {
        PercpuSheaves* t = t_sheaves;
        if (!t || NS_UNLIKELY(t_ctx.sheaf_busy)) return false;
        t_ctx.sheaf_busy = 1;  // as in kmalloc
        signal_fence();
        void*** top = &reinterpret_cast<SheafSlot*>(reinterpret_cast<char*>(t) + soff)->main;
        bool pushed = (reinterpret_cast<std::uintptr_t>(*top) & (kSheafBytes - 1)) != 0 &&
                      (kHardened || (*top)[-1] != p) && ok(t);
        if (NS_LIKELY(pushed)) *(*top)++ = p;
        signal_fence();
        t_ctx.sheaf_busy = 0;
        return pushed;
      };
#if NS_HAVE_RSEQ_ASM
      auto rseq_push_here = [soff, p]() NS_LAMBDA_INLINE {
        return rseq_push<!kHardened>(g_fastpath.rseq_off, &g_fastpath, g_fastpath.nr_cpu_sheaves,
                                     soff, p) == kPushed;
      };
      if (NS_LIKELY(unchecked_in(CacheMode::kRseq))) {
        if (NS_LIKELY(rseq_push_here())) return;
      } else
#endif
          if (unchecked_in(CacheMode::kThread)) {
        if (NS_LIKELY(thread_push([](PercpuSheaves*) NS_LAMBDA_INLINE { return true; }))) return;
      } else if (node_only()) {
        // The node check, in either mode.
#if NS_HAVE_RSEQ_ASM
        if (fast_mode() == CacheMode::kRseq) {
          RseqAbi* rs = fast_rseq_area();
          std::uint32_t cpu;  // cpu_node has an entry for each CPU below nr_cpu_sheaves only
          if ((cpu = rs->cpu_id_start) < g_fastpath.nr_cpu_sheaves &&
              g_fastpath.cpu_node[cpu] == node_of_p() && rseq_push_here())
            return;
        } else
#endif
            if (thread_push([&](PercpuSheaves* t)
                                NS_LAMBDA_INLINE { return t->node == node_of_p(); }))
          return;
      }
      // Not published: the slow path checks again. The word's old value is
      // the program's, in an object it is freeing: lost without harm.
      if constexpr (kHardened) word[1] = 0;
    }
  }
  if constexpr (kSized)
    kfree_sized_slow(p, size);
  else
    kfree_slow(p);
}

NS_ALWAYS_INLINE void kfree(void* p) {
  kfree_fast<false>(p, 0);
}

// A free told the size the block was asked for (sized delete, C23's
// free_sized). The page descriptor is authoritative, so the size is only
// checked, by kfree_sized_slow, under debug (FastPathState::free_checks).
NS_ALWAYS_INLINE void kfree_sized(void* p, std::size_t size) {
  kfree_fast<true>(p, size);
}

// realloc's fast path: the usable size of p when it is a live object of a
// slab (not a debug cache's), 0 otherwise (krealloc decides, and reports
// misuse). Checks what the free fast path checks; touches nothing, takes no
// lock.
NS_ALWAYS_INLINE std::size_t ksize_small(const void* p) {
  std::uintptr_t off = reinterpret_cast<std::uintptr_t>(p) - g_fastpath.heap_base;
  if (NS_LIKELY(off < __atomic_load_n(&g_fastpath.heap_size, __ATOMIC_ACQUIRE))) {
    const Page& pg = g_fastpath.mem_map[off >> kPageShift];
    std::size_t soff = pg.sheaf_off;
    if (NS_LIKELY(fast_obj_start(soff, off)) &&
        NS_LIKELY(!kHardened || static_cast<const std::uintptr_t*>(p)[1] != free_tag_of(pg))) {
      std::size_t n = obj_index_entry(g_fastpath.obj_index, soff).size;
      if (n == 0) __builtin_unreachable();  // an entry with objects has a size
      return n;
    }
  }
  return 0;
}

// krealloc's rule for keeping a block: it holds `size` without wasting
// more than half of it (a smaller class may exist; not worth a copy).
NS_ALWAYS_INLINE bool realloc_keeps(std::size_t have, std::size_t size) {
  return size <= have && size > have / 2;
}

// The rest of the API (kmalloc.cpp; the slow paths of the sheaves, slub.cpp).
void* kcalloc(std::size_t n, std::size_t size);
void* krealloc(void* p, std::size_t size);
// align: a power of two. Any alignment up to kMaxBlockSize (4 MiB) from the
// heap; larger ones from a direct mapping.
void* kmalloc_aligned(std::size_t align, std::size_t size);
// kmalloc_node: memory of node nid (falling back by distance when it is
// exhausted); nid < 0 means the calling CPU's node.
void* kmalloc_node(std::size_t size, int nid);
std::size_t ksize(const void* p);  // usable size; 0 for pointers we do not own
bool kowns(const void* p);         // allocated by this heap (slab, large block or direct mapping)

// Before a pointer that kowns() disowns is handed to another allocator
// (realloc, usable size): aborts with a message naming the misuse if it is
// one of ours after all (a freed or interior pointer into the heap or a
// direct mapping); returns when it is truly foreign.
void kcheck_foreign(void* p, const char* op);

// What free does with a pointer that is not ours (set by the shim to hand
// it to the next allocator). By default such a free aborts with a message.
using ForeignFreeFn = void (*)(void* p);
void set_foreign_free(ForeignFreeFn fn);

// Flushes every CPU's (and this thread's) sheaves to the slabs and shrinks
// the caches; returns pages given back to the buddy allocator. The calling
// thread stays on its CPU (other CPUs' sheaves are taken remotely, see
// slub.cpp) except where the kernel lacks membarrier's rseq command; then it
// migrates and its affinity is restored (or widened, never left pinned). In
// per-thread mode, other live threads empty their sets at their next slow
// path.
std::size_t kmem_shrink_all();
// The part of kmem_shrink_all that touches no thread-local state and moves
// no thread: for the reclaim thread.
std::size_t kmem_shrink_shared();
// Reclaim's hooks into the per-CPU caches (rseq mode; 0 otherwise).
// kmem_drain_cpu returns `cpu`'s cached objects to the slabs from any CPU
// (its spares always; its main sheaves where membarrier allows).
std::size_t kmem_drain_cpu(unsigned cpu);
// Returns the objects in node nid's barns (full sheaves) to the slabs.
std::size_t kmem_flush_barns(unsigned nid);
// Objects cached by cpu's sheaves (a racy estimate) and when its slow path
// last ran.
std::size_t kmem_cpu_cached(unsigned cpu, std::uint64_t* last_used_ns);

// slub_debug's validation (/sys/kernel/slab/<cache>/validate): walks every
// slab of every debug cache, reports each problem (without aborting) and
// repairs it. Returns the number of problems; 0 without debug caches.
std::size_t kmem_validate();

// malloc_trim: kmem_shrink_all, then every free resident page of the heap
// goes back to the OS. Returns pages released.
std::size_t kmem_trim();

struct HeapTotals {
  std::size_t heap_bytes = 0;     // onlined heap
  std::size_t free_bytes = 0;     // free in the buddy lists and per-CPU lists
  std::size_t free_blocks = 0;    // buddy blocks on free lists
  std::size_t vmalloc_count = 0;  // direct mappings
  std::size_t vmalloc_bytes = 0;
};
HeapTotals heap_totals();
// vmstat-style counters, one "name value" per line.
std::size_t vmstat(char* buf, std::size_t cap);

// Text view in /proc/slabinfo's layout (version 2.1).
std::size_t slabinfo(char* buf, std::size_t cap);
// Which per-CPU mode is in use (after the first allocation).
CacheMode cache_mode();
// In a fork child, before anything allocates (`self`: the forking thread's
// id in the parent): frees the locks that threads which did not survive the
// fork held, and repairs what they guarded (fork_child.cpp).
void slub_fork_child(std::uint32_t self);

// Sets up the allocator now (normally done by the first allocation).
bool slub_init();
// Whether the caches are set up; sets nothing up.
bool slub_ready();

// Per-CPU sheaf sets set up so far (rseq mode; 0 before set-up).
unsigned slub_nr_cpu_sheaves();
// Tests: makes the per-CPU table hold only CPUs 0..n-1 (as on a machine
// with more CPUs than kMaxCpus), so threads on other CPUs use the path for
// CPUs beyond the table. Call before set-up.
void slub_set_max_cpu_sheaves_for_test(unsigned n);

}  // namespace numaslub
