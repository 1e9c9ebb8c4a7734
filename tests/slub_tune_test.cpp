// Tests for sheaf capacity by demand (lib/slub/sheaf_tune.h): a slot's
// verdict per interval, the capacities of the big classes, a churning
// class's sheaves growing, a one-way burst and a cold slot keeping little.
//
// ctest runs this binary in the four configurations of slub_test (rseq,
// percpu=thread, fake_numa=2, both): see tests/CMakeLists.txt.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "lib/slub/kmalloc.h"
#include "lib/slub/sheaf_tune.h"
#include "lib/slub/size_class.h"
#include "lib/slub/slub_internal.h"
#include "tests/slub_test_util.h"

namespace numaslub {
namespace {

constexpr std::uint64_t kInterval = std::uint64_t{1} << kTuneShift;

// n slow paths of each direction at time t.
void churn(SlotTune& s, std::uint64_t t, unsigned n) {
  for (unsigned i = 0; i < n; ++i) {
    slot_tune(s, t, true);
    slot_tune(s, t, false);
  }
}

TEST(SheafTune, ChurnInAnIntervalMakesTheNextHot) {
  SlotTune s;
  std::uint64_t t = 100 * kInterval;
  EXPECT_FALSE(slot_tune(s, t, true));
  churn(s, t, kGetHot);
  EXPECT_FALSE(slot_tune(s, t, true)) << "the verdict waits for the interval's end";
  EXPECT_TRUE(slot_tune(s, t + kInterval, true));
  // Hot, it takes one slow path of each direction an interval to stay so.
  churn(s, t + kInterval, kStayHot);
  EXPECT_TRUE(slot_tune(s, t + 2 * kInterval, false));
}

TEST(SheafTune, OneWayTrafficStaysCold) {
  SlotTune s;
  std::uint64_t t = 7 * kInterval;
  for (int i = 0; i < 1000; ++i) slot_tune(s, t, false);  // a burst of frees
  EXPECT_FALSE(slot_tune(s, t + kInterval, false));
  for (int i = 0; i < 1000; ++i) slot_tune(s, t + kInterval, true);  // a consumer
  EXPECT_FALSE(slot_tune(s, t + 2 * kInterval, true));
}

TEST(SheafTune, TooLittleChurnStaysCold) {
  SlotTune s;
  std::uint64_t t = 3 * kInterval;
  churn(s, t, kGetHot - 1);
  EXPECT_FALSE(slot_tune(s, t + kInterval, true));
}

TEST(SheafTune, AnIdleGapOrAQuietIntervalCoolsTheSlot) {
  SlotTune s;
  std::uint64_t t = 50 * kInterval;
  churn(s, t, kGetHot);
  ASSERT_TRUE(slot_tune(s, t + kInterval, true));
  // The counts of an interval long past say nothing about now.
  churn(s, t + kInterval, kGetHot);
  EXPECT_FALSE(slot_tune(s, t + 10 * kInterval, true));
  // Hot again, then an interval with frees only.
  churn(s, t + 10 * kInterval, kGetHot);
  ASSERT_TRUE(slot_tune(s, t + 11 * kInterval, false));
  for (int i = 0; i < 100; ++i) slot_tune(s, t + 11 * kInterval, false);
  EXPECT_FALSE(slot_tune(s, t + 12 * kInterval, false));
}

TEST(SheafTune, TheTickWrapsAround) {
  SlotTune s;
  std::uint64_t t = 255 * kInterval;  // tick 255; the next interval's is 0
  churn(s, t, kGetHot);
  EXPECT_TRUE(slot_tune(s, t + kInterval, true));
}

// Cold, a sheaf holds up to 32 KiB of objects (one at least); hot, 8
// objects at least. Only classes whose cold sheaf holds fewer than that
// tune, and their barns start at one sheaf.
TEST(SheafTune, Capacities) {
  ASSERT_TRUE(slub_init());
  unsigned tuned = 0;
  for (unsigned cls = 0; cls < kNrClasses; ++cls) {
    const KmemCache& c = g_kmem.caches[cls];
    if (c.debug) continue;
    EXPECT_GE(c.sheaf_capacity, 1u) << c.name;
    EXPECT_LE(c.sheaf_capacity * c.size, std::max<std::size_t>(32 * 1024, c.size)) << c.name;
    EXPECT_GE(c.sheaf_capacity_hot, c.sheaf_capacity) << c.name;
    EXPECT_GE(c.sheaf_capacity_hot, kSheafHotObjects) << c.name;
    EXPECT_LE(c.sheaf_capacity_hot, kSheafMaxCapacity) << c.name;
    if (c.sheaf_capacity_hot == c.sheaf_capacity) continue;
    ++tuned;
    EXPECT_GT(c.size, 4096u) << c.name;
    EXPECT_EQ(c.barn_max_full, 1u) << c.name;
    EXPECT_LE(std::size_t{c.barn_cap_full} * c.sheaf_capacity * c.size,
              std::max<std::size_t>(kBarnMaxBytesBig, std::size_t{c.sheaf_capacity} * c.size))
        << c.name;
  }
  EXPECT_EQ(tuned, 16u);  // 5 KiB .. 64 KiB
  EXPECT_EQ(g_kmem.caches[size_to_class(65536)].sheaf_capacity, 1u);
}

using slubtest::pin_here;

// The sheaf set the calling (pinned) thread's fast paths use.
PercpuSheaves* my_set() {
  if (cache_mode() == CacheMode::kThread) return t_sheaves;
  int cpu = sched_getcpu();
  return cpu >= 0 && static_cast<unsigned>(cpu) < slub_nr_cpu_sheaves()
             ? cpu_sheaves(static_cast<unsigned>(cpu))
             : t_sheaves;
}

std::uint32_t main_capacity(const SheafSlot& sl) {
  if (!sl.main || sl.main == no_sheaf_top()) return 0;
  return Sheaf::from_top(sl.main)->capacity;
}

std::uint32_t main_size(const SheafSlot& sl) {
  if (!sl.main || sl.main == no_sheaf_top()) return 0;
  Sheaf* s = Sheaf::from_top(sl.main);
  return static_cast<std::uint32_t>(sl.main - s->objects());
}

std::uint64_t exchanges(unsigned cls) {
  return g_kmem.stats[cls].refills.get() + g_kmem.stats[cls].flushes.get();
}

// A thread that allocates and frees 64 KiB objects back to back, as fast as
// it can, makes its slot hot within a few intervals, and its main sheaf
// then holds 8 of them: the same churn that went to the slow path at every
// other call goes through without it.
TEST(SheafTune, ChurnGrowsABigClassSheaves) {
  ASSERT_TRUE(slub_init());
  unsigned cls = size_to_class(65536);
  const KmemCache& c = g_kmem.caches[cls];
  std::thread t([&] {
    pin_here();
    void* a[2];
    auto step = [&] {
      a[0] = kmalloc(c.size);
      a[1] = kmalloc(c.size);
      ASSERT_NE(a[0], nullptr);
      ASSERT_NE(a[1], nullptr);
      kfree(a[0]);
      kfree(a[1]);
    };
    auto hot = [&] {
      PercpuSheaves* cs = my_set();
      return cs && cs->tune[cls].hot && main_capacity(cs->slots[cls]) == c.sheaf_capacity_hot;
    };
    // Exchanges in 12 steps taken wholly cold, or wholly hot: a round the
    // slot changed state in (an interval boundary passed, or the thread
    // waited for the CPU long enough to cool) is taken again, for up to
    // 5 s (a few intervals of 4 ms on an idle machine). 12 steps make 24
    // refills and 24 flushes at most, fewer than kGetHot: a cold round
    // cannot heat the slot itself, however slowly it runs (ASan: a round
    // of 250 steps spanned intervals and turned the slot hot every time).
    constexpr int kSteps = 12;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto measure = [&](bool want_hot, std::uint64_t* out) {
      while (std::chrono::steady_clock::now() < end) {
        if (want_hot) {
          while (!hot() && std::chrono::steady_clock::now() < end)
            for (int i = 0; i < 64; ++i) step();
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));  // cools
          step();  // the verdict on the idle interval: cold
        }
        if (hot() != want_hot) continue;
        std::uint64_t before = exchanges(cls);
        for (int i = 0; i < kSteps; ++i) step();
        if (hot() != want_hot) continue;
        *out = exchanges(cls) - before;
        return true;
      }
      return false;
    };
    std::uint64_t cold = 0, warm = 0;
    ASSERT_TRUE(measure(false, &cold)) << "no round stayed cold";
    EXPECT_GE(cold, std::uint64_t{kSteps}) << "a cold sheaf holds one 64 KiB object";
    ASSERT_TRUE(measure(true, &warm)) << "the slot did not become hot, or did not stay";
    EXPECT_LT(warm, cold / 4);
  });
  t.join();
}

