// The allocation API around the fast paths: large blocks from the buddy
// allocator (64 KiB < size <= 4 MiB), direct mappings above (vmalloc.h), calloc,
// realloc, aligned and node-directed allocation, and usable size.
//
// A large block is a buddy block of the smallest order that holds the
// request, with the unused tail pages given straight back to the buddy (the
// kernel's alloc_pages_exact), so the waste is under one page. Its head page
// carries PG_head | PG_large and the page count in priv[0].
#include <cerrno>
#include <cstring>

#include "lib/base/base.h"
#include "lib/slub/debug.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/prof.h"
#include "lib/slub/reentry.h"
#include "lib/slub/slub_internal.h"
#include "lib/slub/vmalloc.h"

namespace numaslub {

namespace {

constinit ForeignFreeFn g_foreign_free = nullptr;

void* large_alloc(std::size_t size, std::size_t align, int nid, bool zero) {
  if (!slub_init()) return nullptr;
  // A zero-byte block still takes a page: it owns its address until freed
  // (with 0 pages, every page of the block would go straight back). A
  // count with a run class is rounded up to it (at most 25% more: waste
  // that is never touched unless used), so that a freed block fits the
  // next request of its class from the CPU's run list (pcp.h).
  std::size_t pages = run_round_pages(size ? align_up(size, kPageSize) >> kPageShift : 1);
  unsigned min_order = align > kPageSize ? ilog2(align) - kPageShift : 0;
  // Sparse: a program may touch few of a large block's pages (page_alloc.h).
  unsigned gfp = kGfpSparse | (zero ? unsigned{kGfpZero} : 0u);
  Page* head = g_kmem.pa->alloc_pages_exact(nid, pages, min_order, gfp);
  if (!head) return nullptr;
  head->flags = PG_head | PG_large;
  head->slab_class = 0;
  head->priv[0] = pages;
  return g_kmem.pa->page_address(head);
}

void large_free(Page* head) {
  std::size_t pages = head->priv[0];
  head->priv[0] = 0;
  head->flags = 0;
  g_kmem.pa->free_pages_exact(head, pages);
}

// page, the descriptor of heap address p, if p starts a large block; else null.
Page* large_head_at(Page* page, const void* p) {
  if ((page->flags & (PG_head | PG_large)) != (PG_head | PG_large) ||
      g_kmem.pa->page_address(page) != p)
    return nullptr;
  return page;
}

// The head page of a large block p points at, or null.
Page* large_head(const void* p) {
  if (!g_kmem.pa || !g_kmem.pa->owns(p)) return nullptr;
  return large_head_at(g_kmem.pa->virt_to_page(p), p);
}

void* alloc_block(std::size_t size, std::size_t align, int nid, bool zero) {
  if (size <= kMaxBlockSize && align <= kMaxBlockSize) return large_alloc(size, align, nid, zero);
  return vmalloc(size, align, nid, zero);
}

// The length of large block or direct mapping p (0 for neither).
std::size_t block_length(const void* p) {
  if (Page* head = large_head(p)) return head->priv[0] << kPageShift;
  return vmalloc_size(p);
}

// slub_debug's Z for large blocks and mappings (debug.h): kTailBytes more,
// the tail written after the size asked for.
NS_NOINLINE void* alloc_with_tail(std::size_t size, std::size_t align, int nid, bool zero) {
  if (size > kMaxAllocSize) return nullptr;  // can never fit (and + kTailBytes could wrap)
  void* p = alloc_block(size + kTailBytes, align, nid, zero);
  if (p) debug_tail_init(p, size, block_length(p));
  return p;
}

void* alloc_any(std::size_t size, std::size_t align, int nid, bool zero) {
  // Set-up decides debug_tails(): before it, even the first block (a
  // mapping needs no heap, so a failed set-up is no failure here).
  (void)slub_init();
  if (NS_UNLIKELY(debug_tails())) return alloc_with_tail(size, align, nid, zero);
  return alloc_block(size, align, nid, zero);
}

// prof=1 (prof.h): records a sample at block or mapping p, asked for as
// `asked` bytes; a large block's head page then leads to the record.
void prof_mark(void* p, std::size_t asked) {
  Page* head = large_head(p);
  ProfRecord* r = prof_record(p, asked, head == nullptr);
  if (head && r) {
    head->priv[3] = reinterpret_cast<std::uintptr_t>(r);
    head->flags |= PG_sampled;
  }
}

// alloc_any, and the profiler's countdown for it (every block and mapping
// the API hands out comes through here or prof_alloc_sampled).
void* alloc_counted(std::size_t size, std::size_t align, int nid, bool zero) {
  void* p = alloc_any(size, align, nid, zero);
  if (NS_UNLIKELY(g_prof_on) && p && prof_sample_now(size)) prof_mark(p, size);
  return p;
}

// realloc left sampled block or mapping p where it was with `size` bytes.
void prof_resized(void* p, std::size_t size) {
  if (Page* head = large_head(p)) {
    if (head->flags & PG_sampled)
      prof_moved(reinterpret_cast<ProfRecord*>(head->priv[3]), p, p, size);
  } else if (vmalloc_size(p)) {
    prof_moved(nullptr, p, p, size);
  }
}

// Before large block or mapping p is freed, under slub_debug's Z.
void check_tail(void* p, const char* kind) {
  if (NS_UNLIKELY(debug_tails()))
    if (std::size_t len = block_length(p)) debug_tail_check(p, len, kind);
}

// A call nested inside the allocator (reentry.h): a mapping of its own.
void* nested_alloc(std::size_t size, std::size_t align) {
  void* p = reentry_alloc(size, align);
  if (!p) errno = ENOMEM;
  return p;
}

// Entry to a slow path that is not nested: first give back the blocks that
// nested frees deferred.
NS_ALWAYS_INLINE void drain_deferred() {
  if (NS_UNLIKELY(reentry_frees_pending())) reentry_drain_frees();
  views_tick(true);  // publish the views when due (lib/base/views_hook.h)
}

// Whether emptying the caches could let a failed request of size bytes
// aligned to align succeed. Not for one that can never fit: above
// kMaxAllocSize, or a mapping larger than RLIMIT_AS allows at all (reclaim
// gives address space back, it cannot raise the limit). Programs make such
// requests in loops (glibc's tst-malloc-too-large: thousands), and each
// would drain every cache for nothing.
bool reclaim_may_help(std::size_t size, std::size_t align) {
  if (size > kMaxAllocSize || align > kMaxAllocSize) return false;
  if (size <= kMaxBlockSize && align <= kMaxBlockSize) return true;  // heap pages
  std::size_t bytes = align_up(size, kPageSize) + (align > kPageSize ? align : 0);
  sys::Rlimit lim{};
  constexpr int kRlimitAs = 9;  // RLIMIT_AS; its "infinity" is ~0, never exceeded
  return !(sys::getrlimit(kRlimitAs, &lim) == 0 && bytes > lim.cur);
}

// Direct reclaim before the one retry of a failed allocation: gives every
// cached object and page back. False when it could not help or freed
// nothing (then there is no point in retrying).
bool direct_reclaim(std::size_t size, std::size_t align) {
  if (!reclaim_may_help(size, align)) return false;
  g_kmem.direct_reclaims.fetch_add(1, std::memory_order_relaxed);
  return kmem_shrink_all() != 0;
}

// alloc_counted, retried once after direct reclaim (as kmalloc_slow does).
void* alloc_retry(std::size_t size, std::size_t align, int nid, bool zero) {
  void* p = alloc_counted(size, align, nid, zero);
  if (!p && direct_reclaim(size, align)) p = alloc_counted(size, align, nid, zero);
  return p;
}

}  // namespace

void* prof_alloc_sampled(std::size_t size, std::size_t asked) {
  // kmalloc_aligned's classes promise their largest power-of-two divisor.
  std::size_t align = size & (0 - size);
  void* p = alloc_any(size, align > kPageSize ? align : kPageSize, kNumaNoNode, false);
  if (p) prof_mark(p, asked);
  return p;
}

void set_foreign_free(ForeignFreeFn fn) {
  g_foreign_free = fn;
}

void* kmalloc_slow(std::size_t size) {
  return kmalloc_slow_asked(size, size);
}

void* kmalloc_slow_asked(std::size_t size, std::size_t asked) {
  if (NS_UNLIKELY(allocator_busy())) return nested_alloc(size, 16);
  drain_deferred();
  for (int attempt = 0; attempt < 2; ++attempt) {
    void* p = size <= kMaxSmallSize ? small_alloc_slow(size, asked)
                                    : alloc_counted(size, kPageSize, kNumaNoNode, false);
    if (p) {
      NS_TSAN_ACQUIRE(p);
      return p;
    }
    // Direct reclaim: give every cached object and page back, then retry once.
    if (attempt > 0 || !direct_reclaim(size, kPageSize)) break;
  }
  errno = ENOMEM;
  return nullptr;
}

// free() must preserve errno (POSIX 2024); the paths below make raw
// system calls only, but a foreign free goes to another allocator.
struct ErrnoGuard {
  int saved = errno;
  ~ErrnoGuard() { errno = saved; }
};

// The slow path's check of p, in a slab page (descriptor `page`), before a
// free (then p is tagged free, kmalloc.h) or a realloc: p must be the start
// of an object of its slab that is not free. Anything else aborts with a
// message naming the pointer, the object it points into, the slab and the
// cache: never a silent overlap. Not for a debug slab's pages (debug.h):
// their callers check them with debug.cpp.
static void check_small(Page* page, void* p, bool freeing) {
  const char* op = freeing ? "free" : "realloc";
  KmemCache& c = g_kmem.caches[page->slab_class - 1];
  Slab* s = c.obj_to_slab(p);
  char* base = static_cast<char*>(c.slab_base(s));
  std::size_t off = static_cast<std::size_t>(static_cast<char*>(p) - base);
  const ObjIndex& oi = obj_index_entry(kObjIndex, page->sheaf_off);
  if (NS_UNLIKELY(!obj_start(oi, reinterpret_cast<std::uintptr_t>(p) - g_fastpath.heap_base))) {
    if (off >= std::size_t{c.objects} * c.size)
      fatal("BUG %s: %s of invalid pointer %p: in the unused tail of slab %p", c.name, op, p, base);
    fatal("BUG %s: %s of invalid pointer %p: %zu bytes into object %p (slab %p)", c.name, op, p,
          off % c.size, static_cast<void*>(base + off / c.size * c.size), base);
  }
  auto* word = static_cast<std::uintptr_t*>(p);
  if (!kHardened) {
    if (freeing) NS_TSAN_RELEASE(p);  // after the descriptor reads above
    return;
  }
  if (NS_UNLIKELY(word[1] == free_tag(p))) {
    if (freeing) fatal("BUG %s: double free of %p (slab %p)", c.name, p, base);
    fatal("BUG %s: realloc of %p, which is free already: use after free (slab %p)", c.name, p,
          base);
  }
  if (freeing) {
    word[1] = free_tag(p);
    NS_TSAN_RELEASE(p);  // the tag goes with the object
  }
}

// realloc of p, in a debug slab's page: always moves (a stale pointer to
// the old object is then caught); a pointer that is not a live object is
// reported and, going on (debug_continue), not copied from.
static NS_NOINLINE void* debug_krealloc(Page* page, void* p, std::size_t size) {
  bool live = debug_check_live(page, p, "realloc");
  void* q = kmalloc(size);
  if (q && live) {
    std::size_t old = ksize(p);
    std::memcpy(q, p, old < size ? old : size);
    kfree(p);
  }
  return q;
}

// A free or realloc (op) of a heap pointer that starts no slab object or
// large block:
// inside a live large block (its head is at most kMaxBlockPages back), or
// a block that is not allocated (freed already, or never handed out).
[[noreturn]] static void report_bad_large_free(void* p, const char* op) {
  const Arena& a = g_kmem.pa->arena();
  std::size_t pfn = a.page_to_pfn(g_kmem.pa->virt_to_page(p));
  for (std::size_t back = 0; back < kMaxBlockPages && back <= pfn; ++back) {
    Page* h = a.pfn_to_page(pfn - back);
    if (!a.is_online(g_kmem.pa->page_address(h))) break;
    if ((h->flags & (PG_head | PG_large)) == (PG_head | PG_large) && back < h->priv[0]) {
      auto* base = static_cast<char*>(g_kmem.pa->page_address(h));
      fatal("BUG large block: %s of invalid pointer %p: %zu bytes into block %p", op, p,
            static_cast<std::size_t>(static_cast<char*>(p) - base), static_cast<void*>(base));
    }
    if (h->flags & (PG_head | PG_slab)) break;  // another block's
  }
  fatal(
      "BUG large block: %s of %p, which is not an allocated block: %s, or a pointer the heap "
      "never returned",
      op, p, op[0] == 'f' ? "double free" : "use after free");
}

// A pointer no mapping starts at, before it is taken for another
// allocator's: a double free or an interior pointer of a direct mapping
// aborts with a message (not a crash in the next allocator's free).
static void check_not_vmalloc(void* p, const char* op) {
  std::uintptr_t m = 0;
  switch (vmalloc_misuse(p, &m)) {
    case VmallocMisuse::kFreed:
      fatal("BUG direct mapping: %s of %p, a mapping freed already: %s", op, p,
            op[0] == 'f' ? "double free" : "use after free");
    case VmallocMisuse::kInterior:
      fatal("BUG direct mapping: %s of invalid pointer %p: %zu bytes into mapping %p", op, p,
            static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(p) - m),
            reinterpret_cast<void*>(m));
    case VmallocMisuse::kNone:
      break;
  }
}

