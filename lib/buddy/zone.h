// A zone: one node's pages run by the binary buddy allocator.
//
// The buddy algorithm (as in the kernel's __free_one_page): every free block
// has 2^order pages and starts on a page number that is a multiple of
// 2^order, relative to the zone base, which is aligned to the largest block.
// A block's buddy is the block of the same order it was split from the other
// half of: pfn ^ (1 << order). On free, while the buddy is itself free and
// of the same order, the two merge into one block of order + 1. On
// allocation, the smallest free block large enough is split in halves until
// it has the requested order; the unused halves go back onto the lists.
//
// Invariants (zone lock held to read or change any of them):
// - PG_buddy is set on a page iff it heads a block on free_area[order] of
//   this zone with page->order == order; no tail of a free block has it.
// - A free block is on free_area[o].clean iff PG_clean is set: all its pages
//   read as zero (never touched since onlining, or released with
//   MADV_DONTNEED). A merge is clean only if both halves were; a split keeps
//   the parent's state in both halves. PG_lazy marks a dirty-list block
//   released with MADV_FREE (no longer charged, contents undefined); a merge
//   drops it.
// - A free block's head holds in priv[1] the time it was last freed (coarse
//   monotonic ns); a merge keeps the newer time, a split the parent's.
//   Reclaim releases blocks by that age (decay).
// - free_pages == sum over orders of nr_free[o] << o; clean_pages likewise
//   over the clean lists.
// - A block reclaim has taken off the lists to release it has PG_isolated
//   (and no PG_buddy), its order in `order`, the isolating thread's id in
//   priv[2], and sits on `isolated`; isolated_pages counts its pages.
// - At every instant, not only under the lock, no two blocks with PG_buddy
//   or PG_isolated overlap: flags are cleared on a block before any block
//   containing it or contained in it is marked. A fork child relies on this
//   to rebuild the lists from the descriptors (fork_child_repair).
//
// Huge pages (thp=auto|always; none of this exists with thp=never, where
// huge_ stays null and every use below is one test of it): a "hugepage
// block" is an aligned order-9 block, 2 MiB, the unit the kernel maps with
// one PMD. The zone keeps one 16-bit word per such range (huge_):
// - bits 0..9: the range's pages on the free lists (0..512), kept by
//   add_block/del_block, so a block's range is known to be full or empty
//   with one load;
// - kRangeHuge: the page allocator asked for the range to be backed by a
//   huge page (MADV_HUGEPAGE on its section before any page was touched),
//   and no release of part of it has split it since. Reclaim then releases
//   a block smaller than the range only under pressure or when the range is
//   no longer dense (thp_dense % in use), and counts what it kept whole; a
//   release of the whole range (a free order-9/10 block, one madvise) keeps
//   the mark: the next fault maps a huge page again.
// - Allocation of a block smaller than the range looks at a few candidates
//   and takes the one in the fullest marked range (the kernel's and
//   Temeraire's "fill the fullest hugepage first"): the emptiest ranges then
//   drain to whole free 2 MiB blocks that can go back without a split.
//
// Lock order: a per-CPU page list lock may be held when taking the zone lock,
// never the reverse. The grow hook runs with the zone lock held and takes the
// node's hotplug lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/numa/numa.h"

