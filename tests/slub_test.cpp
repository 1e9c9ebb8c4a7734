// Tests for lib/slub: size classes, alignment, content integrity, large and
// huge blocks, kcalloc / krealloc / kmalloc_aligned / kmalloc_node,
// ownership, shrinking and the slabinfo view. Threads: slub_threads_test;
// the always-on checks: slub_hardening_test.
//
// The per-CPU mode and the node layout are chosen once per process from
// NUMASLUB_CONF; ctest runs this binary in four configurations (see
// tests/CMakeLists.txt): as is (rseq), "percpu=thread", "fake_numa=2" and
// both.
#include "tests/slub_test_util.h"

namespace numaslub {
namespace {

using namespace slubtest;

// ------------------------------------------------------------ mode

TEST(SlubMode, MatchesEnvironment) {
  kfree(kmalloc(8));
  std::string conf = conf_env();
  if (conf.find("percpu=thread") != std::string::npos) {
    EXPECT_EQ(cache_mode(), CacheMode::kThread);
  } else {
    // glibc 2.36 registers rseq for every thread: auto picks the per-CPU mode.
    EXPECT_GT(__rseq_size, 0u) << "glibc did not register rseq";
    EXPECT_EQ(cache_mode(), CacheMode::kRseq) << "NUMASLUB_CONF=" << conf;
  }
}

TEST(SlubMode, FakeNumaNodes) {
  kfree(kmalloc(8));
  PageAllocator* pa = page_allocator();
  ASSERT_NE(pa, nullptr);
  std::string conf = conf_env();
  std::size_t pos = conf.find("fake_numa=");
  if (pos == std::string::npos) GTEST_SKIP() << "NUMASLUB_CONF has no fake_numa";
  unsigned want = static_cast<unsigned>(std::atoi(conf.c_str() + pos + 10));
  EXPECT_EQ(pa->nr_nodes(), want);
}

// ------------------------------------------------------------ size classes

TEST(SlubClasses, TableIsSortedAndSixteenAligned) {
  EXPECT_EQ(kClassSize[0], 16u);
  EXPECT_EQ(kClassSize[kNrClasses - 1], kMaxSmallSize);
  for (unsigned c = 0; c < kNrClasses; ++c) {
    EXPECT_EQ(kClassSize[c] % 16, 0u) << c;
    if (c) {
      EXPECT_GT(kClassSize[c], kClassSize[c - 1]) << c;
    }
  }
  for (std::size_t n = 1; n <= kMaxSmallSize; ++n) {
    unsigned c = size_to_class(n);
    ASSERT_LT(c, kNrClasses);
    ASSERT_GE(kClassSize[c], n);
    if (c) {
      ASSERT_LT(kClassSize[c - 1], n) << "not the smallest class for " << n;
    }
  }
}

TEST(SlubClasses, BoundarySizesAlignedSizedAndIntact) {
  struct Obj {
    void* p;
    std::size_t n;
  };
  std::vector<Obj> objs;
  for (std::size_t n : boundary_sizes()) {
    for (int k = 0; k < 4; ++k) {
      void* p = kmalloc(n);
      ASSERT_NE(p, nullptr) << n;
      EXPECT_EQ(addr(p) % expected_align(n), 0u) << "size " << n << " at " << p;
      EXPECT_GE(ksize(p), n) << n;
      EXPECT_GE(ksize(p), 1u) << n;
      if (n >= 1 && n <= kMaxSmallSize) {
        EXPECT_EQ(ksize(p), kClassSize[size_to_class(n)]) << n;
      }
      EXPECT_TRUE(kowns(p)) << n;
      fill_obj(p, n);
      objs.push_back({p, n});
    }
  }
  // Distinct blocks.
  std::vector<void*> ptrs;
  for (auto& o : objs) ptrs.push_back(o.p);
  std::sort(ptrs.begin(), ptrs.end());
  EXPECT_EQ(std::adjacent_find(ptrs.begin(), ptrs.end()), ptrs.end());

  // Lots of other traffic, then every pattern must still be there.
  std::mt19937_64 rng(42);
  std::vector<Obj> churn;
  for (int i = 0; i < 30000; ++i) {
    if (churn.size() > 300 && rng() % 2) {
      std::size_t k = rng() % churn.size();
      ASSERT_TRUE(check_obj(churn[k].p, churn[k].n));
      kfree(churn[k].p);
      churn[k] = churn.back();
      churn.pop_back();
    } else {
      std::size_t n = 1 + rng() % (rng() % 8 ? 512 : kMaxSmallSize);
      void* p = kmalloc(n);
      ASSERT_NE(p, nullptr);
      fill_obj(p, n);
      churn.push_back({p, n});
    }
  }
  for (auto& o : objs) {
    EXPECT_TRUE(check_obj(o.p, o.n)) << "size " << o.n << " corrupted";
    kfree(o.p);
  }
  for (auto& o : churn) {
    EXPECT_TRUE(check_obj(o.p, o.n));
    kfree(o.p);
  }
}

TEST(SlubClasses, FreedObjectsAreReused) {
  // Freeing and allocating the same class must recycle memory rather than
  // grow: the working set stays bounded. (On one CPU: with fake nodes, a
  // migration would switch to the other node's objects.)
  AffinityGuard restore;
  pin_here();
  for (std::size_t n : {16u, 64u, 200u, 1024u, 4096u}) {
    std::vector<void*> first(256);
    for (auto& p : first) p = kmalloc(n);
    std::sort(first.begin(), first.end());
    for (void* p : first) kfree(p);
    std::vector<void*> second(256);
    for (auto& p : second) p = kmalloc(n);
    std::size_t reused = 0;
    for (void* p : second) reused += std::binary_search(first.begin(), first.end(), p);
    EXPECT_GT(reused, 128u) << "class " << n;
    for (void* p : second) kfree(p);
  }
}

TEST(SlubClasses, KfreeSizedAndNull) {
  kfree(nullptr);
  kfree_sized(nullptr, 0);
  for (std::size_t n : boundary_sizes()) {
    void* p = kmalloc(n);
    ASSERT_NE(p, nullptr);
    fill_obj(p, n);
    ASSERT_TRUE(check_obj(p, n));
    kfree_sized(p, n);
  }
  EXPECT_EQ(ksize(nullptr), 0u);
}

// ------------------------------------------------------------ large and huge

TEST(SlubLarge, SizesUsableAndFreed) {
  std::vector<std::size_t> sizes{kMaxSmallSize + 1, 33 * KiB,    40000,   64 * KiB - 1, 64 * KiB,
                                 100 * KiB,         300001,      1 * MiB, 1 * MiB + 1,  2 * MiB + 5,
                                 3 * MiB,           4 * MiB - 1, 4 * MiB};
  struct Obj {
    void* p;
    std::size_t n;
  };
  std::vector<Obj> live;
  for (std::size_t n : sizes) {
    void* p = kmalloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_EQ(addr(p) % 4096, 0u) << n;
    std::size_t us = ksize(p);
    EXPECT_GE(us, n);
    EXPECT_EQ(us % 4096, 0u);
    EXPECT_LT(us - n, 4096u) << "tail pages of a large block are given back";
    EXPECT_TRUE(kowns(p));
    // The whole usable size is writable.
    static_cast<char*>(p)[us - 1] = 1;
    fill_obj(p, n);
    live.push_back({p, n});
  }
  for (auto& o : live) {
    EXPECT_TRUE(check_obj(o.p, o.n)) << o.n;
    kfree(o.p);
  }
  // Freed large blocks are recycled: a long alloc/free loop of 4 MiB blocks
  // does not run out of memory or address space.
  for (int i = 0; i < 300; ++i) {
    void* p = kmalloc(4 * MiB - (i % 7) * 4096);
    ASSERT_NE(p, nullptr) << i;
    static_cast<char*>(p)[0] = 1;
    kfree(p);
  }
}

TEST(SlubVmalloc, SizesUsableAndFreed) {
  for (std::size_t n : {4 * MiB + 1, 4 * MiB + 4096, 5 * MiB + 3, 8 * MiB, 33 * MiB}) {
    void* p = kmalloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_EQ(addr(p) % 4096, 0u);
    std::size_t us = ksize(p);
    EXPECT_GE(us, n);
    EXPECT_EQ(us % 4096, 0u);
    EXPECT_LT(us - n, 4096u);
    EXPECT_TRUE(kowns(p));
    fill_obj(p, n);
    EXPECT_TRUE(check_obj(p, n));
    kfree(p);
    // The mapping is gone from the table.
    EXPECT_FALSE(kowns(p));
    EXPECT_EQ(ksize(p), 0u);
  }
  // Many at once (the mapping table grows), then freed in another order.
  std::vector<void*> v;
  for (int i = 0; i < 300; ++i) {
    void* p = kmalloc(4 * MiB + 4096 * static_cast<std::size_t>(1 + i % 5));
    ASSERT_NE(p, nullptr);
    *static_cast<int*>(p) = i;
    v.push_back(p);
  }
  for (int i = 0; i < 300; ++i) EXPECT_EQ(ksize(v[i]), 4 * MiB + 4096 * (1 + i % 5));
  for (int i = 0; i < 300; i += 2) kfree(v[i]);
  for (int i = 1; i < 300; i += 2) {
    EXPECT_EQ(*static_cast<int*>(v[i]), i);
    kfree(v[i]);
  }
}

TEST(SlubVmalloc, ImpossibleSizesFailWithEnomem) {
  for (std::size_t n : {std::size_t{1} << 50, SIZE_MAX, SIZE_MAX - 4096}) {
    errno = 0;
    EXPECT_EQ(kmalloc(n), nullptr) << n;
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(kmalloc_aligned(4096, n), nullptr) << n;
    EXPECT_EQ(errno, ENOMEM);
  }
}

std::uint64_t direct_reclaims() {
  static char buf[8192];
  vmstat(buf, sizeof buf);
  const char* s = std::strstr(buf, "direct_reclaim ");
  return s ? std::strtoull(s + std::strlen("direct_reclaim "), nullptr, 10) : ~0ull;
}

// A request that can never fit fails without draining every cache first.
TEST(SlubVmalloc, ImpossibleSizesSkipDirectReclaim) {
  void* p = kmalloc(100 * KiB);
  ASSERT_NE(p, nullptr);
  std::uint64_t before = direct_reclaims();
  ASSERT_NE(before, ~0ull);
  for (std::size_t n : {SIZE_MAX, SIZE_MAX - 4095, std::size_t{1} << 50, kMaxAllocSize + 1}) {
    EXPECT_EQ(kmalloc(n), nullptr) << n;
    EXPECT_EQ(kcalloc(1, n), nullptr) << n;
    EXPECT_EQ(kmalloc_aligned(64, n), nullptr) << n;
    EXPECT_EQ(kmalloc_aligned(64 * KiB, n), nullptr) << n;
    EXPECT_EQ(kmalloc_node(n, 0), nullptr) << n;
    EXPECT_EQ(krealloc(p, n), nullptr) << n;
  }
  EXPECT_EQ(kmalloc_aligned(std::size_t{1} << 50, 1), nullptr);
  EXPECT_EQ(direct_reclaims(), before);
  kfree(p);
}

// ------------------------------------------------------------ kcalloc

TEST(SlubCalloc, Zeroes) {
  std::vector<std::size_t> sizes = boundary_sizes();
  for (std::size_t n : {40000ul, 1 * MiB, 4 * MiB, 4 * MiB + 1, 6 * MiB}) sizes.push_back(n);
  for (std::size_t n : sizes) {
    void* p = kcalloc(1, n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(all_zero(p, n)) << n;
    EXPECT_GE(ksize(p), n);
    kfree(p);
    p = kcalloc(n ? n : 1, 1);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(all_zero(p, n)) << n;
    kfree(p);
  }
  void* p = kcalloc(0, 0);
  EXPECT_NE(p, nullptr);
  kfree(p);
}

TEST(SlubCalloc, ReusedDirtyBlockIsZeroed) {
  std::vector<std::size_t> sizes = boundary_sizes();
  for (std::size_t n : {40000ul, 256 * KiB, 1 * MiB, 4 * MiB, 4 * MiB + 1}) sizes.push_back(n);
  for (std::size_t n : sizes) {
    for (int round = 0; round < 3; ++round) {
      void* d = kmalloc(n);
      ASSERT_NE(d, nullptr);
      std::memset(d, 0xff, ksize(d));
      kfree(d);
      void* p = kcalloc(1, n);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(all_zero(p, n)) << "size " << n << (p == d ? " (same block)" : "");
      std::memset(p, 0xff, n);
      kfree(p);
    }
  }
  // n * size with n > 1.
  void* d = kmalloc(4000);
  std::memset(d, 0xab, 4000);
  kfree(d);
  auto* q = static_cast<int*>(kcalloc(1000, sizeof(int)));
  ASSERT_NE(q, nullptr);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(q[i], 0);
  kfree(q);
}

TEST(SlubCalloc, OverflowIsEnomem) {
  struct {
    std::size_t n, size;
  } cases[] = {{SIZE_MAX, 2},
               {2, SIZE_MAX},
               {std::size_t{1} << 33, std::size_t{1} << 33},
               {SIZE_MAX / 16 + 1, 16},
               {SIZE_MAX, SIZE_MAX}};
  for (auto c : cases) {
    errno = 0;
    EXPECT_EQ(kcalloc(c.n, c.size), nullptr) << c.n << " x " << c.size;
    EXPECT_EQ(errno, ENOMEM);
  }
  // Products that fit but are too large to map.
  errno = 0;
  EXPECT_EQ(kcalloc(std::size_t{1} << 25, std::size_t{1} << 25), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

// ------------------------------------------------------------ krealloc

TEST(SlubRealloc, KeepsContentAcrossTiers) {
  // Slab -> large -> huge -> large -> slab, growing and shrinking.
  const std::size_t chain[] = {
      1,     16,      17,      100,         1000,    4096,       32767,    32768,   32769,
      40000, 1 * MiB, 4 * MiB, 4 * MiB + 1, 9 * MiB, 20 * MiB,   5 * MiB,  4 * MiB, 3 * MiB,
      50000, 32768,   2000,    24,          8,       3000 * KiB, 12 * MiB, 100,     6 * MiB};
  const std::uint64_t seed = 0x1234567;
  std::size_t cur = 0;
  void* p = nullptr;
  for (std::size_t n : chain) {
    void* q = krealloc(p, n);
    ASSERT_NE(q, nullptr) << n;
    EXPECT_GE(ksize(q), n);
    std::size_t keep = std::min(cur, n);
    ASSERT_EQ(first_bad(q, keep, seed), keep) << cur << " -> " << n;
    fill(q, n, seed);
    p = q;
    cur = n;
  }
  EXPECT_EQ(krealloc(p, 0), nullptr);  // frees p
}

TEST(SlubRealloc, NullAndZero) {
  void* p = krealloc(nullptr, 100);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(ksize(p), 100u);
  fill_obj(p, 100);
  EXPECT_EQ(krealloc(p, 0), nullptr);
  for (std::size_t n : {64 * KiB, 5 * MiB}) {
    void* q = kmalloc(n);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(krealloc(q, 0), nullptr) << n;
  }
  // The memory released by realloc(p, 0) is reused: no leak across many.
  for (int i = 0; i < 100000; ++i) {
    void* q = kmalloc(48);
    ASSERT_NE(q, nullptr);
    ASSERT_EQ(krealloc(q, 0), nullptr);
  }
}

TEST(SlubRealloc, InPlace) {
  // Shrinking a large block keeps the pointer and gives the tail back.
  void* p = kmalloc(1 * MiB);
  ASSERT_NE(p, nullptr);
  fill(p, 1 * MiB, 7);
  void* q = krealloc(p, 100 * KiB + 1);
  EXPECT_EQ(q, p);
  EXPECT_EQ(ksize(q), 104 * KiB);
  EXPECT_EQ(first_bad(q, 100 * KiB + 1, 7), 100 * KiB + 1);
  q = krealloc(q, 33 * KiB);
  EXPECT_EQ(q, p);
  EXPECT_EQ(ksize(q), 36 * KiB);
  EXPECT_EQ(first_bad(q, 33 * KiB, 7), 33 * KiB);
  // Growing within the pages it already has also keeps it.
  q = krealloc(q, 35 * KiB);
  EXPECT_EQ(q, p);
  kfree(q);

  // A slab object shrunk within its class stays.
  p = kmalloc(100);
  fill(p, 100, 9);
  q = krealloc(p, 97);
  EXPECT_EQ(q, p);
  EXPECT_EQ(first_bad(q, 97, 9), 97u);
  kfree(q);
}

TEST(SlubRealloc, HeapBlocksNeverTakeTheMappingTableLock) {
  // huge.cpp's table lock is process-wide: a realloc of a heap block (small
  // or large) decides without it. Held by this thread, a realloc that took
  // it would abort as a self-deadlock.
  void* s = kmalloc(40);
  void* l = kmalloc(100 * KiB);
  ASSERT_NE(s, nullptr);
  ASSERT_NE(l, nullptr);
  fill(s, 40, 3);
  fill(l, 100 * KiB, 4);
  vmalloc_hold_lock_for_test(true);
  void* s2 = krealloc(s, 48);          // the same class: kept
  void* s3 = krealloc(s2, 300);        // another class: moved
  void* l2 = krealloc(l, 50 * KiB);    // shrunk in place
  void* l3 = krealloc(l2, 900 * KiB);  // grown in place or moved
  std::size_t small_size = ksize_small(s3), large_size = ksize_small(l3);
  vmalloc_hold_lock_for_test(false);
  EXPECT_EQ(s2, s);
  ASSERT_NE(s3, nullptr);
  EXPECT_EQ(first_bad(s3, 40, 3), 40u);
  EXPECT_EQ(l2, l);
  ASSERT_NE(l3, nullptr);
  EXPECT_EQ(first_bad(l3, 50 * KiB, 4), 50 * KiB);
  EXPECT_EQ(small_size, ksize(s3));
  EXPECT_EQ(large_size, 0u);  // not a slab object: krealloc's
  kfree(s3);
  kfree(l3);
}

TEST(SlubRealloc, KsizeSmallOnlyForLiveSlabObjects) {
  // realloc's fast path (kmalloc.h) keeps or moves what ksize_small sizes:
  // a live object's start, never a freed one, an interior pointer or a
  // block of another kind.
  for (std::size_t n : {std::size_t{1}, 16ul, 17ul, 100ul, 1000ul, 4096ul, 20000ul, 32768ul}) {
    void* p = kmalloc(n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(ksize_small(p), ksize(p)) << n;
    EXPECT_EQ(ksize_small(static_cast<char*>(p) + 8), 0u) << n;
    EXPECT_TRUE(realloc_keeps(ksize_small(p), ksize(p))) << n;
    kfree(p);
    EXPECT_EQ(ksize_small(p), 0u) << n;  // free: its tag is set
  }
  void* l = kmalloc(64 * KiB);
  EXPECT_EQ(ksize_small(l), 0u);
  kfree(l);
  EXPECT_EQ(ksize_small(nullptr), 0u);
  std::uintptr_t on_stack[2] = {};
  EXPECT_EQ(ksize_small(on_stack), 0u);
  EXPECT_FALSE(realloc_keeps(48, 0));
  EXPECT_FALSE(realloc_keeps(48, 24));
  EXPECT_TRUE(realloc_keeps(48, 25));
  EXPECT_FALSE(realloc_keeps(48, 49));
}

TEST(SlubFree, SizeCheckBitOnlyUnderDebug) {
  // Without debug a sized free pushes as a plain free does; the size check
  // bit sends it to kfree_sized_slow (slub_debug_test sets it).
  EXPECT_TRUE(slub_init());
  EXPECT_EQ(g_fastpath.free_checks & kFreeCheckSize, 0);
  EXPECT_EQ((g_fastpath.free_checks & kFreeCheckNode) != 0, g_fastpath.multi_node);
  // A wrong size is harmless without debug: the page descriptor decides.
  AffinityGuard restore;
  pin_here();  // the same CPU's sheaf for the free and the malloc
  void* p = kmalloc(64);
  kfree_sized(p, 4096);
  void* q = kmalloc(64);
  EXPECT_EQ(q, p);  // back from this CPU's (thread's) sheaf
  kfree_sized(q, 1);
}

TEST(SlubRealloc, FailureLeavesBlockIntact) {
  // SIZE_MAX - k rounds up past SIZE_MAX to 0 pages: it once "shrank" a
  // large block in place to nothing.
  for (std::size_t n : {std::size_t{40}, 3000ul, 100 * KiB, 6 * MiB}) {
    for (std::size_t to : {std::size_t{1} << 50, SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4094,
                           SIZE_MAX - 4096, kMaxAllocSize + 1}) {
      void* p = kmalloc(n);
      ASSERT_NE(p, nullptr);
      std::size_t usable = ksize(p);
      fill(p, n, 11);
      errno = 0;
      EXPECT_EQ(krealloc(p, to), nullptr) << n << " -> " << to;
      EXPECT_EQ(errno, ENOMEM);
      EXPECT_EQ(first_bad(p, n, 11), n) << n;
      EXPECT_EQ(ksize(p), usable) << n << " -> " << to;
      kfree(p);
    }
  }
}

// ------------------------------------------------------------ kmalloc_aligned

TEST(SlubAligned, EveryPowerOfTwo) {
  for (std::size_t align = 16; align <= 1 * MiB; align *= 2) {
    const std::size_t sizes[] = {1,         8,         align / 2, align - 1, align,
                                 align + 1, 3 * align, 100,       5000,      40000};
    std::vector<Slot> live;
    for (std::size_t n : sizes) {
      for (int k = 0; k < 3; ++k) {
        void* p = kmalloc_aligned(align, n);
        ASSERT_NE(p, nullptr) << "align " << align << " size " << n;
        EXPECT_EQ(addr(p) % align, 0u) << "align " << align << " size " << n << " -> " << p;
        EXPECT_GE(ksize(p), n);
        EXPECT_TRUE(kowns(p));
        fill_obj(p, n);
        live.push_back({p, n});
      }
    }
    for (const Slot& s : live) {
      EXPECT_TRUE(check_obj(s.p, s.n)) << "align " << align << " size " << s.n;
      kfree(s.p);
    }
  }
}

TEST(SlubAligned, HugeAlignments) {
  for (std::size_t align : {2 * MiB, 4 * MiB, 8 * MiB}) {
    for (std::size_t n : {std::size_t{1}, 4096ul, 1 * MiB, 3 * MiB, 4 * MiB, 5 * MiB, 9 * MiB}) {
      void* p = kmalloc_aligned(align, n);
      ASSERT_NE(p, nullptr) << "align " << align << " size " << n;
      EXPECT_EQ(addr(p) % align, 0u) << "align " << align << " size " << n;
      EXPECT_GE(ksize(p), n);
      EXPECT_TRUE(kowns(p));
      std::memset(p, 0x5a, n);
      kfree(p);
    }
  }
}

// A zero-byte block with a large alignment owns a page until freed; it once
// had 0 pages (every page freed at once), and the next allocation took them.
TEST(SlubAligned, ZeroSizeOwnsItsAddress) {
  for (std::size_t align = 64 * KiB; align <= 16 * MiB; align *= 2) {
    void* p = kmalloc_aligned(align, 0);
    ASSERT_NE(p, nullptr) << align;
    EXPECT_EQ(addr(p) % align, 0u) << align;
    EXPECT_TRUE(kowns(p)) << align;
    std::size_t len = ksize(p);
    EXPECT_GE(len, 1u) << align;
    std::vector<void*> more;
    for (std::size_t n : {std::size_t{0}, 1ul, 4096ul, 64 * KiB, align}) {
      for (int k = 0; k < 4; ++k) {
        void* q = kmalloc_aligned(align, n);
        ASSERT_NE(q, nullptr);
        EXPECT_FALSE(addr(q) < addr(p) + (len ? len : 1) && addr(p) < addr(q) + ksize(q))
            << "align " << align << ": " << q << " overlaps the zero-byte block " << p;
        more.push_back(q);
      }
    }
    for (void* q : more) kfree(q);
    kfree(p);
  }
}

// ------------------------------------------------------------ kmalloc_node

TEST(SlubNode, EveryNodeServes) {
  // Stay on one CPU: a migration between the node check and the sheaf pop
  // could hand out the other node's object (a per-CPU cache is a hint).
  AffinityGuard restore;
  pin_here();
  kfree(kmalloc(8));
  PageAllocator* pa = page_allocator();
  ASSERT_NE(pa, nullptr);
  for (int nid = -1; nid < static_cast<int>(pa->nr_nodes()); ++nid) {
    for (std::size_t n : {std::size_t{1}, 64ul, 1000ul, 32768ul, 40000ul, 1 * MiB, 5 * MiB}) {
      std::vector<void*> v;
      for (int k = 0; k < 50; ++k) {
        void* p = kmalloc_node(n, nid);
        ASSERT_NE(p, nullptr) << "node " << nid << " size " << n;
        EXPECT_GE(ksize(p), n);
        EXPECT_TRUE(kowns(p));
        EXPECT_EQ(addr(p) % 16, 0u);
        if (nid >= 0 && pa->owns(p)) {
          EXPECT_EQ(pa->page_to_nid(pa->virt_to_page(p)), static_cast<unsigned>(nid))
              << "size " << n;
        }
        fill_obj(p, n);
        v.push_back(p);
        if (n > 1 * MiB && k >= 3) break;
      }
      for (void* p : v) {
        EXPECT_TRUE(check_obj(p, n));
        kfree(p);
      }
    }
  }
  errno = 0;
  EXPECT_EQ(kmalloc_node(64, static_cast<int>(pa->nr_nodes())), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST(SlubNode, NodeOfTheCpuAfterMigration) {
  kfree(kmalloc(8));
  PageAllocator* pa = page_allocator();
  ASSERT_NE(pa, nullptr);
  if (pa->nr_nodes() < 2 || !cpus01_allowed()) GTEST_SKIP() << "needs 2 nodes and CPUs 0, 1";
  int n0 = pa->topo().node_of_cpu(0), n1 = pa->topo().node_of_cpu(1);
  if (n0 == n1) GTEST_SKIP() << "CPUs 0 and 1 share a node";
  // A fresh thread sets its caches up on CPU 0, then moves to CPU 1.
  std::thread t([&] {
    ASSERT_TRUE(pin_to(0));
    for (std::size_t n : {std::size_t{64}, 1000ul}) kfree(kmalloc(n));
    ASSERT_TRUE(pin_to(1));
    for (int nid : {n0, n1}) {
      for (std::size_t n : {std::size_t{64}, 1000ul, 40000ul}) {
        std::vector<void*> v;
        for (int k = 0; k < 200; ++k) {
          void* p = kmalloc_node(n, nid);
          ASSERT_NE(p, nullptr);
          EXPECT_EQ(pa->page_to_nid(pa->virt_to_page(p)), static_cast<unsigned>(nid))
              << "size " << n << ", running on node " << n1;
          v.push_back(p);
        }
        for (void* p : v) kfree(p);
      }
    }
  });
  t.join();
}

// ------------------------------------------------------------ ownership

TEST(SlubOwnership, Kowns) {
  std::vector<void*> ours;
  for (std::size_t n : {std::size_t{1}, 64ul, 4096ul, 32768ul, 40000ul, 4 * MiB, 5 * MiB}) {
    void* p = kmalloc(n);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(kowns(p)) << n;
    ours.push_back(p);
  }
  ours.push_back(kmalloc_aligned(4096, 100));
  ours.push_back(kcalloc(10, 10));
  for (void* p : ours) EXPECT_TRUE(kowns(p));

  int on_stack = 0;
  EXPECT_FALSE(kowns(&on_stack));
  EXPECT_EQ(ksize(&on_stack), 0u);
  static int in_data = 0;
  EXPECT_FALSE(kowns(&in_data));
  EXPECT_FALSE(kowns(nullptr));
  void* m = mmap(nullptr, 64 * KiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  EXPECT_FALSE(kowns(m));
  EXPECT_EQ(ksize(m), 0u);
  munmap(m, 64 * KiB);
  void* libc = std::malloc(100);
  EXPECT_FALSE(kowns(libc));
  std::free(libc);
  for (void* p : ours) kfree(p);
}

// ------------------------------------------------------------ shrink, slabinfo

TEST(SlubShrink, ReturnsPagesAfterFreeingALot) {
  std::vector<void*> v;
  for (int i = 0; i < 100000; ++i) v.push_back(kmalloc(64));
  for (int i = 0; i < 4000; ++i) v.push_back(kmalloc(4096));
  for (int i = 0; i < 500; ++i) v.push_back(kmalloc(30000));
  for (void* p : v) ASSERT_NE(p, nullptr);
  std::string busy = slabinfo_text();
  EXPECT_GE(active_objs(busy, "kmalloc-64"), 100000);
  std::shuffle(v.begin(), v.end(), std::mt19937_64(3));
  for (void* p : v) kfree(p);
  std::size_t pages = kmem_shrink_all();
  EXPECT_GT(pages, 0u);
  std::string idle = slabinfo_text();
  EXPECT_EQ(active_objs(idle, "kmalloc-64"), 0);
  EXPECT_EQ(active_objs(idle, "kmalloc-4096"), 0);
  EXPECT_EQ(active_objs(idle, "kmalloc-32768"), 0);
  // Nothing left to give: a second shrink right away returns (almost) nothing
  // from the caches, and the heap still works afterwards.
  void* p = kmalloc(64);
  ASSERT_NE(p, nullptr);
  fill_obj(p, 64);
  EXPECT_TRUE(check_obj(p, 64));
  kfree(p);
}

TEST(SlubInfo, HeaderAndActiveObjects) {
  kfree(kmalloc(64));
  kmem_shrink_all();
  std::string before = slabinfo_text();
  EXPECT_EQ(before.rfind("slabinfo - version: 2.1\n", 0), 0u) << before.substr(0, 80);
  EXPECT_NE(before.find("# name            <active_objs> <num_objs>"), std::string::npos);
  for (std::uint32_t c : kClassSize)
    EXPECT_GE(active_objs(before, "kmalloc-" + std::to_string(c)), 0) << c;
  long a0 = active_objs(before, "kmalloc-64");
  ASSERT_GE(a0, 0);

  std::vector<void*> v;
  for (int i = 0; i < 1000; ++i) v.push_back(kmalloc(64));
  std::string during = slabinfo_text();
  long a1 = active_objs(during, "kmalloc-64");
  EXPECT_GE(a1, a0 + 1000);
  // kmalloc-640 is a different cache and did not move.
  EXPECT_EQ(active_objs(during, "kmalloc-640"), active_objs(before, "kmalloc-640"));
  for (void* p : v) kfree(p);
  kmem_shrink_all();
  EXPECT_EQ(active_objs(slabinfo_text(), "kmalloc-64"), a0);
}

TEST(SlubInfo, SmallBufferIsTerminatedAndNotOverrun) {
  char buf[80];
  std::memset(buf, 'X', sizeof buf);
  slabinfo(buf, 40);
  EXPECT_LT(std::strlen(buf), 40u);
  EXPECT_EQ(std::string(buf).rfind("slabinfo", 0), 0u);
  for (std::size_t i = 40; i < sizeof buf; ++i) ASSERT_EQ(buf[i], 'X') << i;
}

}  // namespace
}  // namespace numaslub