static void kfree_slow_inner(void* p) {
  if (g_kmem.pa && g_kmem.pa->arena().contains(p)) {
    NS_CHECK(g_kmem.pa->owns(p), "free of invalid pointer %p (not in an online section)", p);
    Page* page = g_kmem.pa->virt_to_page(p);
    if (page->slab_class) {
      if (debug_page(page)) return debug_free(page, p, kNoSize);
      check_small(page, p, true);
      return small_free_slow(page, p);
    }
    if (Page* head = large_head_at(page, p)) {
      check_tail(p, "large block");
      if (NS_UNLIKELY(head->flags & PG_sampled)) {
        prof_release(reinterpret_cast<ProfRecord*>(head->priv[3]), p);
        head->priv[3] = 0;
      }
      return large_free(head);
    }
    report_bad_large_free(p, "free");
  }
  if (reentry_free(p)) return;
  check_tail(p, "direct mapping");
  if (NS_UNLIKELY(g_prof_on)) prof_release_mapping(p);
  if (vfree(p)) return;
  check_not_vmalloc(p, "free");
  if (g_foreign_free) return g_foreign_free(p);
  fatal("free of pointer %p that numaslub did not allocate", p);
}

void kcheck_foreign(void* p, const char* op) {
  if (g_kmem.pa && g_kmem.pa->arena().contains(p)) {
    NS_CHECK(g_kmem.pa->owns(p), "%s of invalid pointer %p (not in an online section)", op, p);
    Page* page = g_kmem.pa->virt_to_page(p);
    if (page->slab_class) {
      if (debug_page(page))
        debug_check_live(page, p, op);
      else
        check_small(page, p, false);
      return;
    }
    report_bad_large_free(p, op);
  }
  check_not_vmalloc(p, op);
}