namespace numaslub {

// A free block younger than this (by its stamp, the coarse clock: one or
// two ticks) is likely to be taken back at once by a program that churns
// big blocks: neither a trade for clean pages taken (release_debt) nor a
// reclaim burst releases it, only decay or pressure. `large` (64 KiB..16 MiB
// blocks reused within milliseconds) had its free pieces released and
// faulted back in: 17.5k pages in a 40 ms run (bursts 10k, trades 7k).
inline constexpr std::uint64_t kYoungBlockNs = 5000000;  // 5 ms

// The hugepage block: an aligned 2 MiB range (order 9 with 4 KiB pages).
inline constexpr unsigned kHugeOrder = 9;
inline constexpr std::size_t kHugePages = std::size_t{1} << kHugeOrder;

// Which free blocks smaller than 2 MiB inside a range marked huge reclaim
// may release (each release splits the range's huge page):
// - kNone: none. A burst of frees is under way: the range may still merge
//   into a whole free 2 MiB block, released in one madvise without a split.
// - kSparse: those of ranges no longer dense (decay: they stayed unused).
// - kAll: every one (pressure).
enum class HugeSplit : std::uint8_t { kNone, kSparse, kAll };

struct FreeArea {
  ListNode dirty;            // resident blocks, most recently freed first
  ListNode clean;            // blocks that read as zero
  std::size_t nr_free = 0;   // blocks on both lists
  std::size_t nr_clean = 0;  // blocks on the clean list
};

struct ZoneStats {
  std::uint64_t alloc[kNrOrders] = {};  // blocks handed out by the buddy lists, per order
  std::uint64_t free[kNrOrders] = {};   // blocks given back, per order
  std::uint64_t splits = 0;
  std::uint64_t merges = 0;
  std::uint64_t grow = 0;       // sections onlined into this zone
  std::uint64_t grow_fail = 0;  // allocations that found no block and could not grow
  std::uint64_t released = 0;   // pages given back to the OS (madvise)
  // Huge pages (zone.h's header):
  std::uint64_t thp_backed = 0;           // 2 MiB ranges advised huge and not split since
  std::uint64_t thp_advised = 0;          // 2 MiB ranges ever advised
  std::uint64_t thp_advise_fail = 0;      // sections whose MADV_HUGEPAGE the kernel refused
  std::uint64_t thp_split = 0;            // releases of part of a marked range (it is split)
  std::uint64_t thp_split_avoided = 0;    // blocks reclaim kept because releasing would split
  std::uint64_t thp_sparse_fallback = 0;  // sparse blocks put in a huge range: nothing else fit
  std::uint64_t traded = 0;               // pages released for clean pages taken (release_debt)
  std::uint64_t fit_runs = 0;             // exact runs served over adjacent blocks (fit_run_locked)
};

// Where a block may go in a zone with huge ranges (thp on). Dense blocks
// (slabs of classes up to a page: carving one writes every page of it) go
// into ranges backed by huge pages first. Sparse blocks (large blocks and
// slabs of bigger objects, of which a program may touch a few pages) go
// outside them while a block fits there, or a new section can come online:
// a touched byte of an advised 2 MiB range makes all of it resident, so a
// sparse block there would cost up to 2 MiB of RSS for a few used pages.
enum class Placement : std::uint8_t { kDense, kSparse };

class Zone {
 public:
  // Brings more memory into the zone (with the zone lock held): calls
  // online_locked() and returns true, or returns false when none can be had.
  // `huge_ok`: the section may be advised for huge pages (false when it
  // comes online for a sparse block).
  using GrowFn = bool (*)(void* ctx, Zone* zone, bool huge_ok);

  // base: address of zone pfn 0, aligned to kMaxBlockSize; map: descriptors
  // for the zone's pfns [0, spanned). No memory is free until onlined.
  void init(unsigned nid, std::uintptr_t base, Page* map, std::size_t spanned,
            GrowFn grow = nullptr, void* grow_ctx = nullptr);

  // Allocate / free one block (takes the lock). alloc returns the head page
  // with PG_clean set iff the block reads as zero, or nullptr.
  Page* alloc(unsigned order, bool want_clean = false, Placement where = Placement::kDense);
  void free(Page* page, unsigned order, bool clean = false);

  // The same with the lock already held; `grow` = false: never online a
  // new section, fail instead.
  Page* alloc_locked(unsigned order, bool want_clean, bool grow = true,
                     Placement where = Placement::kDense);
  void free_locked(Page* page, unsigned order, bool clean);
  // Frees the run of `pages` pages at page (any count, any start) as the
  // naturally aligned blocks it is made of, dirty unless `clean` (the
  // pages were never written since they were clean: the tail of a clean
  // block just cut); their heads' descriptors are reset first (flags,
  // head_off: an owner's marks go).
  void free_range_locked(Page* page, std::size_t pages, bool clean = false);
  // Memory was cached in front of the zone (a per-CPU run list): wakes
  // kswapd as a free into the zone would, when it waits for one (armed),
  // so that the idle drain and decay reach that memory too.
  void wake_if_armed_locked();

  // Releases free resident blocks to the OS, coldest first (tail of each
  // dirty list, highest order first), until at least max_pages were released
  // or none are left; they move to the clean lists. Returns pages released.
  std::size_t release_dirty_locked(int (*release)(void*, std::size_t), std::size_t max_pages);

  // Reclaim: the earliest free time among the coldest resident free blocks
  // (a bounded look at the cold end of each dirty list; ~0 when there are
  // none), for when decay will next find something to release.
  std::uint64_t oldest_dirty_stamp_locked() const;
  // Reclaim: takes up to max_pages of resident free blocks off the dirty
  // lists, largest and coldest first, skipping those freed after before_ns
  // and those already released lazily. Stores at most max_blocks heads in
  // out (each with its order in Page::order) and returns how many; *pages
  // gets their total. The caller releases them without the lock, then
  // returns them with putback_released_locked().
  // split: which blocks inside huge ranges may go (HugeSplit); the others
  // stay (thp_split_avoided), and thp_kept_pages gets their total when the
  // caller's limits did not cut the walk short.
  unsigned isolate_cold_locked(std::size_t max_pages, std::uint64_t before_ns, Page** out,
                               unsigned max_blocks, std::size_t* pages,
                               HugeSplit split = HugeSplit::kAll);
  // Returns isolated blocks: zeroed (MADV_DONTNEED) onto the clean lists,
  // else (MADV_FREE) onto the dirty lists marked PG_lazy. A block whose
  // release failed goes back with unisolate_locked() instead.
  void putback_released_locked(Page* const* blocks, unsigned n, bool zeroed);
  void unisolate_locked(Page* block);

