// Tests for lib/buddy: a zone on a plain mmapped region (split and merge with
// exact free_area counts, a randomized model test against a reference map,
#include <chrono>
#include <thread>

#include "tests/buddy_test_util.h"
#include "tests/test_mincore.h"

namespace numaslub {
namespace {

using namespace buddytest;

TEST(BuddyZone, OnlineUnalignedRangeUsesAlignedBlocks) {
  PlainZone pz(8 * MiB, false);
  Zone& z = pz.z;
  LockGuard<Mutex> g(z.lock);
  z.online_locked(3, 1021);  // 3 | 4..7 | 8..15 | ... | 512..1023
  EXPECT_EQ(nr_free(z), (Counts{1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0}));
  EXPECT_EQ(z.free_pages, 1021u);
  z.online_locked(0, 3);  // fills the hole: everything merges into one block
  EXPECT_EQ(nr_free(z), only_max(1));
  EXPECT_EQ(z.clean_pages, 1024u);
  z.online_locked(1024, 1024);
  EXPECT_EQ(nr_free(z), only_max(2));
  EXPECT_EQ(z.stats.free[0] + z.stats.free[kMaxOrder], 0u);  // onlining is not a free
}

TEST(BuddyZone, SplitAndMergeExactCounts) {
  PlainZone pz(64 * MiB);
  Zone& z = pz.z;
  EXPECT_EQ(nr_free(z), only_max(16));  // onlining gives maximal clean blocks
  EXPECT_EQ(z.free_area[kMaxOrder].nr_clean, 16u);
  EXPECT_EQ(z.clean_pages, pz.pages());
  Page* a = z.alloc(0);
  ASSERT_NE(a, nullptr);
  Counts c{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 15};
  EXPECT_EQ(nr_free(z), c);  // one order-10 block split down to order 0
  EXPECT_EQ(z.stats.splits, 10u);
  EXPECT_EQ(z.free_pages, pz.pages() - 1);

  Page* b = z.alloc(0);  // the other half of the last split
  EXPECT_EQ(z.pfn(b), z.pfn(a) ^ 1);
  c[0] = 0;
  EXPECT_EQ(nr_free(z), c);

  Page* d = z.alloc(1);
  EXPECT_EQ(z.pfn(d), z.pfn(a) ^ 2);
  c[1] = 0;
  EXPECT_EQ(nr_free(z), c);

  Page* e = z.alloc(9);
  EXPECT_EQ(z.pfn(e) % 512, 0u);
  c[9] = 0;
  EXPECT_EQ(nr_free(z), c);
  EXPECT_EQ(z.free_pages, pz.pages() - 516);

  z.free(b, 0);  // a is in use: no merge
  c[0] = 1;
  EXPECT_EQ(nr_free(z), c);
  z.free(a, 0);  // a+b -> order 1, whose buddy d is in use
  c[0] = 0;
  c[1] = 1;
  EXPECT_EQ(nr_free(z), c);
  z.free(e, 9);  // no merge: the order-9 buddy half still holds d
  c[9] = 1;
  EXPECT_EQ(nr_free(z), c);
  z.free(d, 1);  // merges all the way up
  EXPECT_EQ(nr_free(z), only_max(16));
  EXPECT_EQ(z.free_pages, pz.pages());
  EXPECT_EQ(z.stats.merges, 10u);  // a+b, then d up to order 9 and with e
  check_zone(z, {});
}

TEST(BuddyZone, RandomizedModel) {
  PlainZone pz(64 * MiB);
  Zone& z = pz.z;
  std::mt19937_64 rng(12345);
  std::map<std::size_t, unsigned> live;                // pfn -> order
  std::vector<std::pair<std::size_t, unsigned>> pick;  // the same, for a uniform choice
  std::size_t live_pages = 0, failed = 0;
  constexpr int kOps = 1'000'000;
  for (int op = 0; op < kOps; ++op) {
    std::uint64_t r = rng();
    if (live.empty() || (r & 1)) {
      unsigned order = (r & 2) ? static_cast<unsigned>((r >> 8) % kNrOrders) : rand_order(r);
      Page* p = z.alloc(order, (r >> 4) & 1);
      if (!p) {
        ++failed;
        for (unsigned o = order; o < kNrOrders; ++o) ASSERT_EQ(z.free_area[o].nr_free, 0u);
        continue;
      }
      std::size_t pfn = z.pfn(p);
      ASSERT_FALSE(p->flags & (PG_buddy | PG_pcp));
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(z.address(p)) % (kPageSize << order), 0u);
      std::size_t end = pfn + (std::size_t{1} << order);
      ASSERT_LE(end, pz.pages());
      auto next = live.lower_bound(pfn), prev = next == live.begin() ? live.end() : std::prev(next);
      ASSERT_TRUE(next == live.end() || next->first >= end) << "overlaps the next live block";
      ASSERT_TRUE(prev == live.end() || prev->first + (std::size_t{1} << prev->second) <= pfn);
      live.emplace(pfn, order);
      pick.emplace_back(pfn, order);
      live_pages += std::size_t{1} << order;
    } else {
      std::size_t i = (r >> 8) % pick.size();
      auto [pfn, order] = pick[i];
      pick[i] = pick.back();
      pick.pop_back();
      live.erase(pfn);
      z.free(z.pfn_to_page(pfn), order, (r >> 4) & 1);
      live_pages -= std::size_t{1} << order;
    }
    ASSERT_EQ(z.free_pages, pz.pages() - live_pages);
    if (op % 50'000 == 0) {
      ASSERT_NO_FATAL_FAILURE(check_zone(z, live));
    }
  }
  ASSERT_NO_FATAL_FAILURE(check_zone(z, live));
  EXPECT_GT(failed, 100u);  // no block large enough: the zone was full or fragmented
  EXPECT_GT(z.stats.merges, 100'000u);
  for (auto [pfn, order] : live) z.free(z.pfn_to_page(pfn), order);
  live.clear();
  EXPECT_EQ(nr_free(z), only_max(16));
  EXPECT_EQ(z.free_pages, pz.pages());
  check_zone(z, live);
}

TEST(BuddyZone, ClaimRangeTakesOnlyFreePagesAndKeepsTheRestFree) {
  PlainZone pz(8 << 20);  // two order-10 blocks
  Zone& z = pz.z;
  LockGuard<Mutex> g(z.lock);
  Page* a = z.alloc_locked(3, false);            // splits one of the order-10 blocks
  const std::size_t A = z.pfn(a), B = A ^ 1024;  // B: the other, whole block
  std::size_t before = z.free_pages;
  // Grow in place by 5 pages: [A+8, A+13) cuts the free order-3 block at
  // A+8 and leaves the order-4 block at A+16 alone.
  ASSERT_TRUE(z.claim_range_locked(A + 8, A + 13));
  EXPECT_EQ(z.free_pages, before - 5);
  EXPECT_FALSE(z.claim_range_locked(A + 12, A + 14)) << "page A+12 is no longer free";
  EXPECT_EQ(z.free_pages, before - 5);
  EXPECT_FALSE(z.claim_range_locked(A, A + 1)) << "page A is allocated";
  EXPECT_FALSE(z.claim_range_locked(2040, 2050)) << "past the end of the zone";
  // Out of the middle of the whole block.
  EXPECT_TRUE(z.claim_range_locked(B + 100, B + 110));
  EXPECT_EQ(z.free_pages, before - 15);
  // Give everything back in aligned pieces: it all merges again.
  auto give = [&](std::size_t from, std::size_t to) {
    while (from < to) {
      unsigned k = static_cast<unsigned>(__builtin_ctzll(from | (1u << kMaxOrder)));
      while ((std::size_t{1} << k) > to - from) --k;
      Page* p = z.pfn_to_page(from);
      p->flags = 0;
      z.free_locked(p, k, false);
      from += std::size_t{1} << k;
    }
  };
  give(A, A + 13);
  give(B + 100, B + 110);
  EXPECT_EQ(nr_free(z), only_max(2));
  EXPECT_EQ(z.free_pages, z.present_pages);
}

TEST(BuddyZone, CleanAndDirty) {
  PlainZone pz(64 * MiB);
  Zone& z = pz.z;
  Page* p = z.alloc(kMaxOrder);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->flags & PG_clean);  // fresh from onlining
  z.free(p, kMaxOrder);              // used: dirty
  EXPECT_EQ(z.free_area[kMaxOrder].nr_clean, 15u);
  EXPECT_EQ(z.clean_pages, pz.pages() - 1024);
  EXPECT_FALSE(p->flags & PG_clean);