void kfree_slow(void* p) {
  if (!p) return;
  ErrnoGuard keep_errno;
  if (NS_UNLIKELY(allocator_busy())) {
    // Nested: a block of its own is unmapped at once; anything else may
    // need a lock the interrupted frame holds, so it waits on the list.
    if (!reentry_free(p)) reentry_defer_free(p);
    return;
  }
  drain_deferred();
  kfree_slow_inner(p);
}

// kfree_sized's checks (debug=1, or slub_debug's F), out of line so that
// the sized delete's path stays short. True when the free was done here
// (a debug cache's object: checked against the size it was asked for).
static NS_NOINLINE bool kfree_sized_check(void* p, std::size_t size) {
  if (g_kmem.pa && g_kmem.pa->owns(p) && !allocator_busy()) {
    Page* page = g_kmem.pa->virt_to_page(p);
    if (page->slab_class && debug_page(page)) {
      ErrnoGuard keep_errno;
      drain_deferred();
      debug_free(page, p, size);
      return true;
    }
  }
  std::size_t usable = ksize(p);
  NS_CHECK(usable != 0, "sized free of pointer %p that numaslub did not allocate", p);
  NS_CHECK(size <= usable, "sized free of %p with size %zu, but the block holds %zu bytes", p, size,
           usable);
  return false;
}

