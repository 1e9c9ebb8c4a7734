// Tests for lib/slub: size classes, alignment, content integrity,
// kmalloc_aligned / kmalloc_node, ownership, shrinking and the slabinfo
// view with the caches' figures for other layers (cache_stats.h). Large
// blocks, direct mappings, kcalloc and krealloc:
// slub_tiers_test. Threads: slub_threads_test;
// the always-on checks: slub_hardening_test.
//
// The per-CPU mode and the node layout are chosen once per process from
// NUMASLUB_CONF; ctest runs this binary in four configurations (see
// tests/CMakeLists.txt): as is (rseq), "percpu=thread", "fake_numa=2" and
// both.
#include "lib/slub/cache_stats.h"
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

// ------------------------------------------------------------ the fast paths' state (kmalloc.h)

TEST(SlubFastPath, DirectSlotTableServesEachSizeFromItsClass) {
  // malloc's fast path looks sizes up to kSlotDirectMax in a table indexed
  // by the size itself, filled by set-up (it is in .bss: zero before).
  ASSERT_TRUE(slub_init());
  for (std::size_t n = 0; n <= kSlotDirectMax; ++n)
    ASSERT_EQ(g_fastpath.slot_by_size[n], class_slot_offset(size_to_class(n))) << n;
  EXPECT_EQ(std::memcmp(&g_fastpath.obj_index, &kObjIndex, sizeof kObjIndex), 0);
  // Through the table: an object freed on this CPU (thread) is the next one
  // of its class, whatever size within the class asks for it.
  AffinityGuard restore;
  pin_here();
  for (std::size_t n = 1; n <= kSlotDirectMax + 128; ++n) {
    unsigned c = size_to_class(n);
    void* p = kmalloc(kClassSize[c]);
    ASSERT_NE(p, nullptr);
    kfree(p);
    void* q = kmalloc(n);
    EXPECT_EQ(q, p) << n;
    EXPECT_EQ(ksize(q), kClassSize[c]) << n;
    kfree(q);
  }
}

TEST(SlubFastPath, FreeUncheckedByteFollowsModeAndChecks) {
  // The free fast path compares one byte per kind of free: the mode it
  // pushes in without a check, or none when a check is due.
  ASSERT_TRUE(slub_init());
  auto mode = static_cast<std::uint8_t>(cache_mode());
  std::uint8_t checks = g_fastpath.free_checks;
  EXPECT_NE(mode, 0);
  EXPECT_EQ(g_fastpath.free_unchecked[0], (checks & kFreeCheckNode) ? 0 : mode);
  EXPECT_EQ(g_fastpath.free_unchecked[1], checks ? 0 : mode);
  // Multi-node heaps (the fake_numa runs) check every free's node.
  EXPECT_EQ(g_fastpath.free_unchecked[0] == 0, g_fastpath.multi_node);
}

