// Tests for lib/slub under threads: random churn, CPU migration, CPUs
// beyond the per-CPU table, cross-thread frees, short-lived threads,
// shrinking while others allocate, allocation after thread teardown, and
// a failed set-up that is retried.
//
// The per-CPU mode and the node layout are chosen once per process from
// NUMASLUB_CONF; ctest runs this binary in four configurations (see
// tests/CMakeLists.txt): as is (rseq), "percpu=thread", "fake_numa=2" and
// both.
#include "tests/slub_test_util.h"

namespace numaslub {
namespace {

using namespace slubtest;

// ------------------------------------------------------------ threads

std::size_t random_size(std::mt19937_64& rng) {
  unsigned r = static_cast<unsigned>(rng() % 1000);
  if (r < 700) return 1 + rng() % 256;
  if (r < 900) return 257 + rng() % (4096 - 256);
  if (r < 990) return 4097 + rng() % (kMaxSmallSize - 4096);
  return kMaxSmallSize + 1 + rng() % (200 * KiB);
}

// Random malloc / free / realloc on a private table, with pattern checks.
// Returns the number of corrupted objects seen.
long churn(std::uint64_t seed, int ops, int slots, int flip_every) {
  std::mt19937_64 rng(seed);
  std::vector<Slot> t(static_cast<std::size_t>(slots));
  long bad = 0;
  int cpu = 0;
  for (int i = 0; i < ops; ++i) {
    if (flip_every && i % flip_every == 0) {
      cpu ^= 1;
      pin_to(cpu);
    }
    Slot& s = t[rng() % t.size()];
    unsigned op = static_cast<unsigned>(rng() % 10);
    if (!s.p) {
      s.n = random_size(rng);
      s.p = kmalloc(s.n);
      if (!s.p) return -1;
      fill_obj(s.p, s.n);
    } else if (op < 7) {
      bad += !check_obj(s.p, s.n);
      if (op & 1)
        kfree(s.p);
      else
        kfree_sized(s.p, s.n);
      s.p = nullptr;
    } else {
      bad += !check_obj(s.p, s.n);
      std::size_t n = random_size(rng);
      std::uint64_t old_seed = seed_of(s.p, s.n);
      void* q = krealloc(s.p, n);
      if (!q) return -1;
      std::size_t keep = std::min(n, s.n);
      bad += first_bad(q, keep, old_seed) != keep;
      s.p = q;
      s.n = n;
      fill_obj(s.p, s.n);
    }
  }
  for (Slot& s : t) {
    if (!s.p) continue;
    bad += !check_obj(s.p, s.n);
    kfree(s.p);
  }
  return bad;
}

TEST(SlubThreads, EightThreadsRandomChurn) {
  constexpr int kThreads = 8;
  std::vector<long> bad(kThreads, 0);
  std::vector<std::thread> th;
  for (int i = 0; i < kThreads; ++i)
    th.emplace_back(
        [&bad, i] { bad[static_cast<std::size_t>(i)] = churn(1000 + i, 250000, 512, 0); });
  for (auto& t : th) t.join();
  for (int i = 0; i < kThreads; ++i)
    EXPECT_EQ(bad[static_cast<std::size_t>(i)], 0) << "thread " << i;
}

TEST(SlubThreads, CpuMigrationMidRun) {
  if (online_cpus_in_mask() < 2 || !cpus01_allowed()) GTEST_SKIP() << "needs CPUs 0 and 1";
  constexpr int kThreads = 4;
  std::vector<long> bad(kThreads, 0);
  std::vector<std::thread> th;
  for (int i = 0; i < kThreads; ++i)
    th.emplace_back([&bad, i] {
      // Flip between CPU 0 and CPU 1 every few hundred operations; a
      // different period per thread so the flips interleave.
      bad[static_cast<std::size_t>(i)] = churn(77 + i, 300000, 256, 200 + 50 * i);
    });
  for (auto& t : th) t.join();
  for (int i = 0; i < kThreads; ++i)
    EXPECT_EQ(bad[static_cast<std::size_t>(i)], 0) << "thread " << i;
}

// A machine with more CPUs than the per-CPU table (kMaxCpus) runs threads
// on CPUs beyond it: they must take the shared path (per-thread sheaves),
// never index past the table. The table is cut to one CPU before set-up in
// a fresh process (the death test's re-exec), so CPU 1 is such a CPU.
// Fails on the old code: the fast path indexed CPU 1's unset sheaf set.
TEST(SlubCpuTableDeathTest, CpusBeyondTheTableUseTheSharedPath) {
  if (online_cpus_in_mask() < 2 || !cpus01_allowed()) GTEST_SKIP() << "needs CPUs 0 and 1";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        slub_set_max_cpu_sheaves_for_test(1);
        // Blocks of every class made on CPU 1, freed on CPU 0, and back.
        for (int round = 0; round < 6; ++round) {
          int from = round & 1;
          if (!pin_to(from) || sched_getcpu() != from) _exit(2);
          std::vector<Slot> v;
          for (std::size_t n = 1; n <= kMaxSmallSize + 70 * KiB; n += n < 512 ? 16 : n / 8)
            for (int k = 0; k < 200; ++k) {
              v.push_back({kmalloc(n), n});
              if (!v.back().p) _exit(3);
              fill_obj(v.back().p, n);
            }
          if (!pin_to(from ^ 1)) _exit(2);
          for (Slot& s : v) {
            if (!check_obj(s.p, s.n)) _exit(4);
            kfree(s.p);
          }
        }
        // Threads migrating between the two CPUs.
        std::vector<long> bad(4, 0);
        std::vector<std::thread> th;
        for (int i = 0; i < 4; ++i)
          th.emplace_back(
              [&bad, i] { bad[static_cast<std::size_t>(i)] = churn(99 + i, 100000, 256, 150); });
        for (auto& t : th) t.join();
        for (long b : bad)
          if (b != 0) _exit(5);
        // CPU 1 never got a set of its own.
        if (slub_nr_cpu_sheaves() != 1) _exit(6);
        _exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// The double-free check holds on the shared path too.
TEST(SlubCpuTableDeathTest, DoubleFreeBeyondTheTable) {
  if (online_cpus_in_mask() < 2 || !cpus01_allowed()) GTEST_SKIP() << "needs CPUs 0 and 1";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        slub_set_max_cpu_sheaves_for_test(1);
        pin_to(1);
        void* p = kmalloc(64);
        kfree(p);
        kfree(p);
      },
      "double free");
}

// A heap that cannot be reserved (RLIMIT_AS too small when the first
// allocation comes) fails that allocation with ENOMEM, not every later one:
// once the limit is raised, the next allocation sets the heap up. Run in a
// fresh process (the death test's re-exec), where nothing has set it up.
// Fails on the old code: the first failure was final.
TEST(SlubInitDeathTest, FailedStartIsRetried) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        FILE* f = std::fopen("/proc/self/status", "r");
        if (!f) _exit(2);
        char line[256];
        unsigned long vm_kb = 0;
        while (std::fgets(line, sizeof line, f))
          if (std::sscanf(line, "VmSize: %lu kB", &vm_kb) == 1) break;
        std::fclose(f);
        rlimit saved{};
        if (vm_kb == 0 || getrlimit(RLIMIT_AS, &saved) != 0) _exit(2);
        rlimit tight = saved;
        tight.rlim_cur = (vm_kb << 10) + 2 * MiB;
        if (setrlimit(RLIMIT_AS, &tight) != 0) _exit(2);
        errno = 0;
        void* p = kmalloc(64);
        int err = errno;
        if (p != nullptr) _exit(3);  // the limit leaves no room for a heap
        if (err != ENOMEM) _exit(4);
        if (kmalloc(100 * KiB) != nullptr) _exit(5);
        if (setrlimit(RLIMIT_AS, &saved) != 0) _exit(2);
        p = kmalloc(64);
        if (p == nullptr) _exit(6);  // the failure was final
        std::memset(p, 1, 64);
        kfree(p);
        void* q = kmalloc(100 * KiB);
        if (q == nullptr) _exit(7);
        kfree(q);
        _exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(SlubThreads, AllocOnOneCpuFreeOnTheOther) {
  if (online_cpus_in_mask() < 2 || !cpus01_allowed()) GTEST_SKIP() << "needs CPUs 0 and 1";
  std::thread t([] {
    for (int round = 0; round < 20; ++round) {
      int from = round & 1;
      ASSERT_TRUE(pin_to(from));
      std::vector<Slot> v(3000);
      std::mt19937_64 rng(static_cast<std::uint64_t>(round));
      for (auto& s : v) {
        s.n = 1 + rng() % 2048;
        s.p = kmalloc(s.n);
        ASSERT_NE(s.p, nullptr);
        fill_obj(s.p, s.n);
      }
      ASSERT_TRUE(pin_to(from ^ 1));
      for (auto& s : v) {
        ASSERT_TRUE(check_obj(s.p, s.n));
        kfree(s.p);
      }
    }
  });
  t.join();
}

// A queue of batches between producers and consumers.
struct Item {
  void* p;
  std::size_t n;
};
class BatchQueue {
 public:
  explicit BatchQueue(std::size_t max_batches) : max_(max_batches) {}
  void push(std::vector<Item>&& b) {
    std::unique_lock<std::mutex> l(mu_);
    not_full_.wait(l, [&] { return q_.size() < max_; });
    q_.push_back(std::move(b));
    not_empty_.notify_one();
  }
  // Empty vector: all producers are done.
  std::vector<Item> pop() {
    std::unique_lock<std::mutex> l(mu_);
    not_empty_.wait(l, [&] { return !q_.empty() || producers_left_ == 0; });
    if (q_.empty()) return {};
    std::vector<Item> b = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return b;
  }
  void set_producers(int n) { producers_left_ = n; }
  void producer_done() {
    std::lock_guard<std::mutex> l(mu_);
    if (--producers_left_ == 0) not_empty_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<std::vector<Item>> q_;
  std::size_t max_;
  int producers_left_ = 0;
};

TEST(SlubThreads, CrossThreadFreesOfMillions) {
  constexpr int kProducers = 2, kConsumers = 2;
  constexpr std::size_t kPerProducer = 1050000, kBatch = 512;
  BatchQueue q(64);
  q.set_producers(kProducers);
  std::atomic<std::size_t> freed{0}, bad{0}, failed{0};
  std::vector<std::thread> th;
  for (int i = 0; i < kProducers; ++i)
    th.emplace_back([&, i] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(i) + 5);
      std::vector<Item> b;
      b.reserve(kBatch);
      for (std::size_t k = 0; k < kPerProducer; ++k) {
        std::size_t n = 8 + rng() % (rng() % 16 ? 120 : 1500);
        void* p = kmalloc(n);
        if (!p) {
          ++failed;
          continue;
        }
        fill_obj(p, n);
        b.push_back({p, n});
        if (b.size() == kBatch) {
          q.push(std::move(b));
          b = {};
          b.reserve(kBatch);
        }
      }
      if (!b.empty()) q.push(std::move(b));
      q.producer_done();
    });
  for (int i = 0; i < kConsumers; ++i)
    th.emplace_back([&] {
      std::size_t mine = 0, mybad = 0;
      for (;;) {
        std::vector<Item> b = q.pop();
        if (b.empty()) break;
        for (const Item& it : b) {
          mybad += !check_obj(it.p, it.n);
          if (mine & 1)
            kfree_sized(it.p, it.n);
          else
            kfree(it.p);
          ++mine;
        }
      }
      freed += mine;
      bad += mybad;
    });
  for (auto& t : th) t.join();
  EXPECT_EQ(failed.load(), 0u);
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_EQ(freed.load(), kProducers * kPerProducer);
  EXPECT_GE(freed.load(), 2000000u);
  // Everything came back: nothing is left allocated.
  kmem_shrink_all();
  EXPECT_EQ(total_active_objs(slabinfo_text()), 0);
}