  // want_clean prefers a clean block; otherwise resident memory goes first.
  Page* c = z.alloc(kMaxOrder, true);
  EXPECT_NE(c, p);
  EXPECT_TRUE(c->flags & PG_clean);
  Page* d = z.alloc(kMaxOrder, false);
  EXPECT_EQ(d, p);
  EXPECT_FALSE(d->flags & PG_clean);
  z.free(c, kMaxOrder, true);
  z.free(d, kMaxOrder, false);

  // Splitting the dirty block leaves dirty halves; the merge is dirty again.
  Page* s = z.alloc(0, false);
  EXPECT_EQ(s, p);
  EXPECT_FALSE(s->flags & PG_clean);
  EXPECT_EQ(z.clean_pages, pz.pages() - 1024);
  EXPECT_EQ(z.free_area[3].nr_free, 1u);
  EXPECT_EQ(z.free_area[3].nr_clean, 0u);
  z.free(s, 0, true);
  EXPECT_EQ(z.free_area[kMaxOrder].nr_clean, 15u);

  // A small clean block splits into clean halves from a clean parent.
  Page* a = z.alloc(0, true);
  Page* b = z.alloc(0, true);
  ASSERT_EQ(z.pfn(b), z.pfn(a) ^ 1);
  EXPECT_TRUE(a->flags & PG_clean);
  EXPECT_TRUE(b->flags & PG_clean);
  // clean + dirty merges dirty, all the way up.
  z.free(a, 0, false);
  z.free(b, 0, true);
  EXPECT_EQ(nr_free(z), only_max(16));
  EXPECT_EQ(z.free_area[kMaxOrder].nr_clean, 14u);
  // clean + clean stays clean.
  a = z.alloc(0, true);
  b = z.alloc(0, true);
  z.free(a, 0, true);
  z.free(b, 0, true);
  EXPECT_EQ(z.free_area[kMaxOrder].nr_clean, 14u);
  EXPECT_EQ(z.clean_pages, 14u * 1024);
  check_zone(z, {});
}

// A request takes resident (dirty) memory of any larger order before a
// clean block of its own order: a clean block costs page faults and RSS.
TEST(BuddyZone, ResidentBlocksOfAnyOrderGoFirst) {
  PlainZone pz(16 * MiB);
  Zone& z = pz.z;
  Page* big = z.alloc(5);  // splits a clean order-10 block: clean 5..9 remain
  Page* small = z.alloc(2);
  ASSERT_NE(big, nullptr);
  ASSERT_NE(small, nullptr);
  ASSERT_GT(z.free_area[2].nr_clean + z.free_area[3].nr_clean + z.free_area[4].nr_clean, 0u);
  z.free(big, 5);  // used: a dirty order-5 block
  std::size_t clean = z.clean_pages;
  Page* p = z.alloc(2);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(p, big);
  EXPECT_LT(p, big + 32) << "taken from the dirty block, not a clean order-2 one";
  EXPECT_FALSE(p->flags & PG_clean);
  EXPECT_EQ(z.clean_pages, clean);
  EXPECT_EQ(z.release_debt.load(), 0u);
  // Zeroed memory still prefers a clean block (zero for free).
  Page* zc = z.alloc(2, true);
  ASSERT_NE(zc, nullptr);
  EXPECT_TRUE(zc->flags & PG_clean);
  EXPECT_FALSE(zc >= big && zc < big + 32);
  z.free(zc, 2, true);
  z.free(p, 2);
  z.free(small, 2);
  check_zone(z, {});
}

// Resident pieces that are neighbours but not buddies (an order-9 block
// and the order-8 block after it: the upper half of one order-10 block
// and the first quarter of the next) serve an exact run together, from
// any page; before, the run took a clean order-10 block and faulted all of
// it in while 768 resident pages waited.
TEST(BuddyZone, ExactRunFitsOverAdjacentResidentPieces) {
  PlainZone pz(16 * MiB);
  Zone& z = pz.z;
  LockGuard<Mutex> g(z.lock);
  std::map<std::size_t, Page*> blocks;  // the whole zone, order 8
  for (int i = 0; i < 16; ++i) {
    Page* p = z.alloc_locked(8, false);
    ASSERT_NE(p, nullptr);
    blocks[z.pfn(p)] = p;
  }
  ASSERT_EQ(blocks.rbegin()->first, 3840u);
  auto give = [&](std::size_t pfn, bool clean) {
    blocks[pfn]->flags = 0;
    z.free_locked(blocks[pfn], 8, clean);
    blocks.erase(pfn);
  };
  // Resident: 512..1279 (an order-9 block and an order-8 one); clean: the
  // rest but 0, 256 and 1280, two order-10 blocks among them.
  for (std::size_t pfn : {512u, 768u, 1024u}) give(pfn, false);
  for (std::size_t pfn = 1536; pfn < 4096; pfn += 256) give(pfn, true);
  ASSERT_EQ(z.free_area[9].nr_free - z.free_area[9].nr_clean, 1u);
  ASSERT_EQ(z.free_area[8].nr_free - z.free_area[8].nr_clean, 1u);
  ASSERT_EQ(z.free_area[10].nr_clean, 2u);
  const std::size_t clean = z.clean_pages;
  // Too long for the resident run: nothing fitted.
  EXPECT_EQ(z.fit_run_locked(769, false), nullptr);
  Page* r = z.fit_run_locked(700, false);
  ASSERT_NE(r, nullptr);
  EXPECT_GE(z.pfn(r), 512u);
  EXPECT_LE(z.pfn(r) + 700, 1280u);
  EXPECT_FALSE(r->flags & PG_clean);
  EXPECT_EQ(z.clean_pages, clean) << "no clean page taken";
  EXPECT_EQ(z.dirty_pages(), 768u - 700);
  EXPECT_EQ(z.release_debt.load(), 0u);
  EXPECT_EQ(z.stats.fit_runs, 1u);
  z.free_range_locked(r, 700);
  // With a resident block of the run's order free, take_block splits it:
  // nothing to fit.
  Page* big = z.alloc_locked(10, false);
  ASSERT_NE(big, nullptr);
  z.free_locked(big, 10, false);
  EXPECT_EQ(z.fit_run_locked(600, false), nullptr);
  for (std::size_t pfn : {0u, 256u, 1280u}) give(pfn, false);
  EXPECT_EQ(z.free_pages, z.present_pages);
  EXPECT_EQ(nr_free(z), only_max(4));
}

// Resident pieces apart from each other do not make a run.
TEST(BuddyZone, ExactRunNeedsAdjacentPieces) {
  PlainZone pz(16 * MiB);
  Zone& z = pz.z;
  LockGuard<Mutex> g(z.lock);
  std::map<std::size_t, Page*> blocks;
  for (int i = 0; i < 16; ++i) {
    Page* p = z.alloc_locked(8, false);
    ASSERT_NE(p, nullptr);
    blocks[z.pfn(p)] = p;
  }
  for (std::size_t pfn : {512u, 1024u}) {  // 768 stays allocated between them
    blocks[pfn]->flags = 0;
    z.free_locked(blocks[pfn], 8, false);
    blocks.erase(pfn);
  }
  EXPECT_EQ(z.fit_run_locked(300, false), nullptr);
  EXPECT_EQ(z.stats.fit_runs, 0u);
  for (auto& [pfn, p] : blocks) {
    p->flags = 0;
    z.free_locked(p, 8, false);
  }
  EXPECT_EQ(z.free_pages, z.present_pages);
}

TEST(BuddyDeathTest, DoubleFreeIsCaught) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  PlainZone pz(8 * MiB);
  Page* a = pz.z.alloc(0);
  Page* b = pz.z.alloc(0);  // keeps a from merging
  ASSERT_NE(b, nullptr);
  pz.z.free(a, 0);
  EXPECT_DEATH(pz.z.free(a, 0), "double free of page block");
  Page* big = pz.z.alloc(kMaxOrder);
  pz.z.free(big, kMaxOrder);
  EXPECT_DEATH(pz.z.free(big, kMaxOrder), "double free of page block");
  // Through the page allocator: the block sits on a per-CPU list.
  PageAllocator* pa = make_heap(1);
  ASSERT_NE(pa, nullptr);
  Page* p = pa->alloc_pages(0, 0);
  pa->free_pages(p, 0);
  EXPECT_DEATH(pa->free_pages(p, 0), "double free of page block");
}