TEST(SlubFastPath, RseqPushLandsInTheSetAtItsFixedDistance) {
  // The rseq sections address CPU c's set at &g_fastpath + kCpuSetsDisp +
  // c * kPercpuSheavesStride, from the register holding &g_fastpath.
  kfree(kmalloc(64));
  if (cache_mode() != CacheMode::kRseq) GTEST_SKIP() << "per-thread mode";
  AffinityGuard restore;
  pin_here();
  int cpu = sched_getcpu();
  ASSERT_GE(cpu, 0);
  ASSERT_LT(static_cast<unsigned>(cpu), slub_nr_cpu_sheaves());
  EXPECT_EQ(reinterpret_cast<char*>(&g_fastpath_block.state), reinterpret_cast<char*>(&g_fastpath));
  auto* set = reinterpret_cast<PercpuSheaves*>(reinterpret_cast<char*>(&g_fastpath) + kCpuSetsDisp +
                                               (std::size_t{unsigned(cpu)} << kPercpuSheavesShift));
  EXPECT_EQ(set->cpu, static_cast<unsigned>(cpu));
  unsigned c = size_to_class(64);
  // Room on main for one more (a full main would send the free to its slow
  // path, which installs another sheaf).
  void* p = kmalloc(64);
  ASSERT_NE(p, nullptr);
  kfree(p);
  EXPECT_EQ(set->slots[c].main[-1], p);
  EXPECT_EQ(kmalloc(64), p);
  kfree(p);
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

// ------------------------------------------------------------ cache_stats.h

std::vector<CacheNodeCounts> node_counts(unsigned cls, unsigned nr_nodes) {
  std::vector<CacheNodeCounts> v(nr_nodes);
  for (unsigned nid = 0; nid < nr_nodes; ++nid)
    EXPECT_TRUE(kmem_cache_node_counts(cls, nid, &v[nid])) << "node " << nid;
  return v;
}

TEST(SlubCounters, InfoAndRanges) {
  kfree(kmalloc(8));
  PageAllocator* pa = page_allocator();
  ASSERT_NE(pa, nullptr);
  const unsigned cls = size_to_class(64);
  CacheInfo ci;
  ASSERT_TRUE(kmem_cache_info(cls, &ci));
  EXPECT_STREQ(ci.name, "kmalloc-64");
  EXPECT_EQ(ci.size, 64u);
  EXPECT_GT(ci.objects, 0u);
  EXPECT_LE(std::size_t{ci.objects} * 64, kPageSize << ci.order);  // a slab holds its objects
  EXPECT_GT(ci.sheaf_capacity, 0u);
  EXPECT_FALSE(kmem_cache_info(kNrClasses, &ci));
  CacheNodeCounts k;
  k.inuse = 12345;
  EXPECT_FALSE(kmem_cache_node_counts(kNrClasses, 0, &k));
  EXPECT_FALSE(kmem_cache_node_counts(cls, pa->nr_nodes(), &k));
  EXPECT_EQ(k.inuse, 12345u) << "a refused call wrote its output";
  EXPECT_TRUE(kmem_cache_node_counts(cls, pa->nr_nodes() - 1, &k));
}

// Objects asked of a node move that node's part of their cache, and only
// that node's: in use while they live, back after they are freed and the
// caches shrunk; freed on another node's CPU, they count as remote frees.
TEST(SlubCounters, NodePartMovesWithObjectsOfTheNode) {
  AffinityGuard restore;
  pin_here();  // the CPU's node decides where a free goes
  kfree(kmalloc(8));
  PageAllocator* pa = page_allocator();
  ASSERT_NE(pa, nullptr);
  const unsigned nodes = pa->nr_nodes();
  const unsigned cls = size_to_class(64);
  CacheInfo ci;
  ASSERT_TRUE(kmem_cache_info(cls, &ci));
  constexpr std::size_t kN = 3000;
  for (unsigned nid = 0; nid < nodes; ++nid) {
    kmem_shrink_all();  // nothing cached: inuse is the live objects
    std::vector<CacheNodeCounts> before = node_counts(cls, nodes);
    std::vector<void*> v;
    for (std::size_t i = 0; i < kN; ++i) {
      void* p = kmalloc_node(64, static_cast<int>(nid));
      ASSERT_NE(p, nullptr);
      ASSERT_EQ(pa->page_to_nid(pa->virt_to_page(p)), nid);
      v.push_back(p);
    }
    std::vector<CacheNodeCounts> during = node_counts(cls, nodes);
    for (unsigned m = 0; m < nodes; ++m) {
      const CacheNodeCounts& d = during[m];
      EXPECT_LE(d.partial, d.slabs) << "node " << m;
      EXPECT_LE(d.inuse, d.slabs * ci.objects) << "node " << m;
      EXPECT_EQ(d.slabs_allocated - d.slabs_freed, d.slabs) << "node " << m;
      if (m == nid) {
        EXPECT_GE(d.inuse, before[m].inuse + kN) << "node " << m;
        EXPECT_GE(d.slabs * ci.objects, kN) << "node " << m;
      } else {
        EXPECT_EQ(d.inuse, before[m].inuse) << "node " << m << ", objects asked of " << nid;
      }
    }
    for (void* p : v) kfree(p);
    kmem_shrink_all();
    std::vector<CacheNodeCounts> after = node_counts(cls, nodes);
    EXPECT_EQ(after[nid].inuse, before[nid].inuse) << "node " << nid;
    // Per-CPU mode: a free on a CPU of the object's node goes to the CPU's
    // sheaf, any other goes home. (Per-thread mode decides by the thread's
    // node first; only the bound is sure.)
    std::uint64_t remote = after[nid].remote_frees - before[nid].remote_frees;
    if (cache_mode() != CacheMode::kRseq)
      EXPECT_LE(remote, kN);
    else if (static_cast<int>(nid) != pa->local_node())
      EXPECT_EQ(remote, kN) << "node " << nid;
    else
      EXPECT_EQ(remote, 0u) << "node " << nid;
  }
}

}  // namespace
}  // namespace numaslub