// A thread that allocates 48 objects of 64 KiB and then frees them all,
// round after round, each a while after the other (mstress's threads end
// so, and their successors allocate again), moves them one way at a time:
// its slot stays cold, and what its sheaves and the barn keep of them is a
// sheaf each and the barn's cap of 256 KiB. (With sheaves of 2 and a barn
// of 8 sheaves they kept 20, 1.25 MiB.)
TEST(SheafTune, OneWayBurstsKeepLittle) {
  ASSERT_TRUE(slub_init());
  unsigned cls = size_to_class(65536);
  KmemCache& c = g_kmem.caches[cls];
  std::thread t([&] {
    pin_here();
    // A slot left hot by an earlier test cools at its first slow path after
    // an idle gap; the sheaves it had go back first.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    kmem_shrink_all();
    std::vector<void*> v(48);
    for (int round = 0; round < 6; ++round) {
      for (auto& p : v) {
        p = kmalloc(c.size);
        ASSERT_NE(p, nullptr);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      for (void* p : v) kfree(p);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    PercpuSheaves* cs = my_set();
    ASSERT_NE(cs, nullptr);
    EXPECT_FALSE(cs->tune[cls].hot);
    const SheafSlot& sl = cs->slots[cls];
    std::size_t kept = main_size(sl) + (sl.spare ? sl.spare->size : 0);
    for (unsigned nid = 0; nid < g_kmem.pa->nr_nodes(); ++nid) {
      Barn& b = c.node[nid].barn;
      LockGuard<Mutex> g(b.lock);
      for (Sheaf* s = b.full; s; s = s->next) kept += s->size;
    }
    EXPECT_LE(kept * c.size, 2 * c.sheaf_capacity * c.size + kBarnMaxBytesBig);
    EXPECT_LE(kept, 6u);
  });
  t.join();
  kmem_shrink_all();
}

// A slot that turns cold cuts a spare of the hot capacity down to the cold
// one at its next slow path, the extra objects going back to their slabs.
TEST(SheafTune, ACooledSlotCutsItsSpare) {
  ASSERT_TRUE(slub_init());
  unsigned cls = size_to_class(40960);
  KmemCache& c = g_kmem.caches[cls];
  ASSERT_GT(c.sheaf_capacity_hot, c.sheaf_capacity);
  unsigned nid = static_cast<unsigned>(g_kmem.pa->local_node());
  PercpuSheaves cs{};  // a set of our own: no fast path uses it
  cs.node = nid;
  for (SheafSlot& sl : cs.slots) sl = {no_sheaf_top(), nullptr};
  Sheaf* s = sheaf_get_empty(c, nid, c.sheaf_capacity_hot);
  ASSERT_NE(s, nullptr);
  s->size = c.fill(nid, s->objects(), s->capacity);
  ASSERT_EQ(s->size, c.sheaf_capacity_hot);
  void* keep = s->objects()[0];
  cs.slots[cls].spare = s;
  std::uint64_t t = 1000 * kInterval;
  churn(cs.tune[cls], t, kGetHot);
  // Hot: nothing is cut, and new sheaves get the hot capacity.
  EXPECT_EQ(slot_capacity(c, &cs, true, t + kInterval), c.sheaf_capacity_hot);
  EXPECT_EQ(s->size, c.sheaf_capacity_hot);
  std::size_t inuse_hot = c.node[nid].inuse;
  // Idle for a while: cold at the next slow path.
  EXPECT_EQ(slot_capacity(c, &cs, false, t + 100 * kInterval), c.sheaf_capacity);
  EXPECT_EQ(s->capacity, c.sheaf_capacity);
  EXPECT_EQ(s->size, c.sheaf_capacity);
  EXPECT_EQ(s->objects()[0], keep);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s->objects()[-1]), kSheafSentinel);
  EXPECT_EQ(c.node[nid].inuse, inuse_hot - (c.sheaf_capacity_hot - c.sheaf_capacity));
  sheaf_flush(c, s);
  sheaf_put_empty(c, nid, s);
}

}  // namespace
}  // namespace numaslub