TEST(BuddyPcp, FreeThenAllocReturnsSamePage) {
  PinCpu pin;
  ASSERT_TRUE(pin.ok);
  PageAllocator* pa = make_heap(1);
  ASSERT_NE(pa, nullptr);
  ASSERT_EQ(current_cpu(), pin.cpu);
  PerCpuPages* pcp = pa->pcp(pin.cpu, 0);
  for (unsigned order : {0u, 3u}) {
    Page* a = pa->alloc_pages(0, order);
    ASSERT_NE(a, nullptr);
    pa->free_pages(a, order);
    EXPECT_TRUE(a->flags & PG_pcp);
    std::uint64_t hits = pcp->hits;
    Page* b = pa->alloc_pages(0, order);
    EXPECT_EQ(a, b) << "order " << order;
    EXPECT_EQ(pcp->hits, hits + 1);
    EXPECT_FALSE(b->flags & (PG_pcp | PG_buddy | PG_clean));
    pa->free_pages(b, order);
  }
}

TEST(BuddyPcp, CountBoundedByHighAndDrainReturnsAll) {
  PinCpu pin;
  ASSERT_TRUE(pin.ok);
  PageAllocator* pa = make_heap(1, true, 32, 8);
  ASSERT_NE(pa, nullptr);
  PerCpuPages* pcp = pa->pcp(current_cpu(), 0);
  Zone& z = pa->zone(0);
  for (unsigned order = 0; order < kPcpOrders; ++order) {
    std::vector<Page*> held;
    for (int i = 0; i < 200; ++i) {
      held.push_back(pa->alloc_pages(0, order));
      ASSERT_NE(held.back(), nullptr);
      ASSERT_LE(pcp->lists[order].count, pcp->high);
    }
    std::size_t live = held.size() << order;
    for (Page* p : held) {
      pa->free_pages(p, order);
      live -= std::size_t{1} << order;
      ASSERT_LE(pcp->lists[order].count, pcp->high);
      LockGuard<Mutex> g(z.lock);
      ASSERT_EQ(z.free_pages + pcp->pages() + live, z.present_pages);
    }
    EXPECT_GT(pcp->drains, 0u);
    EXPECT_GT(pcp->lists[order].count, 0u);
    std::size_t cached = pcp->pages();
    EXPECT_EQ(pa->drain_all_pcp(), cached);
    EXPECT_EQ(pcp->pages(), 0u);
    EXPECT_EQ(z.free_pages, z.present_pages);
    EXPECT_EQ(nr_free(z), only_max(z.present_pages >> kMaxOrder));
  }
}

