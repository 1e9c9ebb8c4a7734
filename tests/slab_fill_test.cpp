// Tests for how a slab's freelist is taken and given back in bulk
// (lib/slub/slab.cpp): KmemCache::fill detaches the freelists of slabs it
// takes whole under the list_lock and walks them after it, counting them by
// objects - inuse; free_batch links each run of one slab's objects before
// the lock and splices it under it. Slub on a plain buddy heap of one node.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "lib/buddy/page_alloc.h"
#include "lib/slub/freeptr.h"
#include "lib/slub/size_class.h"
#include "lib/slub/slab.h"
#include "tests/slab_heap.h"

namespace numaslub {
namespace {

PageAllocator* heap() {
  return testutil::slab_heap();
}

Slab* slab_of(const KmemCache& c, const void* p) {
  return c.obj_to_slab(p);
}

// Every object of `slabs` new slabs, grouped by slab (fill takes a new
// slab's objects in one run).
std::map<Slab*, std::vector<void*>> take_slabs(KmemCache& c, unsigned slabs) {
  std::map<Slab*, std::vector<void*>> by_slab;
  std::vector<void*> buf(c.objects);
  for (unsigned i = 0; i < slabs; ++i) {
    EXPECT_EQ(c.fill(0, buf.data(), c.objects), c.objects);
    for (void* o : buf) by_slab[slab_of(c, o)].push_back(o);
  }
  return by_slab;
}

// Slabs left with 5, all, 17 and all of their objects free (freed
// interleaved: runs of one slab that are not adjacent, A A B A), then fills
// that take two whole slabs and part of a third at a time: each freed object
// comes back exactly once, none that was not freed, and the counts return
// to zero when everything is freed.
TEST(SlabFill, WholeSlabsAndPartsComeBackOnceEach) {
  ASSERT_NE(heap(), nullptr);
  static KmemCache c;
  ASSERT_TRUE(c.init(kClassBySize16[64 / 16], heap(), 0x5eed5eed, true));
  c.min_partial = 8;  // the slabs freed whole stay listed, to be taken whole
  auto by_slab = take_slabs(c, 4);
  ASSERT_EQ(by_slab.size(), 4u);
  const unsigned frees[4] = {5, c.objects, 17, c.objects};
  std::vector<void*> live, freed_order;
  std::vector<std::vector<void*>> freed(4);
  unsigned k = 0;
  for (auto& [s, objs] : by_slab) {
    freed[k].assign(objs.begin(), objs.begin() + frees[k]);
    live.insert(live.end(), objs.begin() + frees[k], objs.end());
    ++k;
  }
  // Two of slab 0, one of slab 1, the next of slab 0, ... until all are in.
  for (std::size_t i = 0; freed_order.size() < 5u + c.objects + 17u + c.objects; ++i)
    for (unsigned s = 0; s < 4; ++s)
      for (unsigned rep = 0; rep < (s == 0 ? 2u : 1u); ++rep)
        if (!freed[s].empty()) {
          freed_order.push_back(freed[s].back());
          freed[s].pop_back();
        }
  c.free_batch(freed_order.data(), static_cast<unsigned>(freed_order.size()));
  std::set<void*> expect(freed_order.begin(), freed_order.end());
  ASSERT_EQ(expect.size(), freed_order.size());
  EXPECT_EQ(c.node[0].inuse, live.size());
  for (auto& [s, objs] : by_slab) EXPECT_LE(s->inuse, c.objects);

  std::set<void*> back;
  void* buf[192];
  unsigned want = 2 * c.objects + 3;  // two whole slabs and 3 of another, if listed so
  while (back.size() < expect.size()) {
    unsigned n = std::min<unsigned>(want, static_cast<unsigned>(expect.size() - back.size()));
    unsigned got = c.fill(0, buf, n);
    ASSERT_EQ(got, n);
    for (unsigned i = 0; i < got; ++i) {
      ASSERT_TRUE(expect.count(buf[i])) << buf[i] << " was never freed";
      ASSERT_TRUE(back.insert(buf[i]).second) << buf[i] << " handed out twice";
    }
  }
  for (auto& [s, objs] : by_slab) EXPECT_EQ(s->inuse, c.objects) << "every object is out";
  EXPECT_EQ(c.node[0].nr_partial, 0u);

  std::vector<void*> all(back.begin(), back.end());
  all.insert(all.end(), live.begin(), live.end());
  c.free_batch(all.data(), static_cast<unsigned>(all.size()));
  EXPECT_EQ(c.node[0].inuse, 0u);
  for (auto& [s, objs] : by_slab) EXPECT_EQ(s->inuse, 0u);
}

// Frees objs[0..9] of one slab of a fresh 64-byte cache (its freelist then
// runs objs[9], objs[8], ..., objs[0]), rewrites objs[at]'s link to the
// encoding of `to` (a write after free that knows the secret), and fills
// 10: the fill takes the slab whole and walks it after the lock.
void corrupt_link_and_fill(unsigned at, int to) {
  static KmemCache c;
  if (!c.init(kClassBySize16[64 / 16], heap(), 0x5eed5eed, true)) _exit(2);
  auto by_slab = take_slabs(c, 2);
  std::vector<void*>& objs = by_slab.begin()->second;
  c.free_batch(objs.data(), 10);
  Slab* s = slab_of(c, objs[0]);
  auto** link = static_cast<void**>(objs[at]);
  *link = freeptr_encode(to < 0 ? nullptr : objs[to], c.secrets[s->secret_gen], link);
  void* buf[10];
  c.fill(0, buf, 10);
}

// A free object's link rewritten to the encoded null (a write after free
// that ends the list early) used to cut the freelist short silently: the
// rest of the slab's free objects were lost for good. A fill that takes the
// slab whole counts its objects and aborts, naming the cache.
TEST(SlabFillDeathTest, AFreelistShorterThanItsCountAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ASSERT_NE(heap(), nullptr);
  EXPECT_DEATH(corrupt_link_and_fill(5, -1),
               "kmalloc-64: freelist corrupted: the freelist of slab .* ends before its count");
}

// A link rewritten to point back into the list (a loop) would have a walk
// run on forever, handing objects out twice: the walk of a whole slab stops
// at its count and aborts.
TEST(SlabFillDeathTest, AFreelistLongerThanItsCountAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ASSERT_NE(heap(), nullptr);
  EXPECT_DEATH(corrupt_link_and_fill(0, 9),  // objs[0], the last, back to the head
               "kmalloc-64: freelist corrupted: the freelist of slab .* runs past its count");
}

// free_batch checks each object of a run against the one before it (a
// double free inside one sheaf) before any lock is taken.
TEST(SlabFillDeathTest, ADoubleFreeInsideARunAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ASSERT_NE(heap(), nullptr);
  EXPECT_DEATH(
      {
        static KmemCache c;
        if (!c.init(kClassBySize16[64 / 16], heap(), 0x5eed5eed, true)) _exit(2);
        auto by_slab = take_slabs(c, 1);
        std::vector<void*>& objs = by_slab.begin()->second;
        std::vector<void*> twice(objs.begin(), objs.begin() + 2);
        twice.push_back(objs[1]);
        c.free_batch(twice.data(), 3);
      },
      "double free of 0x[0-9a-f]+ \\(cache kmalloc-64\\)");
}

}  // namespace
}  // namespace numaslub