void kfree_sized_slow(void* p, std::size_t size) {
  // The page descriptor is authoritative, so a wrong size is harmless to the
  // heap; in debug mode one larger than the block is reported, since it is a
  // bug in the caller (a sized delete of the wrong type, a stale length).
  // Smaller sizes are legal: aligned allocations and in-place realloc give
  // blocks larger than what the caller asked for (a debug cache knows the
  // size asked for, and checks it exactly: debug.h). The fast path sends
  // every sized free here under debug (kFreeCheckSize): checked, it takes
  // the plain free's fast path, which ignores that bit.
  if (NS_UNLIKELY(config().debug) && p) {
    if (kfree_sized_check(p, size)) return;
    return kfree(p);
  }
  kfree_slow(p);
}

bool kowns(const void* p) {
  if (g_kmem.pa && g_kmem.pa->owns(p)) {
    Page* page = g_kmem.pa->virt_to_page(p);
    return page->slab_class || large_head(p);
  }
  return reentry_size(p) != 0 || vmalloc_size(p) != 0;
}

std::size_t ksize(const void* p) {
  if (!p) return 0;
  if (g_kmem.pa && g_kmem.pa->owns(p)) {
    Page* page = g_kmem.pa->virt_to_page(p);
    if (page->slab_class)
      return debug_page(page) ? debug_ksize(page, p) : kClassSize[page->slab_class - 1];
    if (Page* head = large_head(p)) {
      std::size_t len = head->priv[0] << kPageShift;
      return NS_UNLIKELY(debug_tails()) ? debug_tail_size(p, len) : len;
    }
    return 0;
  }
  if (std::size_t n = reentry_size(p)) return n;
  std::size_t len = vmalloc_size(p);
  return NS_UNLIKELY(debug_tails()) && len ? debug_tail_size(p, len) : len;
}