std::size_t resident_pages(PageAllocator* pa, const Page* p, std::size_t pages) {
  return testutil::resident_pages(pa->page_address(p), pages << kPageShift);
}

// 2048 touched pages of pa's node 0, in allocation order: the caller frees
// every other one to leave 1024 resident order-0 pieces that cannot merge.
std::vector<Page*> touched_pages(PageAllocator* pa) {
  std::vector<Page*> pages;
  for (int i = 0; i < 2048; ++i) {
    Page* p = pa->alloc_pages(0, 0);
    if (!p) break;
    std::memset(pa->page_address(p), 1, kPageSize);
    pages.push_back(p);
  }
  return pages;
}

// Pieces freed just now (younger than kYoungBlockNs) are not traded for
// clean pages taken: a program churning big blocks takes them back within
// milliseconds, and `large` had 7k of its pieces released and faulted in
// again within a 40 ms run. The debt they would have paid is forgiven.
TEST(BuddyAlloc, YoungPiecesAreNotTraded) {
  PageAllocator* pa = make_heap(1, false);
  ASSERT_NE(pa, nullptr);
  Zone& z = pa->zone(0);
  std::vector<Page*> pages = touched_pages(pa);
  ASSERT_EQ(pages.size(), 2048u);
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < pages.size(); i += 2) pa->free_pages(pages[i], 0);
  ASSERT_GT(z.dirty_pages(), z.dirty_reserve() + 64);
  std::uint64_t traded = z.stats.traded;
  std::size_t dirty = z.dirty_pages();
  Page* a = pa->alloc_pages(0, 4);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->flags & PG_clean);
  EXPECT_EQ(z.release_debt.load(), 0u) << "the debt is forgiven, not kept";
  std::size_t resident = 0;
  for (std::size_t i = 0; i < pages.size(); i += 2) resident += resident_pages(pa, pages[i], 1);
  // The stamps and the trade read the coarse clock (4 ms ticks): within
  // 1 ms they are at most one tick apart. Slower, nothing to tell.
  if (took < std::chrono::milliseconds(1)) {
    EXPECT_EQ(z.stats.traded, traded) << "young pieces were released";
    EXPECT_EQ(z.dirty_pages(), dirty);
    EXPECT_EQ(resident, 1024u);
  }
  pa->free_pages(a, 4);
  for (std::size_t i = 1; i < pages.size(); i += 2) pa->free_pages(pages[i], 0);
}

