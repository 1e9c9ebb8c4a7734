// Tests for the order in which a new slab hands out its objects
// (lib/slub/slab.cpp, KmemCache::new_slab; the slab_random option): with
// SLAB_FREELIST_RANDOM (the default) a slab's objects come out in a random
// order, a different one per slab; with slab_random=0 in address order. In
// both, each object of the slab comes out exactly once.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include "lib/buddy/page_alloc.h"
#include "lib/slub/size_class.h"
#include "lib/slub/slab.h"

namespace numaslub {
namespace {

constexpr std::size_t MiB = 1024 * 1024;

PageAllocator* heap() {
  static Topology real, topo;
  static PageAllocator pa;
  static bool ready = [] {
    real.load_sysfs();
    topo.make_fake(real, 1);
    Config cfg;
    cfg.arena_size = 256 * MiB;
    cfg.section_size = 16 * MiB;
    return pa.init(cfg, topo, os_mem_linux()) == 0;
  }();
  return ready ? &pa : nullptr;
}

// The objects of `slabs` new slabs of the 64-byte class, in the order fill
// hands them out (a cache without slabs: every fill comes from new ones).
std::vector<std::uintptr_t> first_objects(bool random, unsigned slabs, KmemCache* cache) {
  unsigned cls = kClassBySize16[64 / 16];
  EXPECT_TRUE(cache->init(cls, heap(), 0x5eed5eed, random));
  std::vector<std::uintptr_t> v;
  void* buf[64];
  while (v.size() < std::size_t{slabs} * cache->objects) {
    unsigned got = cache->fill(0, buf, 64);
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

}  // namespace
}  // namespace numaslub