  // In a fork child, before anything else allocates. `self` is the forking
  // thread's id in the parent. Blocks isolated by a thread that did not
  // survive the fork go back on the lists (dirty: their release may or may
  // not have happened). If the zone lock was held by such a thread, the
  // lists may be half-updated: they are rebuilt from the descriptors. A
  // zone whose lock `self` holds is left alone (that frame is mid-update
  // and finishes after the signal handler that forked returns).
  void fork_child_repair(std::uint32_t self);

  // Takes zone pfns [s, e) off the free lists if every page in it is free
  // (for growing an allocation in place); the rest of each free block it
  // cuts stays free. Returns false, changing nothing, when any page is not.
  bool claim_range_locked(std::size_t s, std::size_t e);

  // An exact run of `pages` (alloc_pages_exact's) over adjacent free blocks
  // when no resident block of its order is free: the run starts at any
  // page, so resident pieces that are neighbours but not buddies (the head
  // of a freed 2.1 MiB block and the free pages after it) serve a request
  // together. Without it the request takes a clean block of its rounded
  // order and faults every page in, while the pieces wait for reclaim or
  // are released for it (release_debt). The run with the most resident
  // pages among a bounded look at the dirty lists of the 3 orders below
  // the request's wins; none (null) when no run has any. The run's pages
  // are off the lists, its head's flags 0 (not zero); its clean pages
  // count as taken clean (release_debt). `sparse`: no page in a marked
  // huge range.
  Page* fit_run_locked(std::size_t pages, bool sparse);

  // Resident free pages: what reclaim may release.
  std::size_t dirty_pages() const { return free_pages - clean_pages - lazy_pages; }
  // Resident free pages an allocation may leave when it has to take clean
  // ones (release_debt): 1/kDirtyReserveShare of the zone, at least
  // kDirtyReserveMin.
  std::size_t dirty_reserve() const {
    std::size_t r = present_pages / kDirtyReserveShare;
    return r < kDirtyReserveMin ? kDirtyReserveMin : r;
  }
  static constexpr std::size_t kDirtyReserveShare = 32;
  static constexpr std::size_t kDirtyReserveMin = 256;  // 1 MiB

  // Memory hotplug: hand zone pfns [pfn, pfn + n) to the buddy lists as
  // clean blocks, as large as their alignment allows.
  void online_locked(std::size_t pfn, std::size_t n);

  // Huge pages. enable_thp (before the first online) makes the per-range
  // words, false when boot_alloc cannot: the zone then stays on base pages.
  bool enable_thp(std::uint32_t dense_pct);
  bool thp_enabled() const { return huge_ != nullptr; }
  // Marks the 2 MiB ranges of zone pfns [pfn, pfn + n) (aligned) as backed
  // by huge pages (their section was advised).
  void mark_huge_locked(std::size_t pfn, std::size_t n);
  bool range_huge(std::size_t pfn) const {
    return huge_ && (huge_[pfn >> kHugeOrder] & kRangeHuge);
  }
  // Free pages on the lists in pfn's 2 MiB range (0 without thp).
  std::size_t range_free(std::size_t pfn) const {
    return huge_ ? huge_[pfn >> kHugeOrder] & kRangeFreeMask : 0;
  }
  // Whether the zone is dense: at least thp_dense % of its onlined pages are
  // known to be touched (touched_pages). False before the first online.
  bool dense() const;
  // Pages of allocated blocks that their owner has written, every one, the
  // moment it took them (account_touched: slabs whose free pointers reach
  // every page). Pages merely allocated do not count: a program may never
  // touch most of a large block, and a huge page over it would make all of
  // it resident. Atomic: owners update it without the zone lock.
  std::atomic<std::size_t> touched_pages{0};

  std::size_t pfn(const Page* p) const { return static_cast<std::size_t>(p - map_); }
  Page* pfn_to_page(std::size_t pfn) const { return map_ + pfn; }
  void* address(const Page* p) const {
    return reinterpret_cast<void*>(base_ + (pfn(p) << kPageShift));
  }
  bool contains(const Page* p) const { return p >= map_ && p < map_ + spanned_pages; }
  unsigned nid() const { return nid_; }