// Resident free memory in pieces too small for a request: the clean pages
// the request takes instead are traded for as many of those pieces,
// released at once (zone.h, release_debt), down to the zone's reserve.
TEST(BuddyAlloc, CleanPagesTakenWhileResidentPiecesWaitAreTraded) {
  PageAllocator* pa = make_heap(1, false);
  ASSERT_NE(pa, nullptr);
  Zone& z = pa->zone(0);
  // 2048 touched pages, every other one freed: 1024 resident order-0
  // pieces that cannot merge.
  std::vector<Page*> pages = touched_pages(pa);
  ASSERT_EQ(pages.size(), 2048u);
  for (std::size_t i = 0; i < pages.size(); i += 2) pa->free_pages(pages[i], 0);
  std::size_t reserve = z.dirty_reserve();
  ASSERT_EQ(z.dirty_pages(), 1024u);
  ASSERT_GT(z.dirty_pages(), reserve + 64);
  // Pieces freed just now are not traded (next test): these have aged.
  std::this_thread::sleep_for(std::chrono::nanoseconds(3 * kYoungBlockNs));
  std::uint64_t traded = z.stats.traded;
  // 16 clean pages: 16 pieces go back.
  Page* a = pa->alloc_pages(0, 4);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->flags & PG_clean);
  EXPECT_EQ(z.stats.traded, traded + 16);
  EXPECT_EQ(z.dirty_pages(), 1024u - 16);
  EXPECT_EQ(z.release_debt.load(), 0u);
  std::size_t resident = 0;
  for (std::size_t i = 0; i < pages.size(); i += 2) resident += resident_pages(pa, pages[i], 1);
  EXPECT_EQ(resident, 1024u - 16);
  // An exact run cut from a clean block owes only the pages it keeps: its
  // tail goes back untouched.
  Page* r = pa->alloc_pages_exact(0, 20);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(z.stats.traded, traded + 16 + 20);
  // At the reserve, clean pages are taken without a trade.
  std::vector<Page*> more;
  while (z.dirty_pages() > reserve) {
    more.push_back(pa->alloc_pages(0, 0));
    ASSERT_NE(more.back(), nullptr);
  }
  std::uint64_t before = z.stats.traded;
  Page* b = pa->alloc_pages(0, 4);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(z.stats.traded, before);
  EXPECT_EQ(z.dirty_pages(), reserve);
  pa->free_pages(b, 4);
  for (Page* p : more) pa->free_pages(p, 0);
  pa->free_pages_exact(r, 20);
  pa->free_pages(a, 4);
  for (std::size_t i = 1; i < pages.size(); i += 2) pa->free_pages(pages[i], 0);
  EXPECT_EQ(z.free_pages, z.present_pages);
  EXPECT_EQ(nr_free(z), only_max(z.present_pages >> kMaxOrder));
}

