// Set-up and the sheaf slow paths: refilling an empty main sheaf, making
// room in a full one (through the barn, barn.cpp), per-thread mode, thread
// exit and kmem_shrink_all (the drains of other CPUs: drain.cpp). The
// invariants of main/spare ownership are in sheaf.h.
#include <pthread.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>

#include "lib/base/base.h"
#include "lib/slub/debug.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/prof.h"
#include "lib/slub/slab.h"
#include "lib/slub/slub_internal.h"

namespace numaslub {

constinit FastPathBlock g_fastpath_block = {};
constinit thread_local PercpuSheaves* t_sheaves NS_TLS_IE = nullptr;

namespace {

// Per-CPU sheaf sets: g_fastpath_block.cpu_sets (kmalloc.h).
//
// Invariant: the sets of CPUs below g_fastpath.nr_cpu_sheaves (and their
// g_cpu_node entries) are set up; it starts at the topology's count of CPUs
// and grows, under g_init_lock, when a thread runs on a CPU beyond it (the
// count is a lower bound where sysfs is hidden, and a thread may widen its
// affinity). A CPU at or beyond g_kmem.max_cpu_sheaves (kMaxCpus; less in
// tests) has no set: its threads use per-thread sheaves, as in thread mode.
std::uint16_t g_cpu_node[kMaxCpus];

constinit Mutex g_init_lock;
constinit std::atomic<bool> g_ready{false};
// Set-up that failed (no address space for the heap) is retried by the next
// call: each step below is done once and kept.
constinit bool g_caches_ready = false;
constinit bool g_key_ready = false;
pthread_key_t g_thread_key;

// Bumped by every kmem_shrink_all: a per-thread set whose trim_gen is older
// is emptied at its owner's next slow path (thread mode).
constinit std::atomic<std::uint64_t> g_trim_gen{0};

constinit Mutex g_pool_lock;
constinit PercpuSheaves* g_pool = nullptr;  // thread mode: sets of exited threads
// Set while a thread's sheaves are being torn down, so frees that glibc makes
// after the TSD destructors go straight to the slabs.
constinit thread_local bool t_exiting NS_TLS_IE = false;

// CPUs whose sets are set up (see g_fastpath_block.cpu_sets).
unsigned nr_cpu_sheaves() {
  return __atomic_load_n(&g_fastpath.nr_cpu_sheaves, __ATOMIC_ACQUIRE);
}

// Sets up the empty sheaf set of one CPU: every main word points at the
// no-sheaf sentinel, which sends the fast paths to the slow path.
void setup_cpu_sheaves(unsigned cpu) {
  unsigned nid = static_cast<unsigned>(g_kmem.pa->topo().node_of_cpu(static_cast<int>(cpu)));
  g_cpu_node[cpu] = static_cast<std::uint16_t>(nid);
  PercpuSheaves* cs = cpu_sheaves(cpu);
  cs->node = nid;
  cs->cpu = cpu;
  for (SheafSlot& sl : cs->slots) sl = {no_sheaf_top(), nullptr};
}

void thread_exit(void* arg);

}  // namespace

constinit KmemState g_kmem;

std::uint64_t random_secret() {
  return sys::random_u64() | 1;
}

PercpuSheaves* cpu_sheaves(unsigned cpu) {
  return reinterpret_cast<PercpuSheaves*>(g_fastpath_block.cpu_sets +
                                          (std::size_t{cpu} << kPercpuSheavesShift));
}
constinit Sheaf g_no_sheaf = {};

// ---- objects without a sheaf (no rseq in this thread, thread exit, OOM) --

static void* alloc_direct(KmemCache& c, int nid) {
  void* obj;
  unsigned n =
      nid < 0 ? static_cast<unsigned>(g_kmem.pa->local_node()) : static_cast<unsigned>(nid);
  return c.fill(n, &obj, 1) ? obj : nullptr;
}

// ---- rseq mode ---------------------------------------------------------

// A thread runs on a CPU at or beyond nr_cpu_sheaves. Sets up the sets up to
// and including `cpu` and returns true, or false when cpu is beyond the
// table (the caller then uses per-thread sheaves).
static bool cpu_sheaves_grow(unsigned cpu) {
  if (cpu >= g_kmem.max_cpu_sheaves) return false;
  LockGuard<Mutex> g(g_init_lock);
  unsigned n = g_fastpath.nr_cpu_sheaves;
  for (; n <= cpu; ++n) setup_cpu_sheaves(n);
  __atomic_store_n(&g_fastpath.nr_cpu_sheaves, n, __ATOMIC_RELEASE);
  return true;
}

static void* alloc_slow_thread(unsigned cls);
static void free_slow_thread(KmemCache& c, void* p);

// ---- splitting a stocked spare -------------------------------------------
//
// An allocation that finds main empty takes the spare as main. When the
// spare already held objects (the old main a free found full, not a sheaf
// just refilled from the barn or the slabs), half of them stay behind as
// the new spare: main then starts half full, not full. Swapping whole
// sheaves, a class whose allocations and frees balance (malloc-thread: a
// random slot freed, one allocated) kept its main next to a boundary after
// every exchange: main full after an allocation's exchange, empty after a
// free's, and the next few operations crossed back (16-byte objects: one
// exchange every ~250 calls; 218k exchanges in 40M pairs, 8k now). A flow
// one way (a consumer) refills from the barn as before, and the full
// sheaves the barn gets are the frees' as before: a free that finds main
// full takes a spare with room, whatever its count.

#if NS_HAVE_RSEQ_ASM
static void* alloc_slow_rseq(unsigned cls) {
  KmemCache& c = g_kmem.caches[cls];
  std::size_t off = kSlotsOffset + cls * sizeof(SheafSlot);
  for (int attempt = 0; attempt < 16; ++attempt) {
    RseqAbi* rs = rseq_area();
    if (!rs) break;
    unsigned cpu = __atomic_load_n(&rs->cpu_id_start, __ATOMIC_RELAXED);
    if (cpu >= nr_cpu_sheaves()) {
      if (cpu_sheaves_grow(cpu)) continue;
      return alloc_slow_thread(cls);  // beyond the table
    }
    PercpuSheaves* cs = cpu_sheaves(cpu);
    {
      LockGuard<Mutex> g(cs->lock);
      SheafSlot& sl = cs->slots[cls];
      std::uint64_t now = now_coarse_ns();
      std::uint32_t cap = slot_capacity(c, cs, true, now);
      // Under the lock main is a real sheaf or not for good (only a lock
      // holder replaces it): a split needs the old main to keep its half.
      std::uint32_t keep = sl.spare && sl.spare->size >= 2 && sl.main != no_sheaf_top()
                               ? split_spare_count(sl.spare)
                               : 0;
      if (!prepare_full_spare(c, cs->node, &sl.spare, cap)) return nullptr;
      // The half that stays is copied out first: once the spare is main,
      // frees on this CPU push over the entries above its top.
      Sheaf* s = sl.spare;
      void* half[kSheafMaxCapacity];
      s->size -= keep;
      std::memcpy(half, s->objects() + s->size, keep * sizeof(void*));
      void** old = rseq_replace_main(rs, cpu, &sl.main, s->top());
      if (old == kReplaceFailed) {  // migrated: the spare stays with that CPU, whole
        s->size += keep;
        continue;
      }
      Sheaf* m = main_take(old);  // null when there was none (then keep is 0)
      if (keep) {
        // The old main, empty but for frees that ran on this CPU since the
        // miss (a preempting thread's): what does not fit goes to the slabs.
        std::uint32_t fit = m->capacity - m->size < keep ? m->capacity - m->size : keep;
        std::memcpy(m->objects() + m->size, half, fit * sizeof(void*));
        m->size += fit;
        if (fit < keep) c.free_batch(half + fit, keep - fit);
      }
      sl.spare = m;
      ++g_kmem.stats[cls].refills;
      cs->last_used_ns = now;
    }
    if (void* obj = rseq_pop(g_fastpath.rseq_off, &g_fastpath, g_fastpath.nr_cpu_sheaves, off))
      return obj;
  }
  return alloc_direct(c, -1);
}

static void free_slow_rseq(KmemCache& c, void* p) {
  std::size_t off = kSlotsOffset + c.cls * sizeof(SheafSlot);
  for (int attempt = 0; attempt < 16; ++attempt) {
    RseqAbi* rs = rseq_area();
    if (!rs) break;
    int r =
        rseq_push<!kHardened>(g_fastpath.rseq_off, &g_fastpath, g_fastpath.nr_cpu_sheaves, off, p);
    if (r == kPushed) return;
    if (r == kPushDoubleFree) fatal("double free of %p (cache %s)", p, c.name);
    unsigned cpu = __atomic_load_n(&rs->cpu_id_start, __ATOMIC_RELAXED);
    if (cpu >= nr_cpu_sheaves()) {
      if (cpu_sheaves_grow(cpu)) continue;
      return free_slow_thread(c, p);  // beyond the table
    }
    PercpuSheaves* cs = cpu_sheaves(cpu);
    LockGuard<Mutex> g(cs->lock);
    SheafSlot& sl = cs->slots[c.cls];
    std::uint64_t now = now_coarse_ns();
    if (!prepare_room_spare(c, cs->node, &sl.spare, slot_capacity(c, cs, false, now))) break;
    void** old = rseq_replace_main(rs, cpu, &sl.main, sl.spare->top());
    if (old == kReplaceFailed) continue;
    sl.spare = main_take(old);
    ++g_kmem.stats[c.cls].flushes;
    cs->last_used_ns = now;
  }
  c.free_batch(&p, 1);
}
#endif

// ---- per-thread mode ---------------------------------------------------
//
// A thread's sheaf set is changed by its own thread only, but a signal
// handler on that thread may call malloc while a change is half done: every
// change runs inside a SheafBusy scope, which sends such a nested call to
// reentry.h instead of the set (the fast paths in kmalloc.h do the same).
struct SheafBusy {
  SheafBusy() {
    ++t_ctx.sheaf_busy;
    signal_fence();
  }
  ~SheafBusy() {
    signal_fence();
    --t_ctx.sheaf_busy;
  }
  SheafBusy(const SheafBusy&) = delete;
  SheafBusy& operator=(const SheafBusy&) = delete;
};

static PercpuSheaves* thread_sheaves() {
  if (PercpuSheaves* t = t_sheaves) return t;
  if (t_exiting) return nullptr;
  PercpuSheaves* cs;
  {
    LockGuard<Mutex> g(g_pool_lock);
    cs = g_pool;
    if (cs) g_pool = cs->pool_next;
  }
  if (!cs) {
    cs = static_cast<PercpuSheaves*>(boot_alloc(sizeof(PercpuSheaves)));
    if (!cs) return nullptr;
    new (cs) PercpuSheaves();
    for (SheafSlot& sl : cs->slots) sl = {no_sheaf_top(), nullptr};
  }
  cs->node = static_cast<std::uint32_t>(g_kmem.pa->local_node());
  cs->trim_gen = g_trim_gen.load(std::memory_order_relaxed);
  // Publish before pthread_setspecific, which may allocate (keys >= 32):
  // that nested malloc then finds the set and does not recurse here.
  t_sheaves = cs;
  pthread_setspecific(g_thread_key, cs);
  return cs;
}

// A malloc_trim ran since this set last looked: empty it (thread mode).
static void catch_up_trim(PercpuSheaves* cs) {
  std::uint64_t gen = g_trim_gen.load(std::memory_order_relaxed);
  if (NS_UNLIKELY(cs->trim_gen != gen)) {
    release_slots(cs, false);
    cs->trim_gen = gen;
  }
}

static void* alloc_slow_thread(unsigned cls) {
  SheafBusy busy;
  KmemCache& c = g_kmem.caches[cls];
  PercpuSheaves* cs = thread_sheaves();
  if (!cs) return alloc_direct(c, -1);
  catch_up_trim(cs);
  SheafSlot& sl = cs->slots[cls];
  std::uint32_t cap = slot_capacity(c, cs, true, now_coarse_ns());
  if (sl.spare && sl.spare->size >= 2 && sl.main != no_sheaf_top()) {
    // Split (above): half of the spare's objects move into the empty main.
    Sheaf* m = main_take(sl.main);
    Sheaf* s = sl.spare;
    std::uint32_t move = s->size - split_spare_count(s);
    if (move > m->capacity - m->size) move = m->capacity - m->size;  // main had some after all
    s->size -= move;
    std::memcpy(m->objects() + m->size, s->objects() + s->size, move * sizeof(void*));
    m->size += move;
    void* obj = m->objects()[--m->size];
    sl.main = m->top();
    ++g_kmem.stats[cls].refills;
    return obj;
  }
  if (!prepare_full_spare(c, cs->node, &sl.spare, cap)) return nullptr;
  Sheaf* full = sl.spare;
  sl.spare = main_take(sl.main);
  void* obj = full->objects()[--full->size];
  sl.main = full->top();
  ++g_kmem.stats[cls].refills;
  return obj;
}

static void free_slow_thread(KmemCache& c, void* p) {
  SheafBusy busy;
  PercpuSheaves* cs = thread_sheaves();
  if (!cs) return c.free_batch(&p, 1);
  catch_up_trim(cs);
  SheafSlot& sl = cs->slots[c.cls];
  if (sl.main[-1] == p) fatal("double free of %p (cache %s)", p, c.name);
  if (reinterpret_cast<std::uintptr_t>(sl.main) & (kSheafBytes - 1)) {
    *sl.main++ = p;  // room after all (the fast path saw another node's object)
    return;
  }
  std::uint32_t cap = slot_capacity(c, cs, false, now_coarse_ns());
  if (!prepare_room_spare(c, cs->node, &sl.spare, cap)) return c.free_batch(&p, 1);
  Sheaf* room = sl.spare;
  sl.spare = main_take(sl.main);
  room->objects()[room->size++] = p;
  sl.main = room->top();
  ++g_kmem.stats[c.cls].flushes;
}

// ---- prof=1: the sheaves behind the set's lock --------------------------
//
// With the heap profiler on, every small allocation passes the sampler's
// countdown (prof.h), which the fast paths do not have. No main sheaf is
// ever installed (the slots keep the no-sheaf sentinel), so both fast paths
// miss; the calls below pop and push the slot's spare sheaf instead, under
// the lock of the calling CPU's set (rseq mode: a thread that migrates
// meanwhile still holds the set it locked), or on the thread's own set
// under SheafBusy (thread mode, or a CPU beyond the table). Drains, trims
// and the fork child treat these spares as any other.

// Runs op on the calling CPU's set, locked, or on the thread's own set
// (null when it has none: thread exit).
template <class Op>
static auto with_own_set(Op op) {
#if NS_HAVE_RSEQ_ASM
  if (g_fastpath.mode == CacheMode::kRseq)
    if (RseqAbi* rs = rseq_area()) {
      unsigned cpu = __atomic_load_n(&rs->cpu_id_start, __ATOMIC_RELAXED);
      if (cpu < nr_cpu_sheaves() || cpu_sheaves_grow(cpu)) {
        PercpuSheaves* cs = cpu_sheaves(cpu);
        LockGuard<Mutex> g(cs->lock);
        return op(cs);
      }
    }
#endif
  SheafBusy busy;
  PercpuSheaves* cs = thread_sheaves();
  if (cs) catch_up_trim(cs);
  return op(cs);
}

static void* prof_alloc_spare(unsigned cls) {
  KmemCache& c = g_kmem.caches[cls];
  return with_own_set([&c, cls](PercpuSheaves* cs) -> void* {
    if (!cs) return alloc_direct(c, -1);
    Sheaf** spare = &cs->slots[cls].spare;
    if (!(*spare && (*spare)->size) && !prepare_full_spare(c, cs->node, spare, c.sheaf_capacity))
      return nullptr;
    Sheaf* s = *spare;
    return s->objects()[--s->size];
  });
}

static void prof_free_spare(KmemCache& c, void* p) {
  bool kept = with_own_set([&c, p](PercpuSheaves* cs) {
    if (!cs) return false;
    Sheaf** spare = &cs->slots[c.cls].spare;
    if ((!*spare || (*spare)->size == (*spare)->capacity) &&
        !prepare_room_spare(c, cs->node, spare, c.sheaf_capacity))
      return false;
    Sheaf* s = *spare;
    s->objects()[s->size++] = p;
    return true;
  });
  if (!kept) c.free_batch(&p, 1);
}

// Gives every sheaf of a set back (to the barn when full and keep_full, else
// to the slabs) and leaves the set's slots null.
void release_slots(PercpuSheaves* cs, bool keep_full) {
  for (unsigned cls = 0; cls < kNrClasses; ++cls) {
    KmemCache& c = g_kmem.caches[cls];
    SheafSlot& sl = cs->slots[cls];
    for (Sheaf* s : {main_take(sl.main), sl.spare}) {
      if (!s) continue;
      if (!(keep_full && s->size == s->capacity && barn_put_full(c, cs->node, s))) {
        sheaf_flush(c, s);
        sheaf_put_empty(c, cs->node, s);
      }
    }
    sl = {no_sheaf_top(), nullptr};
  }
}

namespace {
void thread_exit(void* arg) {
  auto* cs = static_cast<PercpuSheaves*>(arg);
  t_exiting = true;
  t_sheaves = nullptr;
  signal_fence();  // a handler's malloc from here on finds no set
  release_slots(cs, true);
  LockGuard<Mutex> g(g_pool_lock);
  cs->pool_next = g_pool;
  g_pool = cs;
}
}  // namespace

// ---- set-up ------------------------------------------------------------

// Raises the fast paths' heap bound to `bytes` (never lowers it): the
// arena's grow hook, and set-up.
static void publish_heap_size(std::size_t bytes) {
  std::uintptr_t cur = __atomic_load_n(&g_fastpath.heap_size, __ATOMIC_RELAXED);
  while (cur < bytes && !__atomic_compare_exchange_n(&g_fastpath.heap_size, &cur, bytes, true,
                                                     __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
  }
}

static bool slub_init_locked() {
  PageAllocator* pa = page_allocator();
  if (!pa) return false;
  g_kmem.pa = pa;
  g_no_sheaf.init(0);
  if (g_kmem.max_cpu_sheaves == 0 || g_kmem.max_cpu_sheaves > kMaxCpus)
    g_kmem.max_cpu_sheaves = kMaxCpus;
  unsigned nr_cpus =
      pa->nr_cpus() < g_kmem.max_cpu_sheaves ? pa->nr_cpus() : g_kmem.max_cpu_sheaves;
  if (!g_caches_ready) {
    // A secret per cache: one leaked opens one cache's freelists at most.
    for (unsigned c = 0; c < kNrClasses; ++c)
      if (!g_kmem.caches[c].init(c, pa, random_secret(), config().slab_random)) return false;
    debug_setup(g_kmem.caches, kNrClasses);
    g_caches_ready = true;
  }
  if (!g_key_ready) {
    if (pthread_key_create(&g_thread_key, thread_exit) != 0) return false;
    g_key_ready = true;
  }

  const Config& cfg = config();
  // percpu='s values: the indices of its choices (lib/base/config.h).
  enum class PercpuMode : std::uint8_t { kAuto, kRseq, kThread };
  static_assert(choice_index(kPercpuChoices, "auto") == int(PercpuMode::kAuto) &&
                choice_index(kPercpuChoices, "rseq") == int(PercpuMode::kRseq) &&
                choice_index(kPercpuChoices, "thread") == int(PercpuMode::kThread));
  auto percpu = static_cast<PercpuMode>(cfg.percpu);
  // Before any sheaf is installed: with the profiler on none ever is.
  g_prof_on = cfg.prof || cfg.leak_check;
  CacheMode mode = CacheMode::kThread;
#if NS_HAVE_RSEQ_ASM
  if (percpu != PercpuMode::kThread && rseq_area() != nullptr) mode = CacheMode::kRseq;
#endif
  if (percpu == PercpuMode::kRseq && mode != CacheMode::kRseq)
    log_msg("percpu=rseq requested but rseq is unavailable: using per-thread caches");
  // The CPUs the topology knows; more are set up when threads run there.
  for (unsigned cpu = 0; cpu < nr_cpus; ++cpu) setup_cpu_sheaves(cpu);
  g_fastpath.nr_cpu_sheaves = nr_cpus;
  const Arena& a = pa->arena();
  g_fastpath.heap_base = a.base();
  g_fastpath.mem_map = a.mem_map();
  g_fastpath.node_shift = static_cast<std::uint8_t>(a.node_shift() + kPageShift);
  g_fastpath.multi_node = a.nr_nodes() > 1;
  g_fastpath.free_checks = static_cast<std::uint8_t>((g_fastpath.multi_node ? kFreeCheckNode : 0) |
                                                     (cfg.debug ? kFreeCheckSize : 0));
  g_fastpath.cpu_node = g_cpu_node;
  g_fastpath.rseq_off = mode == CacheMode::kRseq ? rseq_offset() : 0;
  // The fast paths' tables; read only after heap_size or mode is published.
  g_fastpath.obj_index = kObjIndex;
  for (std::size_t n = 0; n <= kSlotDirectMax; ++n)
    g_fastpath.slot_by_size[n] = static_cast<std::uint16_t>(size_to_slot_offset(n));
  // The heap's reservation may grow (arena.h): the fast paths' bound follows.
  pa->arena().set_grow_hook(publish_heap_size);
  publish_heap_size(a.size());
  __atomic_store(&g_fastpath.mode, &mode, __ATOMIC_RELEASE);  // generic form: mode is an enum
  // Last: a free that reads a mode here (with acquire) goes straight to
  // its push, so everything above must be visible to it.
  for (int sized = 0; sized < 2; ++sized) {
    std::uint8_t checks = sized ? g_fastpath.free_checks : g_fastpath.free_checks & kFreeCheckNode;
    __atomic_store_n(&g_fastpath.free_unchecked[sized],
                     static_cast<std::uint8_t>(checks ? CacheMode::kNone : mode), __ATOMIC_RELEASE);
  }
  if (cfg.verbose)
    log_msg("slub: %u caches, %s mode, %u cpus, %u nodes", kNrClasses,
            mode == CacheMode::kRseq ? "rseq" : "thread", nr_cpus, a.nr_nodes());
  return true;
}

// Out of line: inlined, its lock and frame made every call save six
// registers before the ready test (20 instructions where 4 do; the large
// block paths call slub_init twice per malloc).
static NS_NOINLINE bool slub_init_slow() {
  LockGuard<Mutex> g(g_init_lock);
  if (g_ready.load(std::memory_order_relaxed)) return true;
  if (!slub_init_locked()) return false;  // retried by the next call
  g_ready.store(true, std::memory_order_release);
  return true;
}

bool slub_init() {
  if (NS_LIKELY(g_ready.load(std::memory_order_acquire))) return true;
  return slub_init_slow();
}

void slub_set_max_cpu_sheaves_for_test(unsigned n) {
  g_kmem.max_cpu_sheaves = n;
}

unsigned slub_nr_cpu_sheaves() {
  return g_ready.load(std::memory_order_acquire) ? nr_cpu_sheaves() : 0;
}

CacheMode cache_mode() {
  return g_fastpath.mode;
}

Mutex& slub_init_lock() {
  return g_init_lock;
}
Mutex& slub_thread_pool_lock() {
  return g_pool_lock;
}
bool slub_ready() {
  return g_ready.load(std::memory_order_acquire);
}

// ---- the small-object slow paths ----------------------------------------

void* small_alloc_slow(std::size_t size, std::size_t asked) {
  if (!slub_init()) return nullptr;
  unsigned cls = size_to_class(size);
  // A debug cache's slots stay at the no-sheaf sentinel: every allocation
  // comes here and goes to its slabs (debug.h).
  if (NS_UNLIKELY(g_kmem.caches[cls].debug)) return debug_alloc(g_kmem.caches[cls], asked, -1);
  void* p;
  if (NS_UNLIKELY(g_prof_on)) {
    if (prof_sample_now(asked))
      if (void* q = prof_alloc_sampled(kClassSize[cls], asked)) return q;
    p = prof_alloc_spare(cls);
  } else
#if NS_HAVE_RSEQ_ASM
      if (g_fastpath.mode == CacheMode::kRseq)
    p = alloc_slow_rseq(cls);
  else
#endif
    p = alloc_slow_thread(cls);
  if (p) {
    // The pop may have taken an object another thread pushed onto this
    // CPU's main sheaf (TSan: the edge from its free, as kmalloc_or has it),
    // and the store below is to that object.
    NS_TSAN_ACQUIRE(p);
    clear_free_tag(p);
  }
  return p;
}

void small_free_slow(Page* page, void* p) {
  KmemCache& c = g_kmem.caches[page->slab_class - 1];
  Slab* s = c.obj_to_slab(p);
  if (g_fastpath.multi_node && s->nid != static_cast<unsigned>(g_kmem.pa->local_node())) {
    // Origin-aware free: another node's object goes home, not into this CPU's sheaf.
    c.free_remote(s, p);
    return;
  }
  if (NS_UNLIKELY(g_prof_on)) return prof_free_spare(c, p);
#if NS_HAVE_RSEQ_ASM
  if (g_fastpath.mode == CacheMode::kRseq) return free_slow_rseq(c, p);
#endif
  free_slow_thread(c, p);
}

std::size_t kmem_shrink_all() {
  if (!g_ready.load(std::memory_order_acquire)) return 0;
  // Per-thread mode: this thread's set now; every other live thread's set at
  // its next slow path (it sees the new generation). Sets of exited threads
  // were emptied when they were pooled.
  g_trim_gen.fetch_add(1, std::memory_order_relaxed);
  if (PercpuSheaves* t = t_sheaves) {
    SheafBusy busy;
    release_slots(t, false);
    t->trim_gen = g_trim_gen.load(std::memory_order_relaxed);
  }
#if NS_HAVE_RSEQ_ASM
  if (g_fastpath.mode == CacheMode::kRseq && !remote_drain_available()) drain_all_by_migration();
#endif
  return kmem_shrink_shared();
}

}  // namespace numaslub