  Mutex lock;
  FreeArea free_area[kNrOrders];
  std::size_t spanned_pages = 0;   // pages the zone may grow to
  std::size_t present_pages = 0;   // pages onlined
  std::size_t free_pages = 0;      // pages on the buddy lists
  std::size_t clean_pages = 0;     // of those, pages that read as zero
  std::size_t lazy_pages = 0;      // of those, pages released with MADV_FREE
  std::size_t isolated_pages = 0;  // off the lists while reclaim releases them
  ListNode isolated;               // those blocks (PG_isolated), linked by lru
  // Watermarks over free resident ("dirty") pages, for reclaim: above high
  // the zone caches too much; min/low/high are 1x/2x/3x the scaled gap.
  std::size_t wmark_min = 0, wmark_low = 0, wmark_high = 0;
  std::uint32_t watermark_scale = 1000;
  ZoneStats stats;

  // The reclaim layer's wake-up (kswapd). Called with the zone lock held when
  // a free leaves more than wmark_high resident free pages, or when
  // kswapd_armed (kswapd sleeps until there is something to age); at most
  // once until kswapd clears wake_pending.
  using WakeFn = void (*)(void* ctx, unsigned nid);
  WakeFn wake_fn = nullptr;
  void* wake_ctx = nullptr;
  bool kswapd_armed = false;
  bool wake_pending = false;
  // Bumped (zone lock held) by a reclaim thread that goes to sleep armed,
  // with nothing left to age or drain. A CPU wakes it for its runs
  // (wake_if_armed_locked) only when this moved since its last such wake
  // (PerCpuPages::run_wake_seen): a run cached after the thread looked is
  // then drained when its CPU idles, while a CPU that frees and reuses one
  // run in a loop takes no zone lock for it. Before a thread runs it never
  // moves: runs cannot start one (only the zone's own pages count).
  std::atomic<std::uint32_t> run_wake_seq{0};
  // Pages handed out from the clean lists (the heap's RSS grows by them)
  // while more than dirty_reserve() resident pages were free, in blocks too
  // small for the request (take_block prefers resident ones of any order):
  // the page allocator releases as many of those, coldest first and none
  // younger than kYoungBlockNs, before it returns
  // (PageAllocator::pay_release_debt), so a heap cut into pieces too small
  // for its requests does not grow its RSS by what it cannot use. What
  // only young pieces could pay is forgiven: the program is about to take
  // them back (or decay releases them). Written under the lock; read
  // without it (relaxed) to see whether there is anything to pay.
  std::atomic<std::size_t> release_debt{0};
  // Resident free pages the last full reclaim walk kept whole inside dense
  // huge ranges (a hint, 0 without thp): the wake-up and burst marks count
  // above them, so a process that keeps them is not woken for them.
  std::size_t thp_kept_pages = 0;

 private:
  // `sparse`: only blocks outside every marked range (Placement::kSparse
  // in a zone with huge ranges); null when none is among the candidates.
  Page* take_block(unsigned order, bool want_clean, bool sparse, unsigned* got_order);
  // The block of `list` (free_area[order]'s dirty or clean list, not
  // empty) to take, or null for a sparse request that finds none.
  Page* pick_block(ListNode* list, unsigned order, bool sparse) const;
  // `pages` clean pages were handed out to a request that did not ask for
  // zeroed memory: while more than dirty_reserve() resident pages are
  // free, as many of those are owed back (release_debt).
  void owe_for_clean_locked(std::size_t pages);
  // state: 0 (dirty), PG_clean or PG_lazy.
  void add_block(Page* p, unsigned order, std::uint32_t state, std::uint64_t stamp);
  void del_block(Page* p, unsigned order);
  void merge_and_add(std::size_t pfn, unsigned order, std::uint32_t state, std::uint64_t stamp);
  void update_watermarks();
  void rebuild_lists();
  // Huge-range words: a block of `order` at pfn joins (add) or leaves the lists.
  void account_range(std::size_t pfn, unsigned order, bool add);
  // Whether reclaim should keep the free block p (order o) to avoid a split:
  // under kSparse, when its range is marked and dense; under kNone, marked.
  bool keeps_whole(const Page* p, unsigned order, HugeSplit split = HugeSplit::kSparse) const;
  // A block of `order` at pfn is released: a part of a marked range splits it.
  void note_release(std::size_t pfn, unsigned order);

  static constexpr std::uint16_t kRangeHuge = 0x8000;
  static constexpr std::uint16_t kRangeFreeMask = 0x3ff;
  std::uint16_t* huge_ = nullptr;  // per 2 MiB range of the span (null: thp off)
  std::uint32_t thp_dense_pct_ = 75;

  unsigned nid_ = 0;
  std::uintptr_t base_ = 0;
  Page* map_ = nullptr;
  GrowFn grow_ = nullptr;
  void* grow_ctx_ = nullptr;
};

}  // namespace numaslub