class BuddyNuma : public testing::TestWithParam<unsigned> {};

TEST_P(BuddyNuma, PagesComeFromTheRequestedNode) {
  PageAllocator* pa = make_heap(GetParam());
  ASSERT_NE(pa, nullptr);
  ASSERT_EQ(pa->nr_nodes(), GetParam());
  for (unsigned nid = 0; nid < pa->nr_nodes(); ++nid) {
    const NodeRange& r = pa->arena().node(nid);
    for (unsigned order : {0u, 2u, 3u, 5u, 10u}) {
      Page* p = pa->alloc_pages(static_cast<int>(nid), order);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(pa->page_to_nid(p), nid);
      auto a = reinterpret_cast<std::uintptr_t>(pa->page_address(p));
      EXPECT_GE(a, r.base);
      EXPECT_LE(a + (kPageSize << order), r.base + (r.pages << kPageShift));
      EXPECT_EQ(a % (kPageSize << order), 0u);
      EXPECT_EQ(pa->virt_to_page(reinterpret_cast<void*>(a)), p);
      EXPECT_TRUE(pa->owns(reinterpret_cast<void*>(a)));
      std::memset(reinterpret_cast<void*>(a), 0x5a, kPageSize << order);
      pa->free_pages(p, order);
    }
    EXPECT_EQ(pa->node_stats(nid).alloc_local, 5u);
    EXPECT_EQ(pa->node_stats(nid).alloc_fallback, 0u);
  }
  std::string bi = view(pa, false), zi = view(pa, true);
  for (unsigned nid = 0; nid < pa->nr_nodes(); ++nid) {
    std::string head = "Node " + std::to_string(nid) + ", zone   Normal";
    EXPECT_NE(bi.find(head + " "), std::string::npos) << bi;
    EXPECT_NE(zi.find(head + "\n"), std::string::npos) << zi;
  }
  EXPECT_EQ(bi.find("Node " + std::to_string(pa->nr_nodes())), std::string::npos);
}