void* kcalloc(std::size_t n, std::size_t size) {
  std::size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (NS_UNLIKELY(allocator_busy())) return nested_alloc(total, 16);  // zeroed
  // Above kMaxDenseClassSize a clean large block beats a class's object:
  // no memset, and pages the program never touches cost no RSS.
  if (total <= kMaxDenseClassSize) {
    void* p = kmalloc(total);
    if (p) std::memset(p, 0, total);
    return p;
  }
  // Clean buddy blocks and fresh mappings are zero already: no memset.
  void* p = alloc_retry(total, kPageSize, kNumaNoNode, true);
  if (!p) errno = ENOMEM;
  return p;
}

void* kmalloc_aligned(std::size_t align, std::size_t size) {
  if (align <= 16) return kmalloc(size);
  if (NS_UNLIKELY(allocator_busy())) return nested_alloc(size, align);
  void* p = nullptr;
  if (size <= kMaxSmallSize && align <= kMaxSmallSize) {
    // The smallest class that is a multiple of align: its objects are
    // aligned to it, since slabs are aligned to a power of two >= the class.
    unsigned c = size_to_class(size);
    while (kClassSize[c] % align) ++c;
    std::size_t n = kClassSize[c];
    p = kmalloc_or(n, [n, size] { return kmalloc_slow_asked(n, size); });
  } else {
    p = alloc_retry(size, align, kNumaNoNode, false);
  }
  if (!p) errno = ENOMEM;
  return p;
}

void* kmalloc_node(std::size_t size, int nid) {
  if (NS_UNLIKELY(allocator_busy())) return nested_alloc(size, 16);
  if (!slub_init()) return nullptr;
  if (nid >= static_cast<int>(g_kmem.pa->nr_nodes())) {
    errno = EINVAL;
    return nullptr;
  }
  // The node plain kmalloc serves from: the CPU's, but in per-thread mode a
  // small object comes from the thread's sheaves, which hold the objects of
  // the node the thread started on (it may have moved since).
  int local = g_kmem.pa->local_node();
  if (size <= kMaxSmallSize && g_fastpath.mode == CacheMode::kThread && t_sheaves)
    local = static_cast<int>(t_sheaves->node);
  void* p;
  if (nid < 0 || nid == local) {
    p = kmalloc(size);
  } else if (size <= kMaxSmallSize) {
    // Another node's object cannot come from this CPU's sheaves. It comes
    // from the node the policy serves nid from (the nearest allowed one
    // under bind), past nodes that are full: filling from a full node would
    // fall back with a new slab for every object. Served elsewhere counts
    // as a miss of nid, as the page allocator counts its fallbacks.
    unsigned from = g_kmem.pa->policy_node(nid, true);
    if (static_cast<int>(from) == local) {
      p = kmalloc(size);
    } else {
      KmemCache& c = g_kmem.caches[size_to_class(size)];
      if (c.debug) {
        p = debug_alloc(c, size, static_cast<int>(from));
      } else {
        p = c.fill(from, &p, 1) ? p : nullptr;
        if (p) clear_free_tag(p);
      }
    }
    if (p && static_cast<int>(from) != nid) ++g_kmem.pa->node_stats(nid).alloc_fallback;
  } else {
    p = alloc_retry(size, kPageSize, nid, false);
  }
  if (!p) errno = ENOMEM;
  return p;
}

