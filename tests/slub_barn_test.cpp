// Tests for the barn's adaptive limit (lib/slub/slub.cpp, "barn") and for
// objects that cross threads in bursts larger than the barn: nothing lost,
// nothing handed out twice, whatever path (sheaf, barn, slab) carried them.
//
// ctest runs this binary in the four configurations of slub_test (rseq,
// percpu=thread, fake_numa=2, both): see tests/CMakeLists.txt.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "lib/slub/kmalloc.h"
#include "lib/slub/size_class.h"
#include "lib/slub/slub_internal.h"

namespace numaslub {
namespace {

struct BarnTotals {
  std::uint64_t hits = 0, misses = 0, overflows = 0, grows = 0;
  std::uint32_t max_full = 0;  // the largest limit of any node
  std::uint32_t nr_full = 0;
};

BarnTotals barn_totals(unsigned cls) {
  BarnTotals t;
  KmemCache& c = g_kmem.caches[cls];
  for (unsigned nid = 0; nid < g_kmem.pa->nr_nodes(); ++nid) {
    Barn& b = c.node[nid].barn;
    LockGuard<Mutex> g(b.lock);
    t.hits += b.hits;
    t.misses += b.misses;
    t.overflows += b.overflows;
    t.grows += b.grows;
    t.nr_full += b.nr_full;
    if (b.max_full > t.max_full) t.max_full = b.max_full;
  }
  return t;
}

// Objects allocated and not freed, over every class and node.
std::size_t inuse_objects() {
  std::size_t n = 0;
  for (unsigned cls = 0; cls < kNrClasses; ++cls)
    for (unsigned nid = 0; nid < g_kmem.pa->nr_nodes(); ++nid) {
      KmemCacheNode& kn = g_kmem.caches[cls].node[nid];
      LockGuard<Mutex> g(kn.list_lock);
      n += kn.inuse;
    }
  return n;
}

void pin_here() {
  int cpu = sched_getcpu();
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// One thread (pinned: one CPU's sheaves, one node) frees `sheaves` sheaves'
// worth of objects of class cls at once, then allocates as many again,
// `rounds` times. Returns the barn's overflows during each round.
std::vector<std::uint64_t> burst_rounds(unsigned cls, unsigned sheaves, int rounds) {
  std::vector<std::uint64_t> overflows;
  std::thread t([&] {
    pin_here();
    KmemCache& c = g_kmem.caches[cls];
    std::size_t n = std::size_t{c.sheaf_capacity} * sheaves;
    std::vector<void*> v(n);
    for (int r = 0; r < rounds; ++r) {
      std::uint64_t before = barn_totals(cls).overflows;
      for (auto& p : v) {
        p = kmalloc(c.size);
        ASSERT_NE(p, nullptr);
        std::memset(p, r, c.size);
      }
      for (void* p : v) kfree(p);
      overflows.push_back(barn_totals(cls).overflows - before);
    }
  });
  t.join();
  return overflows;
}

TEST(SlubBarn, BurstsLargerThanTheBaseLimitGrowIt) {
  ASSERT_TRUE(slub_init());
  unsigned cls = size_to_class(256);
  KmemCache& c = g_kmem.caches[cls];
  ASSERT_GE(c.barn_cap_full, 32u) << "1 MiB of 256-byte objects is 67 sheaves";
  EXPECT_EQ(barn_totals(cls).max_full, c.barn_max_full);
  // 24 sheaves per burst: three times the base limit of 8.
  std::vector<std::uint64_t> ov = burst_rounds(cls, 24, 6);
  BarnTotals t = barn_totals(cls);
  // The first burst overflows the base limit; each miss after an overflow
  // doubles it (8 -> 16 -> 32), and then whole bursts fit.
  EXPECT_GT(ov.front(), 0u);
  EXPECT_GE(t.grows, 2u);
  EXPECT_GE(t.max_full, 32u);
  EXPECT_LE(t.max_full, c.barn_cap_full);
  EXPECT_EQ(ov[4], 0u);
  EXPECT_EQ(ov[5], 0u);
  EXPECT_GE(t.hits, 20u * 3);  // the later rounds' refills came from the barn
}

// Main/spare exchanges (refills and flushes) of class cls while one pinned
// thread runs `steps` steps of a balanced random walk over its objects (an
// allocation or a free of a random one, each half the time, from `start`
// live objects), and while it then allocates `burst` objects in a row.
struct Exchanges {
  std::uint64_t walk = 0, burst = 0;
};
Exchanges exchanges_of(unsigned cls, std::size_t start, int steps, std::size_t burst) {
  Exchanges e;
  std::thread t([&] {
    pin_here();
    KmemCache& c = g_kmem.caches[cls];
    auto count = [cls] {
      return g_kmem.stats[cls].refills.get() + g_kmem.stats[cls].flushes.get();
    };
    std::vector<void*> live;
    for (std::size_t i = 0; i < start; ++i) live.push_back(kmalloc(c.size));
    std::uint64_t x = 0x9E3779B97F4A7C15ULL, before = count();
    for (int i = 0; i < steps; ++i) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      if (((x >> 33) & 1) || live.empty()) {
        live.push_back(kmalloc(c.size));
        ASSERT_NE(live.back(), nullptr);
      } else {
        std::size_t k = (x >> 40) % live.size();
        kfree(live[k]);
        live[k] = live.back();
        live.pop_back();
      }
    }
    e.walk = count() - before;
    before = g_kmem.stats[cls].refills.get();
    for (std::size_t i = 0; i < burst; ++i) live.push_back(kmalloc(c.size));
    e.burst = g_kmem.stats[cls].refills.get() - before;
    for (void* p : live) kfree(p);
  });
  t.join();
  return e;
}

// A class whose allocations and frees balance keeps its main sheaf away
// from both ends: an allocation that empties main takes half of a stocked
// spare, not all of it (slub.cpp, "splitting a stocked spare"). Swapping
// whole sheaves, main was full after an allocation's exchange and empty
// after a free's, and the walk crossed back within a few steps: 203
// exchanges in this walk, against 31 now. A one-way run of allocations
// still takes one exchange per sheaf.
TEST(SlubBarn, BalancedTrafficRarelyExchangesSheaves) {
  ASSERT_TRUE(slub_init());
  unsigned cls = size_to_class(384);
  KmemCache& c = g_kmem.caches[cls];
  ASSERT_EQ(c.sheaf_capacity, kSheafMaxCapacity);
  Exchanges e = exchanges_of(cls, 4 * c.sheaf_capacity, 20000, 10 * c.sheaf_capacity);
  EXPECT_LE(e.walk, 80u);
  // One per sheaf, and first a halving of what the spare held, at most
  // log2(61) of them.
  EXPECT_LE(e.burst, 10u + 1 + 6);
  std::printf("exchanges: walk %llu, burst %llu\n", static_cast<unsigned long long>(e.walk),
              static_cast<unsigned long long>(e.burst));
}

TEST(SlubBarn, LimitNeverPassesTheCap) {
  ASSERT_TRUE(slub_init());
  unsigned cls = size_to_class(4096);
  KmemCache& c = g_kmem.caches[cls];
  // A burst far beyond kBarnMaxBytes keeps overflowing at the cap.
  unsigned sheaves = c.barn_cap_full * 3;
  std::vector<std::uint64_t> ov = burst_rounds(cls, sheaves, 8);
  BarnTotals t = barn_totals(cls);
  EXPECT_EQ(t.max_full, c.barn_cap_full);
  EXPECT_GT(ov.back(), 0u);
  EXPECT_LE(std::size_t{t.nr_full} * c.sheaf_capacity * c.size,
            std::max<std::size_t>(kBarnMaxBytes,
                                  std::size_t{c.barn_max_full} * c.sheaf_capacity * c.size));
}

TEST(SlubBarn, FlushReturnsObjectsAndStartsTheLimitOver) {
  ASSERT_TRUE(slub_init());
  unsigned cls = size_to_class(512);
  KmemCache& c = g_kmem.caches[cls];
  burst_rounds(cls, 24, 5);
  BarnTotals t = barn_totals(cls);
  ASSERT_GT(t.max_full, c.barn_max_full);
  ASSERT_GT(t.nr_full, 0u);
  std::size_t flushed = 0;
  for (unsigned nid = 0; nid < g_kmem.pa->nr_nodes(); ++nid) flushed += kmem_flush_barns(nid);
  EXPECT_GE(flushed, std::size_t{t.nr_full} * c.sheaf_capacity);
  t = barn_totals(cls);
  EXPECT_EQ(t.nr_full, 0u);
  EXPECT_EQ(t.max_full, c.barn_max_full);
}

// ---- many threads, bursts larger than the barn ----------------------------

struct Obj {
  std::uint64_t* p;
  std::uint32_t words;
};

// Word 0 holds a serial unique to the allocation, the rest a pattern of it:
// an object handed out twice while live is overwritten by its second owner
// and fails the check of its first.
std::uint64_t pattern(std::uint64_t serial, std::uint32_t i) {
  std::uint64_t x = serial * 0x9E3779B97F4A7C15ULL + i;
  x ^= x >> 31;
  return x * 0xBF58476D1CE4E5B9ULL;
}

class BurstQueue {
 public:
  explicit BurstQueue(int producers) : producers_(producers) {}
  void push(std::vector<Obj>&& b) {
    std::unique_lock<std::mutex> l(mu_);
    not_full_.wait(l, [&] { return q_.size() < 32; });
    q_.push_back(std::move(b));
    not_empty_.notify_one();
  }
  void producer_done() {
    std::lock_guard<std::mutex> l(mu_);
    if (--producers_ == 0) not_empty_.notify_all();
  }
  // Empty once every producer is done and the queue is drained.
  std::vector<Obj> pop() {
    std::unique_lock<std::mutex> l(mu_);
    not_empty_.wait(l, [&] { return !q_.empty() || producers_ == 0; });
    if (q_.empty()) return {};
    std::vector<Obj> b = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return b;
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<std::vector<Obj>> q_;
  int producers_;
};

TEST(SlubBarn, CrossThreadBurstsLoseAndDuplicateNothing) {
  ASSERT_TRUE(slub_init());
  kmem_shrink_all();
  std::size_t inuse0 = inuse_objects();
  constexpr int kProducers = 4, kConsumers = 4, kBatches = 40;
  constexpr std::size_t kBatch = 4096;  // 67 sheaves of 64-byte objects
  static const std::uint32_t kSizes[] = {16, 64, 64, 64, 256, 1024};
  BurstQueue q(kProducers);
  std::atomic<std::uint64_t> serials{1}, freed{0}, bad{0}, failed{0};
  std::vector<std::thread> th;
  for (int i = 0; i < kProducers; ++i)
    th.emplace_back([&, i] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<Obj> v;
        v.reserve(kBatch);
        for (std::size_t k = 0; k < kBatch; ++k) {
          std::uint32_t size = kSizes[(k + static_cast<std::size_t>(i)) % 6];
          auto* p = static_cast<std::uint64_t*>(kmalloc(size));
          if (!p) {
            ++failed;
            continue;
          }
          std::uint64_t serial = serials.fetch_add(1, std::memory_order_relaxed);
          p[0] = serial;
          for (std::uint32_t w = 1; w < size / 8; ++w) p[w] = pattern(serial, w);
          v.push_back({p, size / 8});
        }
        q.push(std::move(v));
      }
      q.producer_done();
    });
  for (int i = 0; i < kConsumers; ++i)
    th.emplace_back([&] {
      std::uint64_t mine = 0, mybad = 0;
      for (;;) {
        std::vector<Obj> v = q.pop();
        if (v.empty()) break;
        for (const Obj& o : v) {
          for (std::uint32_t w = 1; w < o.words; ++w) mybad += o.p[w] != pattern(o.p[0], w);
          kfree(o.p);
          ++mine;
        }
      }
      freed += mine;
      bad += mybad;
    });
  for (auto& t : th) t.join();
  EXPECT_EQ(failed.load(), 0u);
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_EQ(freed.load(), std::uint64_t{kProducers} * kBatches * kBatch);
  // Every object came back to its slab: nothing lost in a sheaf, a barn or
  // a freelist, nothing counted twice.
  kmem_shrink_all();
  EXPECT_EQ(inuse_objects(), inuse0);
}

}  // namespace
}  // namespace numaslub