TEST_P(BuddyNuma, ThisNodeFailsWhenExhaustedFallbackDoesNot) {
  PageAllocator* pa = make_heap(GetParam());
  ASSERT_NE(pa, nullptr);
  const unsigned nid = 1;
  const std::size_t blocks = pa->arena().node(nid).pages >> kMaxOrder;
  std::vector<Page*> held;
  while (Page* p = pa->alloc_pages(nid, kMaxOrder, kGfpThisNode)) {
    ASSERT_EQ(pa->page_to_nid(p), nid);
    held.push_back(p);
  }
  EXPECT_EQ(held.size(), blocks);
  EXPECT_EQ(pa->zone(nid).free_pages, 0u);
  EXPECT_EQ(pa->alloc_pages(nid, 0, kGfpThisNode), nullptr);
  EXPECT_EQ(pa->alloc_pages(nid, 0, kGfpThisNode | kGfpZero), nullptr);
  EXPECT_EQ(pa->node_stats(nid).alloc_fail, 3u);  // the loop's end and the two above

  std::uint16_t order[kMaxNodes];
  pa->topo().fallback_order(nid, order);
  for (unsigned o : {0u, 10u}) {
    std::uint64_t before = pa->node_stats(nid).alloc_fallback;
    Page* q = pa->alloc_pages(nid, o);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(pa->page_to_nid(q), order[1]);
    EXPECT_EQ(pa->node_stats(nid).alloc_fallback, before + 1);
    pa->free_pages(q, o);
  }

  // kGfpZero on a reused dirty block: the only free block on the node.
  Page* p = held.back();
  held.pop_back();
  auto* mem = static_cast<unsigned char*>(pa->page_address(p));
  std::memset(mem, 0xab, kMaxBlockSize);
  pa->free_pages(p, kMaxOrder);
  EXPECT_EQ(pa->zone(nid).free_pages, kMaxBlockPages);
  EXPECT_EQ(pa->zone(nid).clean_pages, 0u);
  Page* z = pa->alloc_pages(nid, kMaxOrder, kGfpZero | kGfpThisNode);
  ASSERT_EQ(z, p);
  EXPECT_TRUE(z->flags & PG_clean);
  std::vector<unsigned char> zero(kMaxBlockSize, 0);
  EXPECT_EQ(std::memcmp(mem, zero.data(), kMaxBlockSize), 0);
  std::memset(mem, 0xcd, kMaxBlockSize);
  pa->free_pages(z, kMaxOrder);
  for (unsigned o : {0u, 3u}) {
    Page* s = pa->alloc_pages(nid, o, kGfpZero | kGfpThisNode);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(pa->page_to_nid(s), nid);
    EXPECT_EQ(std::memcmp(pa->page_address(s), zero.data(), kPageSize << o), 0) << "order " << o;
  }
}

INSTANTIATE_TEST_SUITE_P(FakeNodes, BuddyNuma, testing::Values(2u, 4u));

