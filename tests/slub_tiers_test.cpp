// Tests for lib/slub's tiers above the slabs and the calls that cross them:
// large blocks (and their per-CPU run lists), direct mappings (vmalloc),
// kcalloc and krealloc.
//
// The per-CPU mode and the node layout are chosen once per process from
// NUMASLUB_CONF; ctest runs this binary in four configurations (see
// tests/CMakeLists.txt): as is (rseq), "percpu=thread", "fake_numa=2" and
// both.
#include "tests/slub_test_util.h"

namespace numaslub {
namespace {

using namespace slubtest;

// ------------------------------------------------------------ large blocks and direct mappings

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
    // Tail pages beyond the block's run class are given back (pcp.h: up to
    // 1 MiB a block is rounded up to its class, at most a quarter more).
    std::size_t pages = (n + 4095) / 4096;
    EXPECT_EQ(us, run_round_pages(pages) * 4096) << n;
    EXPECT_LT((us - n) * 4, us + 4096 * 4) << n;
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

// A freed large block of up to 1 MiB waits on its CPU's run list and is
// the next block of its class there, whatever the size asked within the
// class: no zone lock, no split, no trim (pcp.h).
TEST(SlubLarge, FreedBlockIsTheNextOfItsClassOnTheCpu) {
  AffinityGuard keep;
  pin_here();
  PageAllocator* pa = page_allocator();
  ASSERT_NE(pa, nullptr);
  for (std::size_t n : {kMaxSmallSize + 1, 80 * KiB, 100 * KiB, 700 * KiB, 1 * MiB}) {
    void* p = kmalloc(n);
    ASSERT_NE(p, nullptr);
    fill(p, n, 3);
    std::size_t us = ksize(p);
    kfree(p);
    Page* head = pa->virt_to_page(p);
    // A run larger than the CPU's share of a small heap (pcp.h) goes to
    // the zone instead.
    if ((us >> kPageShift) > pa->pcp(current_cpu(), pa->page_to_nid(head))->cap_pages.load()) {
      EXPECT_TRUE(head->flags & PG_buddy) << n;
      continue;
    }
    EXPECT_EQ(head->flags, std::uint32_t{PG_pcp}) << n;
    EXPECT_FALSE(kowns(p)) << n;
    void* q = kmalloc(us - 4096 + 1);  // the smallest request of the class
    EXPECT_EQ(q, p) << n;
    EXPECT_EQ(ksize(q), us);
    kfree(q);
  }
  // Memory on the run lists goes back with a trim.
  void* p = kmalloc(200 * KiB);
  ASSERT_NE(p, nullptr);
  kfree(p);
  std::size_t cached = 0;
  for (unsigned c = 0; c < pa->nr_cpus(); ++c)
    for (unsigned nid = 0; nid < pa->nr_nodes(); ++nid) cached += pa->pcp(c, nid)->run_pages;
  EXPECT_GT(cached, 0u);
  kmem_trim();
  for (unsigned c = 0; c < pa->nr_cpus(); ++c)
    for (unsigned nid = 0; nid < pa->nr_nodes(); ++nid) EXPECT_EQ(pa->pcp(c, nid)->run_pages, 0u);
}

// calloc never gets a used block from a run list (it would have to clear
// it); and a block realloc shrank in place to a count that is no class's
// goes to the zone at its free.
TEST(SlubLarge, CallocAndResizedBlocksBypassTheRunLists) {
  AffinityGuard keep;
  pin_here();
  void* p = kmalloc(96 * KiB);
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x77, 96 * KiB);
  kfree(p);
  void* z = kcalloc(1, 96 * KiB);
  ASSERT_NE(z, nullptr);
  EXPECT_NE(z, p);
  EXPECT_TRUE(all_zero(z, 96 * KiB));
  void* q = kmalloc(96 * KiB);  // the run is still there
  EXPECT_EQ(q, p);
  void* r = krealloc(q, 93 * KiB);  // 24 pages -> 24: a class still
  EXPECT_EQ(r, q);
  r = krealloc(r, 70 * KiB);  // 18 pages: in place, 6 pages back
  EXPECT_EQ(r, q);
  EXPECT_EQ(ksize(r), 72 * KiB);
  kfree(r);
  EXPECT_FALSE(page_allocator()->virt_to_page(r)->flags & PG_pcp);
  kfree(z);
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
  // Slab -> large -> direct mapping -> large -> slab, growing and shrinking.
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
  q = krealloc(q, 65 * KiB);
  EXPECT_EQ(q, p);
  EXPECT_EQ(ksize(q), 68 * KiB);
  EXPECT_EQ(first_bad(q, 65 * KiB, 7), 65 * KiB);
  // Growing within the pages it already has also keeps it.
  q = krealloc(q, 67 * KiB);
  EXPECT_EQ(q, p);
  // Down to a slab class's size it moves into the class (size_class.h):
  // every block of at most kMaxSmallSize is a slab object but calloc's,
  // aligned ones and sampled ones.
  void* o = krealloc(q, 40 * KiB);
  ASSERT_NE(o, nullptr);
  EXPECT_NE(o, p);
  EXPECT_EQ(ksize(o), 40 * KiB);
  EXPECT_EQ(ksize_small(o), 40 * KiB);
  EXPECT_EQ(first_bad(o, 40 * KiB, 7), 40 * KiB);
  kfree(o);

  // A slab object shrunk within its class stays.
  p = kmalloc(100);
  fill(p, 100, 9);
  q = krealloc(p, 97);
  EXPECT_EQ(q, p);
  EXPECT_EQ(first_bad(q, 97, 9), 97u);
  kfree(q);
}

TEST(SlubRealloc, HeapBlocksNeverTakeTheMappingTableLock) {
  // vmalloc.cpp's table lock is process-wide: a realloc of a heap block (small
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
  void* l2 = krealloc(l, 70 * KiB);    // shrunk in place
  void* l3 = krealloc(l2, 900 * KiB);  // grown in place or moved
  std::size_t small_size = ksize_small(s3), large_size = ksize_small(l3);
  vmalloc_hold_lock_for_test(false);
  EXPECT_EQ(s2, s);
  ASSERT_NE(s3, nullptr);
  EXPECT_EQ(first_bad(s3, 40, 3), 40u);
  EXPECT_EQ(l2, l);
  ASSERT_NE(l3, nullptr);
  EXPECT_EQ(first_bad(l3, 70 * KiB, 4), 70 * KiB);
  EXPECT_EQ(small_size, ksize(s3));
  EXPECT_EQ(large_size, 0u);  // not a slab object: krealloc's
  kfree(s3);
  kfree(l3);
}

TEST(SlubRealloc, KsizeSmallOnlyForLiveSlabObjects) {
  // realloc's fast path (kmalloc.h) keeps or moves what ksize_small sizes:
  // a live object's start, never a freed one, an interior pointer or a
  // block of another kind.
  for (std::size_t n :
       {std::size_t{1}, 16ul, 17ul, 100ul, 1000ul, 4096ul, 20000ul, 32768ul, 40000ul, 65536ul}) {
    void* p = kmalloc(n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(ksize_small(p), ksize(p)) << n;
    EXPECT_EQ(ksize_small(static_cast<char*>(p) + 8), 0u) << n;
    EXPECT_TRUE(realloc_keeps(ksize_small(p), ksize(p))) << n;
    kfree(p);
    EXPECT_EQ(ksize_small(p), 0u) << n;  // free: its tag is set
  }
  void* l = kmalloc(kMaxSmallSize + 1);
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

}  // namespace
}  // namespace numaslub
