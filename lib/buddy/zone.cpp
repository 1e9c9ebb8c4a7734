#include "lib/buddy/zone.h"

#include "lib/base/base.h"

namespace numaslub {

namespace {
// The order of the free block p heads, or -1 when p heads none. The zone
// lock is held, but p may be a page another thread owns (the buddy of a
// block being freed, an aligned block around it, a page next to a range
// being claimed), its owner writing its descriptor without the lock. Benign
// by construction, as in the kernel's __free_one_page: PG_buddy is set and
// cleared under the zone lock alone, so an owned page never has it, an
// aligned 4-byte read cannot tear, and order is read only once PG_buddy is
// seen. Hidden from ThreadSanitizer (NS_DATA_RACE_FN): this is the one
// racy read of the buddy.
NS_DATA_RACE_FN int free_order(const Page* p) {
  return (p->flags & PG_buddy) ? p->order : -1;
}
}  // namespace

void Zone::init(unsigned nid, std::uintptr_t base, Page* map, std::size_t spanned, GrowFn grow,
                void* grow_ctx) {
  NS_CHECK(base % kMaxBlockSize == 0, "zone base %p is not aligned to %zu", (void*)base,
           kMaxBlockSize);
  nid_ = nid;
  base_ = base;
  map_ = map;
  spanned_pages = spanned;
  grow_ = grow;
  grow_ctx_ = grow_ctx;
  for (FreeArea& a : free_area) {
    a.dirty.init();
    a.clean.init();
    a.nr_free = a.nr_clean = 0;
  }
  isolated.init();
}

void Zone::add_block(Page* p, unsigned order, std::uint32_t state, std::uint64_t stamp) {
  FreeArea& a = free_area[order];
  bool clean = state & PG_clean;
  // Order and stamp before the flag, every overlapping mark cleared before
  // it (the fences order the stores as a fork child may see them).
  p->order = static_cast<std::uint8_t>(order);
  p->priv[1] = stamp;
  signal_fence();
  p->flags = PG_buddy | state;
  // Lazily released blocks go to the cold end, fresh frees to the hot end.
  if (state & PG_lazy)
    a.dirty.push_back(&p->lru);
  else
    (clean ? a.clean : a.dirty).push_front(&p->lru);
  ++a.nr_free;
  free_pages += std::size_t{1} << order;
  if (clean) {
    ++a.nr_clean;
    clean_pages += std::size_t{1} << order;
  }
  if (state & PG_lazy) lazy_pages += std::size_t{1} << order;
  if (huge_) account_range(pfn(p), order, true);
}

void Zone::del_block(Page* p, unsigned order) {
  FreeArea& a = free_area[order];
  ListNode::unlink(&p->lru);
  --a.nr_free;
  free_pages -= std::size_t{1} << order;
  if (p->flags & PG_clean) {
    --a.nr_clean;
    clean_pages -= std::size_t{1} << order;
  }
  if (p->flags & PG_lazy) lazy_pages -= std::size_t{1} << order;
  if (huge_) account_range(pfn(p), order, false);
  p->flags &= ~(PG_buddy | PG_lazy);
  signal_fence();
}

Page* Zone::take_block(unsigned order, bool want_clean, bool sparse, unsigned* got_order) {
  // Resident memory first, of any order that fits: a dirty block costs no
  // page fault and no RSS, a clean one of the exact order costs both. So
  // a request splits a larger dirty block before it touches a clean one
  // (jemalloc's dirty extents likewise serve any size before retained
  // memory is faulted in again): otherwise a heap whose frees left big
  // dirty blocks grows its RSS by what it takes from clean ones, the dirty
  // ones waiting for decay. A caller that wants zeroed memory looks at the
  // clean lists first instead: a clean block is zero for free.
  for (int pass = 0; pass < 2; ++pass) {
    bool clean_pass = (pass == 0) == want_clean;
    for (unsigned o = order; o < kNrOrders; ++o) {
      FreeArea& a = free_area[o];
      ListNode* list = clean_pass ? &a.clean : &a.dirty;
      if (list->empty()) continue;
      Page* p = pick_block(list, o, sparse);
      if (!p) continue;
      del_block(p, o);
      *got_order = o;
      return p;
    }
  }
  return nullptr;
}

Page* Zone::pick_block(ListNode* list, unsigned order, bool sparse) const {
  ListNode* n = list->next;
  if (!huge_ || (order >= kHugeOrder && !sparse)) return list_entry<Page>(n, offsetof(Page, lru));
  // Of the first few blocks (bounded, so the lock is held no longer than a
  // few cache misses), the one in the range with the fewest free pages:
  // dense blocks fill the fullest huge range first (unmarked ranges last);
  // sparse ones take only unmarked ranges, the fullest first.
  constexpr unsigned kCandidates = 8;
  ListNode* best = nullptr;
  std::size_t best_score = ~std::size_t{0};
  unsigned seen = 0;
  for (ListNode* it = n; it != list && seen < kCandidates; it = it->next, ++seen) {
    std::size_t pf = pfn(list_entry<Page>(it, offsetof(Page, lru)));
    // An order-10 block spans two ranges; a partial release may have
    // cleared the mark of one only.
    bool marked = range_huge(pf) || (order > kHugeOrder && range_huge(pf + kHugePages));
    if (sparse && marked) continue;
    std::size_t score = range_free(pf) + (sparse || marked ? 0 : kHugePages + 1);
    if (score < best_score) {
      best_score = score;
      best = it;
    }
  }
  return best ? list_entry<Page>(best, offsetof(Page, lru)) : nullptr;
}

Page* Zone::alloc_locked(unsigned order, bool want_clean, bool grow, Placement where) {
  NS_CHECK(order <= kMaxOrder, "alloc of order %u", order);
  unsigned o;
  // A sparse block takes a marked range's memory only when nothing else
  // fits and the zone cannot grow (Placement says why).
  bool sparse = huge_ && where == Placement::kSparse;
  Page* p = take_block(order, want_clean, sparse, &o);
  if (!p && grow && grow_) {
    if (grow_(grow_ctx_, this, !sparse)) {
      ++stats.grow;
      p = take_block(order, want_clean, sparse, &o);
    }
  }
  if (!p && sparse) {
    p = take_block(order, want_clean, false, &o);
    if (p) ++stats.thp_sparse_fallback;
  }
  if (!p) {
    ++stats.grow_fail;
    return nullptr;
  }
  bool clean = p->flags & PG_clean;
  if (clean && !want_clean) owe_for_clean_locked(std::size_t{1} << order);
  std::uint32_t state = p->flags & (PG_clean | PG_lazy);
  std::uint64_t stamp = p->priv[1];
  // Split: keep the lower half, give the upper half back at each step.
  while (o > order) {
    --o;
    add_block(p + (std::size_t{1} << o), o, state, stamp);
    ++stats.splits;
  }
  p->flags = clean ? PG_clean : 0u;
  p->order = static_cast<std::uint8_t>(order);
  ++stats.alloc[order];
  return p;
}

void Zone::merge_and_add(std::size_t pfn, unsigned order, std::uint32_t state,
                         std::uint64_t stamp) {
  while (order < kMaxOrder) {
    std::size_t buddy_pfn = pfn ^ (std::size_t{1} << order);
    if (buddy_pfn >= spanned_pages) break;
    Page* buddy = map_ + buddy_pfn;
    if (free_order(buddy) != static_cast<int>(order)) break;
    // Clean (or lazy) only if both halves are; the newer free time wins.
    state &= buddy->flags & (PG_clean | PG_lazy);
    if (buddy->priv[1] > stamp) stamp = buddy->priv[1];
    del_block(buddy, order);
    pfn &= buddy_pfn;
    ++order;
    ++stats.merges;
  }
  add_block(map_ + pfn, order, state, stamp);
}

void Zone::free_locked(Page* page, unsigned order, bool clean) {
  std::size_t pfn = this->pfn(page);
  NS_CHECK(contains(page) && order <= kMaxOrder && (pfn & ((std::size_t{1} << order) - 1)) == 0,
           "free of bad page block %p (order %u)", address(page), order);
  NS_CHECK(!(page->flags & (PG_buddy | PG_pcp)), "double free of page block %p (order %u)",
           address(page), order);
  // A block freed twice after merging with its buddy no longer has PG_buddy
  // on its own head: look for a free block that contains it instead (at most
  // one aligned candidate per larger order).
  for (unsigned o = order + 1; o <= kMaxOrder; ++o) {
    std::size_t head = pfn & ~((std::size_t{1} << o) - 1);
    const Page* h = map_ + head;
    const int ho = free_order(h);
    NS_CHECK(!(ho >= 0 && head + (std::size_t{1} << ho) > pfn),
             "double free of page block %p (order %u) inside free block %p", address(page), order,
             address(h));
  }
  ++stats.free[order];
  merge_and_add(pfn, order, clean ? PG_clean : 0u, clean ? 0 : now_coarse_ns());
  if (NS_UNLIKELY(wake_fn != nullptr) && !clean && !wake_pending &&
      (kswapd_armed || dirty_pages() > wmark_high + thp_kept_pages)) {
    wake_pending = true;
    kswapd_armed = false;
    wake_fn(wake_ctx, nid_);
  }
}

void Zone::free_range_locked(Page* page, std::size_t pages, bool clean) {
  // Zone pfns have the heap's alignment (the base is aligned to the largest
  // block), and a block grown in place is no longer aligned to its size:
  // each piece is as large as its start's alignment and the rest allow.
  std::size_t from = pfn(page), to = from + pages;
  while (from < to) {
    unsigned order = static_cast<unsigned>(__builtin_ctzll(from | kMaxBlockPages));
    while ((std::size_t{1} << order) > to - from) --order;
    Page* p = map_ + from;
    // Stale bits (an owner's marks, PG_clean of a block since split) go;
    // the marks of a free block never are stale: this is a double free.
    NS_CHECK(!(p->flags & (PG_buddy | PG_pcp | PG_isolated)),
             "double free of page block %p (order %u) in a run of %zu pages", address(p), order,
             pages);
    p->flags = 0;
    p->head_off = 0;
    free_locked(p, order, clean);
    from += std::size_t{1} << order;
  }
}

void Zone::wake_if_armed_locked() {
  if (NS_UNLIKELY(wake_fn != nullptr) && !wake_pending && kswapd_armed) {
    wake_pending = true;
    kswapd_armed = false;
    wake_fn(wake_ctx, nid_);
  }
}

unsigned Zone::isolate_cold_locked(std::size_t max_pages, std::uint64_t before_ns, Page** out,
                                   unsigned max_blocks, std::size_t* pages, HugeSplit split) {
  unsigned n = 0;
  std::size_t got = 0, kept = 0;
  for (unsigned o = kNrOrders; o-- > 0 && n < max_blocks && got < max_pages;) {
    ListNode* head = &free_area[o].dirty;
    // Bounded walk from the cold end so the lock is never held for long.
    unsigned visits = 0;
    for (ListNode* it = head->prev;
         it != head && n < max_blocks && got < max_pages && visits < 1024; ++visits) {
      Page* p = list_entry<Page>(it, offsetof(Page, lru));
      it = it->prev;
      if ((p->flags & PG_lazy) || p->priv[1] > before_ns) continue;
      if (huge_ && split != HugeSplit::kAll && keeps_whole(p, o, split)) {
        ++stats.thp_split_avoided;
        kept += std::size_t{1} << o;
        continue;
      }
      if (huge_) note_release(pfn(p), o);
      del_block(p, o);
      p->order = static_cast<std::uint8_t>(o);
      p->priv[2] = this_thread_id();
      signal_fence();
      p->flags |= PG_isolated;
      isolated.push_back(&p->lru);
      out[n++] = p;
      got += std::size_t{1} << o;
      isolated_pages += std::size_t{1} << o;
    }
  }
  // A walk the caller's limits did not cut short saw what the next one will
  // (the bounded walk from the cold end meets the same blocks first).
  if (huge_ && n < max_blocks && got < max_pages) thp_kept_pages = kept;
  *pages = got;
  return n;
}

std::uint64_t Zone::oldest_dirty_stamp_locked() const {
  std::uint64_t oldest = ~0ULL;
  for (unsigned o = 0; o < kNrOrders; ++o) {
    const ListNode* head = &free_area[o].dirty;
    unsigned visits = 0;
    for (const ListNode* it = head->prev; it != head && visits < 32; it = it->prev, ++visits) {
      const Page* p = list_entry<Page>(const_cast<ListNode*>(it), offsetof(Page, lru));
      if (!(p->flags & PG_lazy) && p->priv[1] < oldest && !(huge_ && keeps_whole(p, o)))
        oldest = p->priv[1];
    }
  }
  return oldest;
}

void Zone::putback_released_locked(Page* const* blocks, unsigned n, bool zeroed) {
  for (unsigned i = 0; i < n; ++i) {
    Page* p = blocks[i];
    std::size_t pages = std::size_t{1} << p->order;
    stats.released += pages;
    isolated_pages -= pages;
    ListNode::unlink(&p->lru);
    p->flags &= ~PG_isolated;
    signal_fence();
    merge_and_add(pfn(p), p->order, zeroed ? PG_clean : PG_lazy, 0);
  }
}

void Zone::unisolate_locked(Page* block) {
  isolated_pages -= std::size_t{1} << block->order;
  ListNode::unlink(&block->lru);
  block->flags &= ~PG_isolated;
  signal_fence();
  free_locked(block, block->order, false);
}

void Zone::rebuild_lists() {
  for (FreeArea& a : free_area) {
    a.dirty.init();
    a.clean.init();
    a.nr_free = a.nr_clean = 0;
  }
  free_pages = clean_pages = lazy_pages = isolated_pages = 0;
  isolated.init();
  // The range words count free pages again from nothing; the marks stay.
  for (std::size_t r = 0; huge_ && r < (spanned_pages + kHugePages - 1) / kHugePages; ++r)
    huge_[r] &= kRangeHuge;
  // Online zone pfns are [0, present_pages). Marked blocks never overlap
  // (zone.h), so a walk that skips each marked block whole sees every one.
  for (std::size_t pfn = 0; pfn < present_pages;) {
    Page* p = map_ + pfn;
    unsigned o = p->order;
    std::size_t n = std::size_t{1} << o;
    bool sane = o <= kMaxOrder && (pfn & (n - 1)) == 0 && pfn + n <= present_pages;
    if (sane && (p->flags & PG_buddy)) {
      add_block(p, o, p->flags & (PG_clean | PG_lazy), p->priv[1]);
      pfn += n;
    } else if (sane && (p->flags & PG_isolated)) {
      isolated_pages += n;
      isolated.push_back(&p->lru);  // fork_child_repair returns the orphans
      pfn += n;
    } else {
      ++pfn;
    }
  }
}

void Zone::fork_child_repair(std::uint32_t self) {
  if (lock.owner() == self) return;
  if (lock.reset_if_orphaned(self)) rebuild_lists();
  // Blocks isolated by threads that are gone: nobody will put them back.
  for (ListNode* it = isolated.next; it != &isolated;) {
    Page* p = list_entry<Page>(it, offsetof(Page, lru));
    it = it->next;
    if (p->priv[2] != self) unisolate_locked(p);
  }
}

Page* Zone::alloc(unsigned order, bool want_clean, Placement where) {
  // Reclaim has blocks off the lists while it madvises them: they are free
  // memory of this zone, so wait for them rather than fail, fall back to
  // another node, or online a new section (the heap would grow while it is
  // giving memory back); but not forever (a release can stall, and an
  // isolating thread can die with them in a fork child that missed the
  // repair): past the deadline the zone grows, or this is out of memory.
  constexpr std::uint64_t kIsolatedWaitNs = 200'000'000;
  std::uint64_t deadline = 0;
  bool expired = false;
  for (;;) {
    Page* p;
    bool wait;
    {
      LockGuard<Mutex> g(lock);
      bool hold = !expired && isolated_pages >= (std::size_t{1} << order);
      p = alloc_locked(order, want_clean, !hold, where);
      wait = !p && !expired && isolated_pages > 0;
    }
    if (!wait) return p;
    std::uint64_t now = now_coarse_ns();
    if (deadline == 0) deadline = now + kIsolatedWaitNs;
    expired = now > deadline;
    sys::sched_yield();
  }
}

void Zone::free(Page* page, unsigned order, bool clean) {
  LockGuard<Mutex> g(lock);
  free_locked(page, order, clean);
}

std::size_t Zone::release_dirty_locked(int (*release)(void*, std::size_t), std::size_t max_pages) {
  std::size_t done = 0;
  for (unsigned o = kNrOrders; o-- > 0 && done < max_pages;) {
    FreeArea& a = free_area[o];
    while (done < max_pages && !a.dirty.empty()) {
      Page* p = list_entry<Page>(a.dirty.prev, offsetof(Page, lru));
      if (release(address(p), kPageSize << o) != 0) return done;
      if (huge_) note_release(pfn(p), o);
      ListNode::unlink(&p->lru);
      if (p->flags & PG_lazy) lazy_pages -= std::size_t{1} << o;
      p->flags = (p->flags & ~PG_lazy) | PG_clean;
      a.clean.push_front(&p->lru);
      ++a.nr_clean;
      clean_pages += std::size_t{1} << o;
      done += std::size_t{1} << o;
    }
  }
  stats.released += done;
  return done;
}

namespace {
// The free block (head pfn, order) that contains pfn x, if any. Only pfns
// below `online` may be read: sections come online bottom up, and the
// descriptors of the rest are not even mapped.
bool free_block_of(const Page* map, std::size_t online, std::size_t x, std::size_t* head,
                   unsigned* order) {
  for (unsigned o = 0; o <= kMaxOrder; ++o) {
    std::size_t h = x & ~((std::size_t{1} << o) - 1);
    if (h >= online) return false;
    if (free_order(&map[h]) == static_cast<int>(o)) {
      *head = h;
      *order = o;
      return true;
    }
  }
  return false;
}
}  // namespace

bool Zone::claim_range_locked(std::size_t s, std::size_t e) {
  // Zone pfns [0, present_pages) are online (sections come online in order).
  if (s >= e || e > present_pages) return false;
  std::size_t h;
  unsigned o;
  for (std::size_t x = s; x < e; x = h + (std::size_t{1} << o))
    if (!free_block_of(map_, present_pages, x, &h, &o)) return false;
  for (std::size_t x = s; x < e;) {
    free_block_of(map_, present_pages, x, &h, &o);
    std::size_t end = h + (std::size_t{1} << o);
    std::uint32_t state = map_[h].flags & (PG_clean | PG_lazy);
    std::uint64_t stamp = map_[h].priv[1];
    del_block(map_ + h, o);
    // Give back what lies outside [s, e), as aligned blocks; being parts of
    // one free block, no two of them are buddies of each other.
    auto give_back = [&](std::size_t from, std::size_t to) {
      while (from < to) {
        unsigned k = static_cast<unsigned>(__builtin_ctzll(from | (std::size_t{1} << kMaxOrder)));
        while ((std::size_t{1} << k) > to - from) --k;
        add_block(map_ + from, k, state, stamp);
        from += std::size_t{1} << k;
      }
    };
    give_back(h, h > s ? h : s);
    give_back(end < e ? end : e, end);
    x = end;
  }
  return true;
}

void Zone::owe_for_clean_locked(std::size_t pages) {
  if (pages && dirty_pages() > dirty_reserve())
    release_debt.store(release_debt.load(std::memory_order_relaxed) + pages,
                       std::memory_order_relaxed);
}

Page* Zone::fit_run_locked(std::size_t pages, bool sparse) {
  if (pages < 2 || pages > (std::size_t{1} << kMaxOrder)) return nullptr;
  unsigned order = ilog2_ceil(pages);
  for (unsigned o = order; o < kNrOrders; ++o)
    if (!free_area[o].dirty.empty()) return nullptr;  // take_block splits it: no fault either
  // Bounds on the work under the lock: candidates per order, blocks walked
  // on each side of one.
  constexpr unsigned kPieceOrders = 3, kCandidates = 4, kSide = 16;
  struct Piece {
    std::size_t start, len;
    bool dirty;
  };
  Piece run[2 * kSide + 1];
  std::size_t best_s = 0, best_dirty = 0;
  unsigned lowest = order > kPieceOrders ? order - kPieceOrders : 0;
  for (unsigned o = order; o-- > lowest;) {
    ListNode* list = &free_area[o].dirty;
    unsigned seen = 0;
    for (ListNode* it = list->next; it != list && seen < kCandidates; it = it->next, ++seen) {
      const std::size_t b = pfn(list_entry<Page>(it, offsetof(Page, lru)));
      // The free blocks before b (walked backwards, then put in order), b,
      // and the free blocks after it, each side no farther than a run.
      unsigned n = 0;
      std::size_t h;
      unsigned ho;
      for (std::size_t x = b; n < kSide && x > 0 && b - x < pages &&
                              free_block_of(map_, present_pages, x - 1, &h, &ho);
           x = h)
        run[n++] = {h, std::size_t{1} << ho, !(map_[h].flags & PG_clean)};
      for (unsigned i = 0; i < n / 2; ++i) {
        Piece t = run[i];
        run[i] = run[n - 1 - i];
        run[n - 1 - i] = t;
      }
      run[n++] = {b, std::size_t{1} << o, true};
      const std::size_t b_end = b + (std::size_t{1} << o);
      for (std::size_t y = b_end;
           n < 2 * kSide + 1 && y - b_end < pages && free_block_of(map_, present_pages, y, &h, &ho);
           y = h + (std::size_t{1} << ho))
        run[n++] = {h, std::size_t{1} << ho, !(map_[h].flags & PG_clean)};
      const std::size_t run_s = run[0].start, run_e = run[n - 1].start + run[n - 1].len;
      if (run_e - run_s < pages) continue;
      // Windows that start at a piece's start or end at a piece's end: a
      // best window (most resident pages) is among them.
      auto dirty_in = [&](std::size_t s, std::size_t e) {
        std::size_t d = 0;
        for (unsigned i = 0; i < n; ++i) {
          std::size_t ps = run[i].start, pe = ps + run[i].len;
          if (run[i].dirty && pe > s && ps < e) d += (pe < e ? pe : e) - (ps > s ? ps : s);
        }
        return d;
      };
      auto in_marked = [&](std::size_t s) {
        for (std::size_t r = s >> kHugeOrder; r <= (s + pages - 1) >> kHugeOrder; ++r)
          if (range_huge(r << kHugeOrder)) return true;
        return false;
      };
      for (unsigned i = 0; i < n; ++i) {
        std::size_t tries[2] = {run[i].start, run[i].start + run[i].len - pages};
        for (std::size_t s : tries) {
          if (s < run_s || s + pages > run_e || s > run_e) continue;
          if (sparse && huge_ && in_marked(s)) continue;
          std::size_t d = dirty_in(s, s + pages);
          if (d > best_dirty) {
            best_dirty = d;
            best_s = s;
          }
        }
      }
      if (best_dirty == pages) break;
    }
    if (best_dirty == pages) break;
  }
  if (best_dirty == 0) return nullptr;
  bool claimed = claim_range_locked(best_s, best_s + pages);
  NS_CHECK(claimed, "fit_run_locked: run at pfn %zu is not free", best_s);
  ++stats.fit_runs;
  owe_for_clean_locked(pages - best_dirty);
  Page* head = map_ + best_s;
  head->flags = 0;
  return head;
}

void Zone::online_locked(std::size_t pfn, std::size_t n) {
  NS_CHECK(pfn + n <= spanned_pages, "online beyond zone span");
  present_pages += n;
  while (n) {
    unsigned order = kMaxOrder;
    if (pfn)
      order = __builtin_ctzll(pfn) < static_cast<int>(kMaxOrder)
                  ? static_cast<unsigned>(__builtin_ctzll(pfn))
                  : kMaxOrder;
    while ((std::size_t{1} << order) > n) --order;
    map_[pfn].flags = 0;
    merge_and_add(pfn, order, PG_clean, 0);
    pfn += std::size_t{1} << order;
    n -= std::size_t{1} << order;
  }
  update_watermarks();
}

bool Zone::enable_thp(std::uint32_t dense_pct) {
  std::size_t ranges = (spanned_pages + kHugePages - 1) / kHugePages;
  huge_ = static_cast<std::uint16_t*>(boot_alloc(ranges * sizeof(std::uint16_t)));
  thp_dense_pct_ = dense_pct > 100 ? 100 : dense_pct;
  return huge_ != nullptr;
}

void Zone::mark_huge_locked(std::size_t pfn, std::size_t n) {
  if (!huge_) return;
  for (std::size_t r = pfn >> kHugeOrder; r < (pfn + n) >> kHugeOrder; ++r) {
    if (huge_[r] & kRangeHuge) continue;
    huge_[r] |= kRangeHuge;
    ++stats.thp_backed;
    ++stats.thp_advised;
  }
}

bool Zone::dense() const {
  if (!present_pages) return false;
  std::size_t touched = touched_pages.load(std::memory_order_relaxed);
  return touched * 100 >= std::size_t{thp_dense_pct_} * present_pages;
}

void Zone::account_range(std::size_t pfn, unsigned order, bool add) {
  std::size_t r = pfn >> kHugeOrder;
  if (order >= kHugeOrder) {
    // A block of whole ranges: each is all free, or none of it is.
    for (std::size_t i = 0; i < std::size_t{1} << (order - kHugeOrder); ++i)
      huge_[r + i] =
          static_cast<std::uint16_t>((huge_[r + i] & kRangeHuge) | (add ? kHugePages : 0));
    return;
  }
  if (add)
    huge_[r] = static_cast<std::uint16_t>(huge_[r] + (1u << order));
  else
    huge_[r] = static_cast<std::uint16_t>(huge_[r] - (1u << order));
}

bool Zone::keeps_whole(const Page* p, unsigned order, HugeSplit split) const {
  if (order >= kHugeOrder) return false;  // the whole range goes in one madvise
  std::size_t pf = pfn(p);
  if (!range_huge(pf) || split == HugeSplit::kAll) return false;
  if (split == HugeSplit::kNone) return true;
  std::size_t used = kHugePages - range_free(pf);
  return used * 100 >= std::size_t{thp_dense_pct_} * kHugePages;
}

void Zone::note_release(std::size_t pfn, unsigned order) {
  if (order >= kHugeOrder || !range_huge(pfn)) return;
  huge_[pfn >> kHugeOrder] &= static_cast<std::uint16_t>(~kRangeHuge);
  --stats.thp_backed;
  ++stats.thp_split;
}

void Zone::update_watermarks() {
  std::size_t gap = present_pages * watermark_scale / 10000;
  // At least 8 MiB between marks: a small heap that frees a few large blocks
  // and allocates them again (a realloc chain) must not have them released
  // and faulted back in each time; decay still releases them when unused.
  if (gap < 2048) gap = 2048;
  wmark_min = gap;
  wmark_low = 2 * gap;
  wmark_high = 3 * gap;
}

}  // namespace numaslub
