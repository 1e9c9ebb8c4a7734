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
// Lock order: a per-CPU page list lock may be held when taking the zone lock,
// never the reverse. The grow hook runs with the zone lock held and takes the
// node's hotplug lock.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/numa/numa.h"

namespace numaslub {

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
};

class Zone {
 public:
  // Brings more memory into the zone (with the zone lock held): calls
  // online_locked() and returns true, or returns false when none can be had.
  using GrowFn = bool (*)(void* ctx, Zone* zone);

  // base: address of zone pfn 0, aligned to kMaxBlockSize; map: descriptors
  // for the zone's pfns [0, spanned). No memory is free until onlined.
  void init(unsigned nid, std::uintptr_t base, Page* map, std::size_t spanned,
            GrowFn grow = nullptr, void* grow_ctx = nullptr);

  // Allocate / free one block (takes the lock). alloc returns the head page
  // with PG_clean set iff the block reads as zero, or nullptr.
  Page* alloc(unsigned order, bool want_clean = false);
  void free(Page* page, unsigned order, bool clean = false);

  // The same with the lock already held; `grow` = false: never online a
  // new section, fail instead.
  Page* alloc_locked(unsigned order, bool want_clean, bool grow = true);
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
  unsigned isolate_cold_locked(std::size_t max_pages, std::uint64_t before_ns, Page** out,
                               unsigned max_blocks, std::size_t* pages);
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

  // Resident free pages: what reclaim may release.
  std::size_t dirty_pages() const { return free_pages - clean_pages - lazy_pages; }

  // Memory hotplug: hand zone pfns [pfn, pfn + n) to the buddy lists as
  // clean blocks, as large as their alignment allows.
  void online_locked(std::size_t pfn, std::size_t n);

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

 private:
  Page* take_block(unsigned order, bool want_clean, unsigned* got_order);
  // state: 0 (dirty), PG_clean or PG_lazy.
  void add_block(Page* p, unsigned order, std::uint32_t state, std::uint64_t stamp);
  void del_block(Page* p, unsigned order);
  void merge_and_add(std::size_t pfn, unsigned order, std::uint32_t state, std::uint64_t stamp);
  void update_watermarks();
  void rebuild_lists();

  unsigned nid_ = 0;
  std::uintptr_t base_ = 0;
  Page* map_ = nullptr;
  GrowFn grow_ = nullptr;
  void* grow_ctx_ = nullptr;
};

}  // namespace numaslub