TEST(BuddyViews, BuddyinfoExact) {
  PageAllocator* pa = make_heap(2, false);
  ASSERT_NE(pa, nullptr);
  const std::string idle =
      "Node 1, zone   Normal      0      0      0      0      0      0      0      0      0      0"
      "      0 \n";
  Page* p = pa->alloc_pages(0, 0);  // onlines one 16 MiB section and splits a block
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(view(pa, false),
            "Node 0, zone   Normal      1      1      1      1      1      1      1      1      1"
            "      1      3 \n" +
                idle);
  std::string zi = view(pa, true);
  EXPECT_NE(zi.find("  pages free     4095\n"), std::string::npos) << zi;
  EXPECT_NE(zi.find("        present  4096\n"), std::string::npos) << zi;
  EXPECT_NE(zi.find("      nr_splits      10\n"), std::string::npos) << zi;
  pa->free_pages(p, 0);
  EXPECT_EQ(view(pa, false),
            "Node 0, zone   Normal      0      0      0      0      0      0      0      0      0"
            "      0      4 \n" +
                idle);
}

// Threads on one allocator (two fake nodes, per-CPU lists on) allocate random
// orders on random nodes, stamp every page with their id and address, and
// check the stamps before freeing: any block handed out twice shows up.
TEST(BuddyStress, ThreadsKeepContentIntact) {
  PageAllocator* pa = make_heap(2, true, 16, 4);
  ASSERT_NE(pa, nullptr);
  constexpr unsigned kThreads = 4, kOps = 50'000, kHeld = 16;
  std::atomic<int> errors{0};
  std::atomic<std::uint64_t> failures{0};
  // Three words per page (first, last, one in between) tied to the thread,
  // the block's serial number and the page's address.
  constexpr std::size_t kWords = kPageSize / 8;
  struct Held {
    Page* p;
    unsigned order;
    std::uint64_t serial;
  };
  auto stamp = [&](const Held& h, bool check, std::uint64_t tid) {
    auto* w = static_cast<std::uint64_t*>(pa->page_address(h.p));
    for (std::size_t pg = 0; pg < (std::size_t{1} << h.order); ++pg) {
      std::uint64_t* page = w + pg * kWords;
      auto a = reinterpret_cast<std::uintptr_t>(page);
      std::uint64_t s = (tid << 56) ^ (h.serial << 20) ^ a;
      std::size_t mid = 1 + (a >> kPageShift) % (kWords - 2);
      if (!check) {
        page[0] = s, page[kWords - 1] = ~s, page[mid] = s + 1;
      } else if (page[0] != s || page[kWords - 1] != ~s || page[mid] != s + 1) {
        ++errors;
      }
    }
  };
  auto worker = [&](std::uint64_t tid) {
    std::mt19937_64 rng(tid * 7919);
    std::vector<Held> held;
    auto release = [&](std::size_t i) {
      stamp(held[i], true, tid);
      pa->free_pages(held[i].p, held[i].order);
      held[i] = held.back();
      held.pop_back();
    };
    for (std::uint64_t op = 0; op < kOps; ++op) {
      std::uint64_t r = rng();
      if (held.size() < kHeld && (held.empty() || (r & 1))) {
        unsigned order = rand_order(r);
        int nid = static_cast<int>((r >> 4) % 3) - 1;  // -1 (local), 0 or 1
        bool zero = (r >> 6) & 1;
        Page* p = pa->alloc_pages(nid, order, zero ? unsigned{kGfpZero} : 0u);
        if (!p) {
          ++failures;
          continue;
        }
        auto* w = static_cast<std::uint64_t*>(pa->page_address(p));
        if (zero && (w[0] != 0 || w[(kWords << order) - 1] != 0)) ++errors;
        held.push_back({p, order, op});
        stamp(held.back(), false, tid);
      } else {
        release((r >> 8) % held.size());
      }
    }
    while (!held.empty()) release(held.size() - 1);
  };
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t) threads.emplace_back(worker, t + 1);
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(failures.load(), 0u);
  pa->drain_all_pcp();
  for (unsigned nid = 0; nid < 2; ++nid) {
    Zone& z = pa->zone(nid);
    EXPECT_GT(z.present_pages, 0u);
    EXPECT_EQ(z.free_pages, z.present_pages) << "node " << nid;
    EXPECT_EQ(nr_free(z), only_max(z.present_pages >> kMaxOrder)) << "node " << nid;
  }
}

}  // namespace
}  // namespace numaslub