TEST(SlubThreads, ShortLivedThreadsLeaveNothingBehind) {
  std::vector<void*> handed(0);
  std::mutex mu;
  for (int wave = 0; wave < 16; ++wave) {
    std::vector<std::thread> th;
    for (int i = 0; i < 8; ++i)
      th.emplace_back([&, i] {
        std::mt19937_64 rng(static_cast<std::uint64_t>(wave * 8 + i));
        std::vector<void*> mine;
        for (int k = 0; k < 400; ++k) {
          void* p = kmalloc(1 + rng() % 3000);
          if (p) mine.push_back(p);
        }
        std::lock_guard<std::mutex> l(mu);
        for (std::size_t k = 0; k < mine.size(); ++k) {
          if (k % 2)
            kfree(mine[k]);
          else
            handed.push_back(mine[k]);  // freed by the main thread after exit
        }
      });
    for (auto& t : th) t.join();
  }
  EXPECT_EQ(handed.size(), 16u * 8u * 200u);
  for (void* p : handed) kfree(p);
  kmem_shrink_all();
  EXPECT_EQ(total_active_objs(slabinfo_text()), 0);
}

TEST(SlubThreads, ShrinkWhileOthersAllocate) {
  constexpr int kThreads = 4;
  std::vector<long> bad(kThreads, 0);
  std::atomic<int> running{kThreads};
  std::vector<std::thread> th;
  for (int i = 0; i < kThreads; ++i)
    th.emplace_back([&, i] {
      bad[static_cast<std::size_t>(i)] = churn(300 + i, 150000, 256, 0);
      --running;
    });
  // Shrink and read slabinfo over and over while they run.
  long shrinks = 0;
  while (running.load() > 0) {
    kmem_shrink_all();
    std::string text = slabinfo_text();
    EXPECT_GE(total_active_objs(text), 0) << text;
    ++shrinks;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  for (auto& t : th) t.join();
  for (int i = 0; i < kThreads; ++i)
    EXPECT_EQ(bad[static_cast<std::size_t>(i)], 0) << "thread " << i;
  EXPECT_GT(shrinks, 0);
  kmem_shrink_all();
  EXPECT_EQ(total_active_objs(slabinfo_text()), 0);
}

// The CPUs this thread may run on.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  std::vector<int> v;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return v;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) v.push_back(c);
  return v;
}

