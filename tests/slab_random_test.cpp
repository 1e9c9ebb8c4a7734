// Tests for the order in which a new slab hands out its objects
// (lib/slub/slab.cpp, KmemCache::new_slab; the slab_random option): with
// SLAB_FREELIST_RANDOM (the default) a slab's objects come out in a random
// order, a different one per slab; with slab_random=0 in address order. In
// both, each object of the slab comes out exactly once. The random order
// keeps the objects of a cache line together (a fill of one CPU's sheaf
// then shares no line with another CPU's but at its ends).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "lib/buddy/page_alloc.h"
#include "lib/slub/size_class.h"
#include "lib/slub/slab.h"
#include "tests/slab_heap.h"

namespace numaslub {
namespace {

PageAllocator* heap() {
  return testutil::slab_heap();
}

// The objects of `slabs` new slabs of the `size`-byte class, in the order
// fill hands them out (a cache without slabs: every fill comes from new ones).
std::vector<std::uintptr_t> first_objects(bool random, unsigned slabs, KmemCache* cache,
                                          std::uint32_t size = 64) {
  unsigned cls = kClassBySize16[size / 16];
  EXPECT_TRUE(cache->init(cls, heap(), 0x5eed5eed, random));
  std::vector<std::uintptr_t> v;
  void* buf[64];
  std::size_t want = std::size_t{slabs} * cache->objects;
  while (v.size() < want) {
    unsigned got =
        cache->fill(0, buf, static_cast<unsigned>(std::min<std::size_t>(64, want - v.size())));
    EXPECT_GT(got, 0u);
    if (!got) break;
    for (unsigned i = 0; i < got; ++i) v.push_back(reinterpret_cast<std::uintptr_t>(buf[i]));
  }
  return v;
}

// Each run of `objects` holds every object of one slab once.
void expect_whole_slabs(const std::vector<std::uintptr_t>& v, const KmemCache& c) {
  std::size_t bytes = kPageSize << c.order;
  for (std::size_t s = 0; s + c.objects <= v.size(); s += c.objects) {
    std::uintptr_t base = v[s] & ~(bytes - 1);
    std::set<std::uintptr_t> seen;
    for (std::size_t i = s; i < s + c.objects; ++i) {
      ASSERT_EQ(v[i] & ~(bytes - 1), base) << "object of another slab in slab run " << s;
      ASSERT_EQ((v[i] - base) % c.size, 0u);
      ASSERT_TRUE(seen.insert(v[i]).second) << "object handed out twice";
    }
  }
}

TEST(SlabRandom, ObjectsComeInRandomOrderDifferentPerSlab) {
  ASSERT_NE(heap(), nullptr);
  static KmemCache cache;
  std::vector<std::uintptr_t> v = first_objects(true, 4, &cache);
  ASSERT_EQ(v.size(), 4u * cache.objects);
  expect_whole_slabs(v, cache);
  std::size_t bytes = kPageSize << cache.order;
  std::set<std::vector<std::size_t>> orders;
  for (std::size_t s = 0; s < v.size(); s += cache.objects) {
    std::vector<std::size_t> idx;
    for (std::size_t i = s; i < s + cache.objects; ++i)
      idx.push_back((v[i] & (bytes - 1)) / cache.size);
    EXPECT_FALSE(std::is_sorted(idx.begin(), idx.end())) << "slab " << s / cache.objects;
    orders.insert(idx);
  }
  // One permutation per cache, started at a random point per slab: four
  // slabs with one start among 64 each would all agree by chance once in 64^3.
  EXPECT_GT(orders.size(), 1u);
}

TEST(SlabRandom, OffHandsOutObjectsInAddressOrder) {
  ASSERT_NE(heap(), nullptr);
  static KmemCache cache;
  std::vector<std::uintptr_t> v = first_objects(false, 4, &cache);
  ASSERT_EQ(v.size(), 4u * cache.objects);
  expect_whole_slabs(v, cache);
  for (std::size_t s = 0; s < v.size(); s += cache.objects)
    for (std::size_t i = s + 1; i < s + cache.objects; ++i)
      ASSERT_EQ(v[i], v[i - 1] + cache.size) << "slab " << s / cache.objects << " object " << i;
}

// Classes whose objects share a 128-byte line pair (the unit the L2's
// spatial prefetcher moves): 16 and 48 bytes (eight objects end on such a
// boundary), 32 and 96 (four), 80 (eight; objects straddle lines). The
// objects of each such group come out one after the other, so no two fills
// share a line pair but the one a fill ends in; the groups, and the objects
// within each, still come in a random order.
TEST(SlabRandom, ObjectsOfOneCacheLineComeOutTogether) {
  ASSERT_NE(heap(), nullptr);
  static KmemCache caches[5];
  unsigned k = 0;
  for (std::uint32_t size : {16u, 32u, 48u, 80u, 96u}) {
    SCOPED_TRACE(size);
    KmemCache& cache = caches[k++];
    std::vector<std::uintptr_t> v = first_objects(true, 2, &cache, size);
    ASSERT_EQ(v.size(), 2u * cache.objects);
    expect_whole_slabs(v, cache);
    std::uint32_t group = 128;
    while (group % size) group += 128;  // lcm(size, 128) bytes
    group /= size;
    std::size_t bytes = kPageSize << cache.order;
    for (std::size_t s = 0; s < v.size(); s += cache.objects) {
      std::vector<std::size_t> idx;
      for (std::size_t i = s; i < s + cache.objects; ++i)
        idx.push_back((v[i] & (bytes - 1)) / cache.size);
      // Runs of one group: each group appears as one run, whole (the last
      // group of a slab may be short).
      std::set<std::size_t> done;
      bool within_unsorted = false;
      for (std::size_t i = 0; i < idx.size();) {
        std::size_t gid = idx[i] / group, j = i;
        while (j < idx.size() && idx[j] / group == gid) ++j;
        ASSERT_TRUE(done.insert(gid).second) << "group " << gid << " split at " << i;
        std::size_t want = std::min<std::size_t>(group, cache.objects - gid * group);
        ASSERT_EQ(j - i, want) << "group " << gid;
        within_unsorted |= !std::is_sorted(idx.begin() + static_cast<std::ptrdiff_t>(i),
                                           idx.begin() + static_cast<std::ptrdiff_t>(j));
        i = j;
      }
      std::vector<std::size_t> groups;
      for (std::size_t x : idx)
        if (groups.empty() || groups.back() != x / group) groups.push_back(x / group);
      EXPECT_FALSE(std::is_sorted(groups.begin(), groups.end())) << "groups in address order";
      // Among 64 (or 32, 21, 12) groups of 2 or 4, one at least is out of
      // address order unless the shuffle is broken.
      EXPECT_TRUE(within_unsorted) << "every group's objects in address order";
    }
  }
}

// A sheaf's refill is dealt out by line (KmemCache::deal_by_line): no two
// objects handed out one after the other (nor one apart) share a line
// pair, and the refill still holds whole groups (only where it starts and
// ends is one cut).
TEST(SlabRandom, ARefillDealsItsLinesOut) {
  ASSERT_NE(heap(), nullptr);
  static KmemCache caches[3];
  unsigned k = 0;
  for (std::uint32_t size : {16u, 32u, 48u}) {
    SCOPED_TRACE(size);
    KmemCache& cache = caches[k++];
    ASSERT_TRUE(cache.init(kClassBySize16[size / 16], heap(), 0x5eed5eed, true));
    std::uint32_t group = size == 32 ? 4 : 8;  // 128 bytes' worth, or lcm(48, 128) = 384
    ASSERT_EQ(cache.random_group, group);
    for (int refill = 0; refill < 6; ++refill) {
      void* objs[61];
      unsigned n = cache.fill(0, objs, 61);
      ASSERT_EQ(n, 61u);
      std::multiset<std::uintptr_t> before;
      for (void* o : objs) before.insert(reinterpret_cast<std::uintptr_t>(o));
      cache.deal_by_line(objs, n);
      std::multiset<std::uintptr_t> after;
      for (void* o : objs) after.insert(reinterpret_cast<std::uintptr_t>(o));
      ASSERT_EQ(before, after);
      // Lines, by the group of `size`-byte objects each starts in (a
      // 48-byte object may cross into the next line, which is its group's).
      std::uintptr_t bytes = kPageSize << cache.order;
      auto gid = [&](void* o) {
        auto a = reinterpret_cast<std::uintptr_t>(o);
        return (a & ~(bytes - 1)) + ((a & (bytes - 1)) / size) / group;
      };
      for (unsigned i = 1; i < n; ++i)
        for (unsigned d = 1; d <= 2 && d <= i; ++d)
          ASSERT_NE(gid(objs[i]), gid(objs[i - d]))
              << "refill " << refill << " at " << i << " and " << i - d;
      std::map<std::uintptr_t, unsigned> per_group;
      for (void* o : objs) ++per_group[gid(o)];
      unsigned cut = 0;
      for (auto& [g, count] : per_group) {
        std::size_t first = (g & (bytes - 1)) * group;  // the group's first object in its slab
        cut +=
            count != std::min<std::size_t>(group, cache.objects - first);  // the last may be short
      }
      EXPECT_LE(cut, 2u) << "a refill takes whole lines but where it starts and ends";
    }
  }
}

TEST(SlabRandom, NothingToDealWithoutSlabRandom) {
  ASSERT_NE(heap(), nullptr);
  static KmemCache cache;
  ASSERT_TRUE(cache.init(kClassBySize16[1], heap(), 0x5eed5eed, false));
  EXPECT_EQ(cache.random_group, 1u);
  void* objs[61];
  ASSERT_EQ(cache.fill(0, objs, 61), 61u);
  void* copy[61];
  std::copy(objs, objs + 61, copy);
  cache.deal_by_line(objs, 61);
  EXPECT_TRUE(std::equal(objs, objs + 61, copy)) << "address order stays";
}

}  // namespace
}  // namespace numaslub
