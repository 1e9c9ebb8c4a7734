// Tests for the per-CPU run lists of large blocks (lib/buddy/pcp.h): run
// classes, reuse without the zone lock, clean tails, a random model, the
// switch, and double frees of cached runs.
#include "tests/buddy_test_util.h"

namespace numaslub {
namespace {

using namespace buddytest;

// ------------------------------------------------------------ runs (pcp.h)

TEST(BuddyRuns, ClassesCoverEveryCountWithLessThanAQuarterMore) {
  for (std::size_t n = kRunMinPages; n <= kRunMaxPages; ++n) {
    unsigned c = run_class(n);
    ASSERT_LT(c, kRunClasses) << n;
    std::size_t got = run_class_pages(c);
    ASSERT_GE(got, n);
    ASSERT_LT((got - n) * 4, got) << n;
    ASSERT_EQ(run_class(got), c);
    if (c > 0) {
      ASSERT_LT(run_class_pages(c - 1), n) << "not the smallest class for " << n;
    }
    ASSERT_EQ(run_round_pages(n), got);
  }
  EXPECT_EQ(run_round_pages(8), 8u);  // the orders' blocks are no runs
  EXPECT_EQ(run_round_pages(kRunMaxPages + 1), kRunMaxPages + 1);
}

// A freed run of a class's size is the next allocation of that class on the
// same CPU, taken without the zone lock: held here, a path that took it
// would abort as a self-deadlock.
TEST(BuddyRuns, FreedRunIsReusedWithoutTheZoneLock) {
  PinCpu pin;
  ASSERT_TRUE(pin.ok);
  PageAllocator* pa = make_heap(1);
  ASSERT_NE(pa, nullptr);
  PerCpuPages* pcp = pa->pcp(current_cpu(), 0);
  Zone& z = pa->zone(0);
  // Runs within the CPU's share of this one-section zone (pcp.h).
  ASSERT_GE(pcp->cap_pages.load(), kPcpMinCap);
  for (std::size_t pages : {10ul, 16ul, 40ul, kPcpMinCap}) {
    Page* a = pa->alloc_pages_exact(0, pages);
    ASSERT_NE(a, nullptr);
    std::memset(pa->page_address(a), 0x5a, pages << kPageShift);
    pa->free_pages_exact(a, pages);
    EXPECT_EQ(a->flags, std::uint32_t{PG_pcp});
    std::uint64_t hits = pcp->run_hits;
    std::size_t zone_free = z.free_pages;
    Page* b;
    {
      LockGuard<Mutex> g(z.lock);
      b = pa->alloc_pages_exact(0, pages);
    }
    EXPECT_EQ(a, b) << pages;
    EXPECT_EQ(pcp->run_hits, hits + 1);
    EXPECT_EQ(z.free_pages, zone_free);
    EXPECT_FALSE(b->flags & (PG_pcp | PG_buddy));
    pa->free_pages_exact(b, pages);
  }
  // Zeroed requests never get a used run; neither do aligned ones.
  Page* a = pa->alloc_pages_exact(0, 12);
  pa->free_pages_exact(a, 12);
  Page* zb = pa->alloc_pages_exact(0, 12, 0, kGfpZero);
  EXPECT_NE(zb, a);
  EXPECT_TRUE(zb->flags & PG_clean);
  Page* al = pa->alloc_pages_exact(0, 12, 6);
  EXPECT_NE(al, a);
  EXPECT_EQ(z.pfn(al) % 64, 0u);
  pa->free_pages_exact(zb, 12);
  pa->free_pages_exact(al, 12);
  pa->drain_all_pcp();
  EXPECT_EQ(z.free_pages, z.present_pages);
  EXPECT_EQ(nr_free(z), only_max(z.present_pages >> kMaxOrder));
}

// The tail cut from a clean block stays clean: reclaim has nothing to
// release there, and it is not counted as resident.
TEST(BuddyRuns, TailOfACleanBlockStaysClean) {
  PageAllocator* pa = make_heap(1, /*pcp=*/false);
  ASSERT_NE(pa, nullptr);
  Zone& z = pa->zone(0);
  Page* a = pa->alloc_pages_exact(0, 10);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(z.clean_pages + 10, z.present_pages);
  EXPECT_EQ(z.dirty_pages(), 0u);
  pa->free_pages_exact(a, 10);  // no pcp: straight to the zone, dirty (merged: all of it)
  EXPECT_GE(z.dirty_pages(), 10u);
  EXPECT_EQ(z.free_pages, z.present_pages);
}

// Random runs of every size, freed in random order, some through the run
// lists: no page is handed out twice, the run lists stay within run_high,
// every page is accounted for (zone + lists + live), and a drain gives the
// zone back whole.
TEST(BuddyRuns, RandomRunsNothingLostOrHandedTwice) {
  PinCpu pin;
  ASSERT_TRUE(pin.ok);
  PageAllocator* pa = make_heap(1);
  ASSERT_NE(pa, nullptr);
  PerCpuPages* pcp = pa->pcp(current_cpu(), 0);
  ASSERT_GT(pcp->run_high, 0u);
  Zone& z = pa->zone(0);
  std::mt19937_64 rng(14);
  std::map<std::size_t, std::size_t> live;  // pfn -> pages
  std::size_t live_pages = 0;
  auto check_disjoint = [&] {
    std::size_t end = 0;
    for (auto [pfn, n] : live) {
      ASSERT_GE(pfn, end) << "overlapping runs";
      end = pfn + n;
    }
  };
  for (int step = 0; step < 4000; ++step) {
    if (live.empty() || (rng() % 100 < 55 && live_pages < 8192)) {
      std::size_t n = rng() % 4 ? 9 + rng() % 248 : 1 + rng() % kMaxBlockPages;
      n = run_round_pages(n);
      Page* p = pa->alloc_pages_exact(0, n);
      ASSERT_NE(p, nullptr);
      ASSERT_FALSE(p->flags & (PG_pcp | PG_buddy));
      // Mark it as an owner would: the free must not care.
      p->flags = PG_head | PG_large;
      live[z.pfn(p)] = n;
      live_pages += n;
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      Page* p = z.pfn_to_page(it->first);
      p->flags = 0;
      pa->free_pages_exact(p, it->second);
      live_pages -= it->second;
      live.erase(it);
    }
    ASSERT_LE(pcp->run_pages, pcp->run_high);
    ASSERT_LE(pcp->pages(), pcp->cap_pages.load());
    if (step % 64 == 0) {
      check_disjoint();
      LockGuard<Mutex> g(z.lock);
      ASSERT_EQ(z.free_pages + pcp->pages() + live_pages, z.present_pages);
    }
  }
  EXPECT_GT(pcp->run_hits, 0u);
  for (auto [pfn, n] : live) {
    z.pfn_to_page(pfn)->flags = 0;
    pa->free_pages_exact(z.pfn_to_page(pfn), n);
  }
  std::size_t cached = pcp->pages();
  EXPECT_EQ(pa->drain_all_pcp(), cached);
  EXPECT_EQ(pcp->run_pages, 0u);
  EXPECT_EQ(z.free_pages, z.present_pages);
  EXPECT_EQ(nr_free(z), only_max(z.present_pages >> kMaxOrder));
}

// A CPU's lists and runs hold at most its share of the zone
// (1/kPcpZoneShare of it split among the CPUs), which grows with the zone:
// a run larger than the share, or a free past it, goes back to the zone.
TEST(BuddyRuns, CpuCachesHoldTheirShareOfTheZone) {
  PinCpu pin;
  ASSERT_TRUE(pin.ok);
  PageAllocator* pa = make_heap(1);
  ASSERT_NE(pa, nullptr);
  PerCpuPages* pcp = pa->pcp(current_cpu(), 0);
  Zone& z = pa->zone(0);
  auto share = [&] {
    std::size_t s = z.present_pages / (kPcpZoneShare * pa->nr_cpus());
    return s < kPcpMinCap ? kPcpMinCap : s;
  };
  Page* first = pa->alloc_pages(0, 0);  // onlines the first section
  ASSERT_NE(first, nullptr);
  std::size_t cap = pcp->cap_pages.load();
  EXPECT_EQ(cap, share());
  // Blocks of every order and runs of every class, freed until well past
  // the cap: the CPU never holds more.
  std::vector<std::pair<Page*, std::size_t>> runs;
  std::vector<std::pair<Page*, unsigned>> blocks;
  for (unsigned c = 0; c < kRunClasses; ++c)
    if (run_class_pages(c) <= cap)
      for (int i = 0; i < 2; ++i)
        runs.push_back({pa->alloc_pages_exact(0, run_class_pages(c)), run_class_pages(c)});
  for (unsigned o = 0; o < kPcpOrders; ++o)
    for (int i = 0; i < 24; ++i) blocks.push_back({pa->alloc_pages(0, o), o});
  for (auto [p, n] : runs) {
    ASSERT_NE(p, nullptr);
    pa->free_pages_exact(p, n);
    ASSERT_LE(pcp->pages(), cap);
  }
  for (auto [p, o] : blocks) {
    ASSERT_NE(p, nullptr);
    pa->free_pages(p, o);
    ASSERT_LE(pcp->pages(), cap);
  }
  EXPECT_GT(pcp->pages(), cap / 2) << "the caches still work below the share";
  // A run larger than the share is not cached.
  if (kRunMaxPages > cap) {
    Page* big = pa->alloc_pages_exact(0, kRunMaxPages);
    ASSERT_NE(big, nullptr);
    pa->free_pages_exact(big, kRunMaxPages);
    EXPECT_FALSE(big->flags & PG_pcp);
    EXPECT_TRUE(big->flags & PG_buddy);
  }
  // The share grows with the zone.
  std::vector<Page*> fill;
  while (pa->arena().node(0).sections_online < 4) fill.push_back(pa->alloc_pages(0, kMaxOrder));
  EXPECT_EQ(pcp->cap_pages.load(), share());
  EXPECT_GT(pcp->cap_pages.load(), cap);
  for (Page* p : fill) pa->free_pages(p, kMaxOrder);
  pa->free_pages(first, 0);
  pa->drain_all_pcp();
  EXPECT_EQ(z.free_pages, z.present_pages);
}

// pcp_runs=0 keeps no runs: every free goes to the zone at once.
TEST(BuddyRuns, NoRunsWhenTurnedOff) {
  PageAllocator* pa = make_heap_with(1, [](Config& cfg) { cfg.pcp_runs = 0; });
  ASSERT_NE(pa, nullptr);
  Page* a = pa->alloc_pages_exact(0, 16);
  pa->free_pages_exact(a, 16);
  EXPECT_EQ(pa->zone(0).free_pages, pa->zone(0).present_pages);
  EXPECT_TRUE(a->flags & PG_buddy);
}

// A run freed on a CPU wakes the zone's reclaim thread only when the thread
// went to sleep armed since that CPU last woke it (Zone::run_wake_seq): a
// CPU that frees and reuses one run in a loop takes no zone lock for it.
// The hook here re-arms at once, as kswapd_wake does while no thread is
// worth starting: with a wake per run freed into empty lists (the rule
// before), every free of the loop would call it.
TEST(BuddyRuns, RunFreesWakeReclaimOncePerArming) {
  PinCpu pin;
  ASSERT_TRUE(pin.ok);
  PageAllocator* pa = make_heap(1);
  ASSERT_NE(pa, nullptr);
  Zone& z = pa->zone(0);
  static int wakes;
  wakes = 0;
  {
    LockGuard<Mutex> g(z.lock);
    z.wake_ctx = &z;
    z.wake_fn = [](void* ctx, unsigned) {
      auto* zone = static_cast<Zone*>(ctx);
      ++wakes;
      zone->wake_pending = false;
      zone->kswapd_armed = true;
    };
    z.kswapd_armed = true;
  }
  auto loop = [&] {
    for (int i = 0; i < 100; ++i) {
      Page* a = pa->alloc_pages_exact(0, 12);
      ASSERT_NE(a, nullptr);
      pa->free_pages_exact(a, 12);
    }
  };
  loop();  // no thread has slept armed: the sequence never moved
  EXPECT_EQ(wakes, 0);
  z.run_wake_seq.fetch_add(1);  // a thread went to sleep armed
  loop();
  EXPECT_EQ(wakes, 1);
  z.run_wake_seq.fetch_add(1);
  loop();
  EXPECT_EQ(wakes, 2);
  LockGuard<Mutex> g(z.lock);
  z.wake_fn = nullptr;
}

TEST(BuddyRunsDeathTest, DoubleFreeOfACachedRunIsCaught) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  PageAllocator* pa = make_heap(1);
  ASSERT_NE(pa, nullptr);
  Page* a = pa->alloc_pages_exact(0, 20);
  pa->free_pages_exact(a, 20);
  EXPECT_DEATH(pa->free_pages_exact(a, 20), "double free of page run");
  // Past the lists, in the zone: the pieces' heads are checked before their
  // descriptors are reset.
  Page* b = pa->alloc_pages_exact(0, 300);
  pa->free_pages_exact(b, 300);
  EXPECT_DEATH(pa->free_pages_exact(b, 300), "double free of page block");
}

}  // namespace
}  // namespace numaslub
