// Tests for the size classes above 32 KiB (40, 48, 56 and 64 KiB; issue 14):
// blocks that were large blocks of the page allocator are slab objects with
// the sheaves' fast paths. Their sizes, alignment and usable size, realloc
// across the boundaries on either side, calloc (still a clean large block),
// frees from other threads, the caches emptied by a trim and by direct
// reclaim, and a fork child freeing and allocating them.
//
// Runs in the four configurations of every slub_ test (tests/CMakeLists.txt):
// rseq, "percpu=thread", "fake_numa=2" and both.
#include <sys/wait.h>

#include "lib/slub/cache_stats.h"
#include "tests/slub_test_util.h"

namespace numaslub {
namespace {

using namespace slubtest;

constexpr std::size_t kBigSizes[] = {32 * KiB + 1, 33 * KiB,     40000,   40 * KiB,
                                     40 * KiB + 1, 48 * KiB,     50000,   56 * KiB,
                                     60000,        64 * KiB - 1, 64 * KiB};

// The classes above kMaxDenseClassSize.
std::vector<unsigned> big_classes() {
  std::vector<unsigned> v;
  for (unsigned c = 0; c < kNrClasses; ++c)
    if (kClassSize[c] > kMaxDenseClassSize) v.push_back(c);
  return v;
}

// Objects of class cls in use on every node (allocated or cached in sheaves).
std::uint64_t inuse_of(unsigned cls, std::uint64_t* slabs = nullptr) {
  std::uint64_t n = 0, s = 0;
  for (unsigned nid = 0; nid < page_allocator()->nr_nodes(); ++nid) {
    CacheNodeCounts k;
    EXPECT_TRUE(kmem_cache_node_counts(cls, nid, &k));
    n += k.inuse;
    s += k.slabs;
  }
  if (slabs) *slabs = s;
  return n;
}

TEST(SlubBig, ClassesAndSlabGeometry) {
  std::vector<unsigned> big = big_classes();
  ASSERT_EQ(big.size(), 4u);
  EXPECT_EQ(kClassSize[big[0]], 40 * KiB);
  EXPECT_EQ(kClassSize[big[3]], kMaxSmallSize);
  EXPECT_EQ(kMaxSmallSize, 64 * KiB);
  ASSERT_TRUE(slub_init());
  for (unsigned c : big) {
    CacheInfo ci;
    ASSERT_TRUE(kmem_cache_info(c, &ci));
    std::size_t slab = kPageSize << ci.order;
    EXPECT_GE(ci.objects, 1u) << ci.name;
    EXPECT_EQ(ci.objects, slab / ci.size) << ci.name;
    EXPECT_LE(ci.order, kMaxSlabOrder) << ci.name;
    EXPECT_LE((slab - std::size_t{ci.objects} * ci.size) * 8, slab) << ci.name;  // waste <= 1/8
    EXPECT_EQ(ci.sheaf_capacity, 1u) << ci.name;  // while cold (sheaf_tune.h)
  }
}

// Every size in (32 KiB, 64 KiB] gets a slab object of the smallest class
// that holds it (under 25% more), aligned to the largest power of two
// dividing the class size, writable to its usable size; many at once do
// not overlap. Above 64 KiB a large block.
TEST(SlubBig, SizesAlignmentAndUsableSize) {
  struct Obj {
    void* p;
    std::size_t n;
  };
  std::vector<Obj> live;
  for (int round = 0; round < 8; ++round) {
    for (std::size_t n : kBigSizes) {
      void* p = kmalloc(n);
      ASSERT_NE(p, nullptr) << n;
      std::size_t cls = size_to_class(n);
      std::size_t us = ksize(p);
      EXPECT_EQ(us, kClassSize[cls]) << n;
      EXPECT_GE(us, n);
      EXPECT_LT((us - n) * 4, us) << n;
      EXPECT_EQ(addr(p) % (us & (0 - us)), 0u) << n;
      EXPECT_EQ(ksize_small(p), us) << n;  // a live slab object
      Page* pg = page_allocator()->virt_to_page(p);
      EXPECT_EQ(pg->slab_class, cls + 1) << n;
      EXPECT_TRUE(kowns(p));
      fill_obj(p, us);
      live.push_back({p, us});
    }
  }
  for (auto& o : live) EXPECT_TRUE(check_obj(o.p, o.n)) << o.n;
  for (auto& o : live) kfree(o.p);
  void* l = kmalloc(kMaxSmallSize + 1);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(page_allocator()->virt_to_page(l)->slab_class, 0);
  EXPECT_EQ(ksize_small(l), 0u);
  EXPECT_EQ(ksize(l), run_round_pages(17) << kPageShift);  // 17 pages: its run class's 20
  kfree(l);
}

// Aligned requests of these sizes take the first class that is a multiple
// of the alignment (64 KiB objects are naturally aligned: their slab is one
// object of 64 KiB, aligned to its size); larger alignments a large block.
TEST(SlubBig, AlignedRequests) {
  for (std::size_t align : {8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB, 128 * KiB}) {
    for (std::size_t n : {33 * KiB, 40 * KiB, 49 * KiB, 60 * KiB, 64 * KiB}) {
      void* p = kmalloc_aligned(align, n);
      ASSERT_NE(p, nullptr) << align << " " << n;
      EXPECT_EQ(addr(p) % align, 0u) << align << " " << n;
      EXPECT_GE(ksize(p), n);
      fill(p, n, 5);
      EXPECT_EQ(first_bad(p, n, 5), n);
      kfree(p);
    }
  }
}

// realloc across both boundaries keeps the contents: from the dense classes
// into the big ones, between them, out to a large block and back.
TEST(SlubBig, ReallocAcrossTheBoundaries) {
  void* p = kmalloc(30 * KiB);
  ASSERT_NE(p, nullptr);
  fill(p, 30 * KiB, 11);
  std::size_t have = 30 * KiB;
  for (std::size_t n :
       {40 * KiB, 47 * KiB, 64 * KiB, kMaxSmallSize + 1, 200 * KiB, 50 * KiB, 20 * KiB, 60 * KiB}) {
    void* q = krealloc(p, n);
    ASSERT_NE(q, nullptr) << n;
    std::size_t kept = have < n ? have : n;
    ASSERT_EQ(first_bad(q, kept, 11), kept) << n;
    fill(q, n, 11);
    have = n;
    p = q;
    if (n <= kMaxSmallSize) {
      EXPECT_EQ(ksize_small(p), kClassSize[size_to_class(n)]) << n;
    } else {
      EXPECT_EQ(ksize_small(p), 0u) << n;
    }
  }
  // Within its class an object stays where it is.
  void* q = krealloc(p, 57 * KiB);
  EXPECT_EQ(q, p);
  kfree(q);
}

// calloc above 32 KiB takes a clean large block (no memset, no RSS for
// pages never touched): zero, and no slab object.
TEST(SlubBig, CallocTakesACleanLargeBlock) {
  for (std::size_t n : {33 * KiB, 48 * KiB, 64 * KiB}) {
    void* dirty = kmalloc(n);
    std::memset(dirty, 0x5a, n);
    kfree(dirty);
    void* z = kcalloc(1, n);
    ASSERT_NE(z, nullptr);
    EXPECT_TRUE(all_zero(z, n)) << n;
    EXPECT_EQ(ksize_small(z), 0u) << n;
    EXPECT_GE(ksize(z), n);
    kfree(z);
  }
  void* z = kcalloc(1, 32 * KiB);  // the largest dense class: its object, cleared
  ASSERT_NE(z, nullptr);
  EXPECT_TRUE(all_zero(z, 32 * KiB));
  EXPECT_EQ(ksize_small(z), 32 * KiB);
  kfree(z);
}

// Objects allocated by one thread and freed by another go back to their
// slabs; a trim then empties the big caches: no object in use, no slab.
TEST(SlubBig, FreedByOtherThreadsAndTrimmed) {
  ASSERT_TRUE(slub_init());
  std::vector<unsigned> big = big_classes();
  std::vector<void*> objs;
  std::thread producer([&] {
    for (int i = 0; i < 400; ++i) {
      std::size_t n = kBigSizes[i % std::size(kBigSizes)];
      void* p = kmalloc(n);
      ASSERT_NE(p, nullptr);
      fill_obj(p, n);
      objs.push_back(p);
    }
  });
  producer.join();
  std::uint64_t busy = 0;
  for (unsigned c : big) busy += inuse_of(c);
  EXPECT_GE(busy, 300u);  // the 32 KiB + 1 and 33 KiB ones are in the 40 KiB class too
  std::thread consumer([&] {
    for (std::size_t i = 0; i < objs.size(); ++i) {
      std::size_t n = kBigSizes[i % std::size(kBigSizes)];
      EXPECT_TRUE(check_obj(objs[i], n)) << i;
      kfree(objs[i]);
    }
  });
  consumer.join();
  kmem_trim();
  for (unsigned c : big) {
    std::uint64_t slabs = 0;
    EXPECT_EQ(inuse_of(c, &slabs), 0u) << kClassSize[c];
    EXPECT_EQ(slabs, 0u) << kClassSize[c];
  }
}

// Direct reclaim (kmem_shrink_all, what a failed allocation runs) empties
// the caching of these classes too: sheaves, barns and empty slabs.
TEST(SlubBig, DirectReclaimEmptiesTheCaches) {
  ASSERT_TRUE(slub_init());
  std::vector<void*> v;
  for (int i = 0; i < 200; ++i) v.push_back(kmalloc(kBigSizes[i % std::size(kBigSizes)]));
  for (void* p : v) kfree(p);
  kmem_shrink_all();
  for (unsigned c : big_classes()) {
    std::uint64_t slabs = 0;
    EXPECT_EQ(inuse_of(c, &slabs), 0u) << kClassSize[c];
    EXPECT_EQ(slabs, 0u) << kClassSize[c];
  }
}

// A fork child frees the parent's objects of these classes and allocates
// its own; the parent's are untouched.
TEST(SlubBig, ForkChildFreesAndAllocates) {
  std::vector<std::pair<void*, std::size_t>> mine;
  for (std::size_t n : kBigSizes) {
    void* p = kmalloc(n);
    ASSERT_NE(p, nullptr);
    fill_obj(p, n);
    mine.push_back({p, n});
  }
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    page_allocator_fork_child(t_ctx.tid);  // what the shim's atfork child handler does
    slub_fork_child(t_ctx.tid);
    int bad = 0;
    for (auto& [p, n] : mine) {
      bad += !check_obj(p, n);
      kfree(p);
    }
    std::vector<void*> fresh;
    for (int i = 0; i < 100; ++i) {
      std::size_t n = kBigSizes[i % std::size(kBigSizes)];
      void* p = kmalloc(n);
      if (!p) _exit(3);
      fill_obj(p, n);
      fresh.push_back(p);
    }
    for (int i = 0; i < 100; ++i) bad += !check_obj(fresh[i], kBigSizes[i % std::size(kBigSizes)]);
    for (void* p : fresh) kfree(p);
    _exit(bad ? 2 : 0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << "2: contents, 3: allocation failed";
  for (auto& [p, n] : mine) {
    EXPECT_TRUE(check_obj(p, n)) << n;
    kfree(p);
  }
}

}  // namespace
}  // namespace numaslub