// krealloc's move: a new block, the contents (`old` usable bytes), the old
// block freed. On failure p stays intact.
static void* realloc_move(void* p, std::size_t old, std::size_t size) {
  void* q = kmalloc(size);
  if (!q) return nullptr;  // errno set
  std::memcpy(q, p, old < size ? old : size);
  kfree(p);
  return q;
}

// krealloc of large block p (head: its head page): in place when it shrinks
// or the pages after it are free, else moved. Under slub_debug's Z it always
// moves, its tail checked by the free.
static void* realloc_large(Page* head, void* p, std::size_t size) {
  std::size_t need = align_up(size, kPageSize) >> kPageShift;
  std::size_t have = head->priv[0];
  if (NS_UNLIKELY(debug_tails()))
    return realloc_move(p, debug_tail_size(p, have << kPageShift), size);
  if (size > kMaxSmallSize && need <= have) {
    // Shrink in place: the tail pages go back to the buddy.
    if (need < have) g_kmem.pa->free_pages_exact(head + need, have - need);
    head->priv[0] = need;
    if (NS_UNLIKELY(head->flags & PG_sampled)) prof_resized(p, size);
    return p;
  }
  if (need > have && need <= kMaxBlockPages) {
    // Grow in place when the pages right after the block are free.
    Zone& z = g_kmem.pa->zone(g_kmem.pa->page_to_nid(head));
    std::size_t s = z.pfn(head) + have;
    bool grown;
    {
      LockGuard<Mutex> g(z.lock);
      grown = z.claim_range_locked(s, s + (need - have));
    }
    if (grown) {
      head->priv[0] = need;
      if (NS_UNLIKELY(head->flags & PG_sampled)) prof_resized(p, size);
      return p;
    }
  }
  return realloc_move(p, have << kPageShift, size);
}

void* krealloc(void* p, std::size_t size) {
  if (!p) return kmalloc(size);
  if (size == 0) {
    kfree(p);
    return nullptr;
  }
  if (size > kMaxAllocSize) {
    // Can never fit, and the page counts below would wrap (SIZE_MAX rounds
    // up to 0 pages, a "shrink" that frees the whole block): p stays intact.
    errno = ENOMEM;
    return nullptr;
  }
  if (NS_UNLIKELY(allocator_busy())) {
    // Nested: no in-place resizing (it takes locks); move to a mapping of
    // its own, the old block's free is deferred.
    std::size_t have = ksize(p);
    void* q = nested_alloc(size, 16);
    if (q) {
      std::memcpy(q, p, have < size ? have : size);
      kfree(p);
    }
    return q;
  }
  // A heap block (the common case) first: it never needs the direct
  // mappings' table, nor its process-wide lock (vmalloc.cpp).
  if (g_kmem.pa && g_kmem.pa->owns(p)) {
    Page* page = g_kmem.pa->virt_to_page(p);
    if (page->slab_class) {
      if (NS_UNLIKELY(debug_page(page))) return debug_krealloc(page, p, size);
      check_small(page, p, false);
      std::size_t old = kClassSize[page->slab_class - 1];
      if (realloc_keeps(old, size)) return p;
      return realloc_move(p, old, size);
    }
    if (Page* head = large_head(p)) return realloc_large(head, p, size);
  }
  std::size_t old = ksize(p);
  if (old == 0 && !vmalloc_size(p)) {
    check_not_vmalloc(p, "realloc");
    NS_CHECK(g_foreign_free == nullptr || !(g_kmem.pa && g_kmem.pa->arena().contains(p)),
             "realloc of invalid pointer %p", p);
    return nullptr;  // foreign: the shim handles those before calling here
  }
  // Under slub_debug's Z a mapping always moves (below), its tail checked
  // by the free.
  if (std::size_t mapped = vmalloc_size(p); mapped && NS_UNLIKELY(debug_tails())) {
  } else if (mapped && size > kMaxBlockSize) {
    void* q = vrealloc(p, size);
    if (!q) errno = ENOMEM;
    if (NS_UNLIKELY(g_prof_on) && q) prof_moved(nullptr, p, q, size);
    return q;
  } else if (realloc_keeps(old, size)) {
    if (NS_UNLIKELY(g_prof_on)) prof_resized(p, size);  // a mapping
    return p;
  }
  return realloc_move(p, old, size);
}

}  // namespace numaslub