// malloc_trim's core must empty every CPU's sheaves from where the caller
// runs: before, it migrated the caller to each CPU of the caller's affinity
// only, so a pinned caller left the other CPUs' caches full.
TEST(SlubShrink, EmptiesOtherCpusWithoutMovingTheCaller) {
  ASSERT_TRUE(slub_init());
  if (cache_mode() != CacheMode::kRseq) GTEST_SKIP() << "rseq mode only";
  std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs";
  int here = cpus[0], there = cpus[1];
  std::thread t([&] {
    ASSERT_TRUE(pin_to(there));
    std::vector<void*> v;
    for (int i = 0; i < 40; ++i) v.push_back(kmalloc(64));
    for (void* p : v) kfree(p);  // into `there`'s main sheaf
  });
  t.join();
  ASSERT_GT(kmem_cpu_cached(static_cast<unsigned>(there), nullptr), 0u);
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  ASSERT_TRUE(pin_to(here));
  kmem_shrink_all();
  EXPECT_EQ(kmem_cpu_cached(static_cast<unsigned>(there), nullptr), 0u);
  EXPECT_EQ(kmem_cpu_cached(static_cast<unsigned>(here), nullptr), 0u);
  cpu_set_t now;
  ASSERT_EQ(sched_getaffinity(0, sizeof now, &now), 0);
  EXPECT_EQ(CPU_COUNT(&now), 1);
  EXPECT_TRUE(CPU_ISSET(here, &now));
  EXPECT_EQ(sched_getcpu(), here);
  sched_setaffinity(0, sizeof saved, &saved);
}

// Per-thread mode: another live thread's set is emptied at its next slow path.
TEST(SlubShrink, OtherThreadsSetsCatchUpWithATrim) {
  ASSERT_TRUE(slub_init());
  if (cache_mode() != CacheMode::kThread) GTEST_SKIP() << "per-thread mode only";
  kmem_shrink_all();
  std::mutex m;
  std::condition_variable cv;
  int step = 0;
  std::thread t([&] {
    std::vector<void*> v;
    for (int i = 0; i < 40; ++i) v.push_back(kmalloc(48));
    for (void* p : v) kfree(p);  // into this thread's 48-byte sheaf
    std::unique_lock<std::mutex> lk(m);
    step = 1;
    cv.notify_all();
    cv.wait(lk, [&] { return step == 2; });
    kfree(kmalloc(20000));  // a slow path: catches up with the trim
    step = 3;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lk(m);
  cv.wait(lk, [&] { return step == 1; });
  EXPECT_GT(active_objs(slabinfo_text(), "kmalloc-48"), 0);
  kmem_shrink_all();
  step = 2;
  cv.notify_all();
  cv.wait(lk, [&] { return step == 3; });
  lk.unlock();
  t.join();
  EXPECT_EQ(active_objs(slabinfo_text(), "kmalloc-48"), 0);
}

// The remote drain races fast paths on the drained CPUs: objects must never
// be handed out twice or lost (pattern checks in churn).
TEST(SlubShrink, RemoteDrainsRaceFastPaths) {
  std::vector<int> cpus = allowed_cpus();
  int n = static_cast<int>(std::min<std::size_t>(cpus.size(), 4));
  std::vector<long> bad(static_cast<std::size_t>(n), 0);
  std::atomic<int> running{n};
  std::vector<std::thread> th;
  for (int i = 0; i < n; ++i)
    th.emplace_back([&, i] {
      pin_to(cpus[static_cast<std::size_t>(i)]);
      bad[static_cast<std::size_t>(i)] = churn(700 + i, 200000, 128, 0);
      --running;
    });
  long drains = 0;
  while (running.load() > 0) {
    kmem_shrink_all();
    for (int c : cpus) kmem_drain_cpu(static_cast<unsigned>(c));
    ++drains;
  }
  for (auto& t : th) t.join();
  for (int i = 0; i < n; ++i) EXPECT_EQ(bad[static_cast<std::size_t>(i)], 0) << "thread " << i;
  EXPECT_GT(drains, 0);
  kmem_shrink_all();
  EXPECT_EQ(total_active_objs(slabinfo_text()), 0);
}

// A TSD destructor of a key created after the allocator's runs after the
// allocator tore the thread's caches down (as glibc's late frees do).
std::atomic<long> g_late_bad{0}, g_late_done{0};
void late_destructor(void*) {
  std::vector<Slot> v;
  for (int i = 0; i < 500; ++i) {
    std::size_t n = 1 + static_cast<std::size_t>(i * 37 % 5000);
    void* p = kmalloc(n);
    if (!p) {
      ++g_late_bad;
      continue;
    }
    fill_obj(p, n);
    v.push_back({p, n});
  }
  for (const Slot& s : v) {
    g_late_bad += !check_obj(s.p, s.n);
    kfree(s.p);
  }
  ++g_late_done;
}

TEST(SlubThreads, AllocationsAfterThreadTeardown) {
  kfree(kmalloc(8));  // the allocator's key first
  pthread_key_t key;
  ASSERT_EQ(pthread_key_create(&key, late_destructor), 0);
  for (int round = 0; round < 20; ++round) {
    std::thread t([key] {
      std::vector<void*> v;
      for (int i = 0; i < 300; ++i) v.push_back(kmalloc(static_cast<std::size_t>(16 + i)));
      for (void* p : v) kfree(p);
      pthread_setspecific(key, reinterpret_cast<void*>(1));
    });
    t.join();
  }
  EXPECT_EQ(g_late_done.load(), 20);
  EXPECT_EQ(g_late_bad.load(), 0);
  pthread_key_delete(key);
  kmem_shrink_all();
  EXPECT_EQ(total_active_objs(slabinfo_text()), 0);
}

}  // namespace
}  // namespace numaslub
