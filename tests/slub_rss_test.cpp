// Tests for what the slub layer keeps resident: a freed direct mapping
// keeps its pages for reuse by any size within a bound, else gives them
// back at its free (lib/slub/vmalloc.cpp), and a released one reused reads
// as zero; slabs account the pages they touch at
// birth (Zone::touched_pages, the density thp=auto weighs); a sheaf holds
// at most 32 KiB of objects; thp=auto advises new mappings MADV_HUGEPAGE
// once the freed ones were densely written, and stops when they were not.
//
// ctest runs this binary in the four configurations of slub_test (rseq,
// percpu=thread, fake_numa=2, both): see tests/CMakeLists.txt.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lib/buddy/page_alloc.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/size_class.h"
#include "lib/slub/slub_internal.h"
#include "lib/slub/vmalloc.h"
#include "tests/slub_test_util.h"
#include "tests/test_mincore.h"

namespace numaslub {
namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * 1024;

using testutil::resident_pages;

std::uintptr_t addr_of(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

bool all_zero(const void* p, std::size_t len) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < len; i += 512)
    if (b[i] != 0) return false;
  return b[len - 1] == 0;
}

// The cache of freed mappings works only once someone ages it (reclaim's
// hook); here a hook that does nothing stands in for it.
void no_wake(bool) {}

// Keeps the thread on its CPU while it lives: cached mappings serve their
// node only, and under fake_numa=2 a migration may change the node.
struct PinHere {
  PinHere() { slubtest::pin_here(); }
  slubtest::AffinityGuard restore;  // constructed first: the affinity before the pin
};

// A freed mapping keeps its pages while the cache's resident entries stay
// within 64 MiB, and any request above 4 MiB but calloc's takes it: a
// shorter one with the tail it does not need unmapped, a longer one grown
// with the old pages moved along (only the new tail faults).
TEST(SlubRss, FreedMappingStaysResidentForReuseOfAnySize) {
  PinHere pin;
  vmalloc_set_wake_hook(no_wake);
  vmalloc_cache_release(~std::uint64_t{0});
  vmalloc_thp_reset_for_test();
  constexpr std::size_t n = 8 * MiB;
  auto* p = static_cast<unsigned char*>(kmalloc(n));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x5a, n);
  kfree(p);
  EXPECT_EQ(vmalloc_cache_bytes(), n);
  EXPECT_EQ(resident_pages(p, n), n / 4096);
  // Shorter: the same pages, cut to the request (a huge mapping keeps whole
  // 2 MiB units). The rest stays cached and resident: no system call.
  vmalloc_thp_reset_for_test();  // plain, as the cached mapping (thp=auto)
  auto* q = static_cast<unsigned char*>(kmalloc(5 * MiB));
  ASSERT_EQ(q, p);
  std::size_t qlen = ksize(q);
  EXPECT_GE(qlen, 5 * MiB);
  EXPECT_LE(qlen, 6 * MiB);
  EXPECT_EQ(resident_pages(q, qlen), qlen / 4096);
  EXPECT_EQ(resident_pages(p + qlen, n - qlen), (n - qlen) / 4096);
  EXPECT_EQ(q[0], 0x5a);  // what the last block left: not zeroed
  EXPECT_EQ(vmalloc_cache_bytes(), n - qlen);
  kfree(q);
  // Freed, the block rejoins the rest: one range of n bytes again.
  EXPECT_EQ(vmalloc_cache_bytes(), n);
  // Longer: grown, the old pages come along and the new tail is fresh.
  vmalloc_thp_reset_for_test();
  auto* r = static_cast<unsigned char*>(kmalloc(12 * MiB));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r[0], 0x5a);
  EXPECT_EQ(r[n - 1], 0x5a);
  EXPECT_GE(resident_pages(r, 12 * MiB), n / 4096);
  EXPECT_TRUE(all_zero(r + n, 12 * MiB - n));
  std::memset(r, 0x77, 12 * MiB);
  kfree(r);
  EXPECT_EQ(vmalloc_cache_bytes(), 12 * MiB);
  // calloc leaves a resident mapping alone: it gets one that reads as zero.
  auto* z = static_cast<unsigned char*>(kcalloc(1, 12 * MiB));
  ASSERT_NE(z, nullptr);
  EXPECT_NE(z, r);
  EXPECT_TRUE(all_zero(z, 12 * MiB));
  EXPECT_EQ(vmalloc_cache_bytes(), 12 * MiB);
  kfree(z);
  EXPECT_EQ(vmalloc_cache_bytes(), 24 * MiB);
  vmalloc_cache_release(~std::uint64_t{0});
  EXPECT_EQ(vmalloc_cache_bytes(), 0u);
  EXPECT_EQ(vmalloc_cache_bytes(), 0u);
  EXPECT_EQ(resident_pages(r, 12 * MiB), ~std::size_t{0});  // unmapped
  vmalloc_set_wake_hook(nullptr);
}

// What a shorter request cuts off a cached range serves the next one, with
// its pages (no fault), and both blocks freed make the range whole again,
// whatever order they are freed in. (Before, the rest was unmapped: `large`
// faulted in again what it had just given back, 750 MiB in 500 blocks.)
TEST(SlubRss, TheRestOfACutRangeServesTheNextRequest) {
  PinHere pin;
  vmalloc_set_wake_hook(no_wake);
  vmalloc_cache_release(~std::uint64_t{0});
  constexpr std::size_t n = 16 * MiB;
  for (bool first_back_first : {true, false}) {
    vmalloc_thp_reset_for_test();
    auto* p = static_cast<unsigned char*>(kmalloc(n));
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x3c, n);
    kfree(p);
    ASSERT_EQ(vmalloc_cache_bytes(), n);
    vmalloc_thp_reset_for_test();  // no huge page advice wanted: the range's
    auto* a = static_cast<unsigned char*>(kmalloc(8 * MiB));
    ASSERT_EQ(a, p);
    std::size_t alen = ksize(a);
    vmalloc_thp_reset_for_test();
    auto* b = static_cast<unsigned char*>(kmalloc(6 * MiB));
    ASSERT_EQ(b, p + alen) << "the rest of the range";
    EXPECT_EQ(b[0], 0x3c);
    EXPECT_EQ(resident_pages(b, 6 * MiB), 6 * MiB / 4096);
    if (first_back_first) {
      kfree(a);
      kfree(b);
    } else {
      kfree(b);
      kfree(a);
    }
    EXPECT_EQ(vmalloc_cache_bytes(), n);
    vmalloc_thp_reset_for_test();
    auto* c = static_cast<unsigned char*>(kmalloc(n));
    EXPECT_EQ(c, p) << "one range again";
    kfree(c);
    vmalloc_cache_release(~std::uint64_t{0});
  }
  vmalloc_set_wake_hook(nullptr);
}

// Past 64 MiB of cached mappings the oldest give way: the newest freed
// stay resident, the rest are unmapped; above 32 MiB none is cached.
TEST(SlubRss, CachedMappingsStayWithinTheirBound) {
  PinHere pin;
  vmalloc_set_wake_hook(no_wake);
  vmalloc_cache_release(~std::uint64_t{0});
  vmalloc_thp_reset_for_test();
  constexpr std::size_t n = 12 * MiB;
  std::vector<unsigned char*> v;
  for (int i = 0; i < 10; ++i) {
    v.push_back(static_cast<unsigned char*>(kmalloc(n)));
    ASSERT_NE(v.back(), nullptr);
    std::memset(v.back(), 1, n);
  }
  for (unsigned char* m : v) kfree(m);
  EXPECT_EQ(vmalloc_cache_bytes(), 5 * n);  // 60 of 64 MiB
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::size_t res = resident_pages(v[i], n);
    if (i < v.size() - 5)
      EXPECT_EQ(res, ~std::size_t{0}) << "older mapping " << i << " still mapped";
    else
      EXPECT_EQ(res, n / 4096) << "newer mapping " << i << " not resident";
  }
  void* big = kmalloc(40 * MiB);
  ASSERT_NE(big, nullptr);
  kfree(big);
  EXPECT_EQ(resident_pages(big, 40 * MiB), ~std::size_t{0});
  // It may have grown a cached mapping (one fewer then); it is not cached.
  EXPECT_LE(vmalloc_cache_bytes(), 5 * n);
  EXPECT_GE(vmalloc_cache_bytes(), 4 * n);
  vmalloc_cache_release(~std::uint64_t{0});
  EXPECT_EQ(vmalloc_cache_bytes(), 0u);
  for (unsigned char* m : v) EXPECT_EQ(resident_pages(m, n), ~std::size_t{0});
  vmalloc_set_wake_hook(nullptr);
}

// An aligned request takes a cached mapping only where it is aligned so and
// long enough (growing may move it).
TEST(SlubRss, AlignedRequestKeepsItsAlignment) {
  vmalloc_set_wake_hook(no_wake);
  vmalloc_cache_release(~std::uint64_t{0});
  std::vector<void*> v;
  for (int i = 0; i < 4; ++i) v.push_back(kmalloc(6 * MiB + i * MiB));
  for (void* m : v) kfree(m);
  for (std::size_t align : {4096 * std::size_t{2}, MiB, 8 * MiB}) {
    void* p = kmalloc_aligned(align, 8 * MiB);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << align;
    std::memset(p, 2, 8 * MiB);
    kfree(p);
  }
  vmalloc_cache_release(~std::uint64_t{0});
  vmalloc_set_wake_hook(nullptr);
}

// Pages holding an object's start are written by new_slab: all of a slab of
// objects up to 2 KiB, one per object above a page.
TEST(SlubRss, SlabsKnowTheirTouchedPages) {
  kfree(kmalloc(64));  // the caches are set up
  for (unsigned c = 0; c < kNrClasses; ++c) {
    const KmemCache& k = g_kmem.caches[c];
    if (k.debug) continue;
    std::size_t pages = std::size_t{1} << k.order;
    if (k.size <= 2048) {
      EXPECT_EQ(k.touched_pages, pages) << k.name;
    }
    if (k.size >= kPageSize) {
      EXPECT_EQ(k.touched_pages, k.objects) << k.name;
    }
    EXPECT_LE(k.touched_pages, pages) << k.name;
    EXPECT_GE(k.touched_pages, 1u) << k.name;
  }
}

// The zones' touched pages are the slabs' (nothing else counts): after a
// burst of slabs is made, and after they are freed and shrunk away.
TEST(SlubRss, ZonesCountTheTouchedPagesOfLiveSlabs) {
  auto zones = [] {
    std::size_t n = 0;
    for (unsigned nid = 0; nid < g_kmem.pa->nr_nodes(); ++nid)
      n += g_kmem.pa->zone(nid).touched_pages.load();
    return n;
  };
  auto slabs = [] {
    std::size_t n = 0;
    for (unsigned c = 0; c < kNrClasses; ++c) {
      KmemCache& k = g_kmem.caches[c];
      for (unsigned nid = 0; nid < g_kmem.pa->nr_nodes(); ++nid) {
        LockGuard<Mutex> g(k.node[nid].list_lock);
        n += k.node[nid].nr_slabs * k.touched_pages;
      }
    }
    return n;
  };
  std::vector<void*> v;
  for (int i = 0; i < 20000; ++i) v.push_back(kmalloc(64));
  for (int i = 0; i < 300; ++i) v.push_back(kmalloc(16 * KiB));
  for (void* p : v) ASSERT_NE(p, nullptr);
  std::size_t busy = zones();
  EXPECT_EQ(busy, slabs());
  EXPECT_GE(busy, 20000 * 64 / kPageSize + 300 / 2);
  for (void* p : v) kfree(p);
  kmem_shrink_all();
  EXPECT_EQ(zones(), slabs());
  EXPECT_LT(zones(), busy);
}

// A cold slot's sheaf (sheaf_tune.h): 32 KiB of objects, one at least.
TEST(SlubRss, SheafHoldsAtMost32KiB) {
  kfree(kmalloc(64));  // the caches are set up
  for (unsigned c = 0; c < kNrClasses; ++c) {
    const KmemCache& k = g_kmem.caches[c];
    if (k.debug) continue;
    EXPECT_GE(k.sheaf_capacity, 1u) << k.name;
    if (k.sheaf_capacity > 1) {
      EXPECT_LE(k.sheaf_capacity * k.size, 32 * KiB) << k.name;
    }
  }
}

// Whether the mapping holding p carries MADV_HUGEPAGE (smaps' VmFlags "hg").
bool advised_huge(const void* p) {
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return false;
  char line[512];
  bool in = false, hg = false;
  auto a = reinterpret_cast<std::uintptr_t>(p);
  while (std::fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
        std::strchr(line, '-') < std::strchr(line, ' ')) {
      in = a >= lo && a < hi;
    } else if (in && std::strncmp(line, "VmFlags:", 8) == 0) {
      hg = std::strstr(line, " hg") != nullptr;
      break;
    }
  }
  std::fclose(f);
  return hg;
}

TEST(SlubRss, MappingsGetHugePagesWhenFreedOnesWereWritten) {
  kfree(kmalloc(64));
  if (page_allocator()->thp() != ThpMode::kAuto) GTEST_SKIP() << "thp is not auto here";
  std::string mode;
  if (FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r")) {
    char b[128] = {};
    if (std::fgets(b, sizeof b, f)) mode = b;
    std::fclose(f);
  }
  if (mode.find("[never]") != std::string::npos || mode.empty())
    GTEST_SKIP() << "the kernel has transparent huge pages off";
  vmalloc_set_wake_hook(nullptr);  // no cache: every request maps anew
  vmalloc_thp_reset_for_test();
  constexpr std::size_t n = 8 * MiB;
  // Nothing measured yet: plain mappings. Written whole and freed, 16 MiB
  // of them make the measure dense.
  for (int i = 0; i < 2; ++i) {
    void* p = kmalloc(n);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(advised_huge(p));
    std::memset(p, 1, n);
    kfree(p);
  }
  std::uint64_t advised0;
  unsigned pct;
  vmalloc_thp_stats(&advised0, &pct);
  EXPECT_EQ(pct, 100u);
  // Now advised, on a 2 MiB boundary, but for one probe in eight.
  std::vector<void*> v;
  int huge = 0;
  for (int i = 0; i < 8; ++i) {
    v.push_back(kmalloc(n));
    ASSERT_NE(v.back(), nullptr);
    if (advised_huge(v.back())) {
      ++huge;
      EXPECT_EQ(addr_of(v.back()) % (2 * MiB), 0u);
    }
  }
  EXPECT_EQ(huge, 7);
  std::uint64_t advised1;
  vmalloc_thp_stats(&advised1, &pct);
  EXPECT_EQ(advised1, advised0 + 7);
  for (void* p : v) kfree(p);
  // Mappings written at one page each: the measure falls below thp_dense,
  // and new ones are plain again.
  for (int i = 0; i < 4; ++i) {
    auto* p = static_cast<char*>(kmalloc(n));
    ASSERT_NE(p, nullptr);
    p[0] = 1;
    kfree(p);
  }
  vmalloc_thp_stats(&advised1, &pct);
  EXPECT_LT(pct, 75u);
  void* q = kmalloc(n);
  ASSERT_NE(q, nullptr);
  EXPECT_FALSE(advised_huge(q));
  kfree(q);
  vmalloc_thp_reset_for_test();
}

// A cached range serves a request that wants the other advice rather than
// a new mapping: its pages are resident already, and a new one would fault
// and zero its own. Under thp=auto the first mappings of a program are
// plain (nothing measured yet); once the measure turned dense, requests
// want huge ones and used to pass the plain ranges by: `large` made 16 new
// mappings instead of 4, unmapped 190-240 MiB of cached ranges instead of
// 75, and zeroed twice what thp=never did.
TEST(SlubRss, ACachedRangeServesARequestThatWantsTheOtherAdvice) {
  kfree(kmalloc(64));
  if (page_allocator()->thp() != ThpMode::kAuto) GTEST_SKIP() << "thp is not auto here";
  PinHere pin;
  vmalloc_set_wake_hook(no_wake);
  vmalloc_cache_release(~std::uint64_t{0});
  vmalloc_thp_reset_for_test();
  constexpr std::size_t n = 16 * MiB;
  auto* p = static_cast<unsigned char*>(kmalloc(n));
  ASSERT_NE(p, nullptr);
  std::memset(p, 0x4b, n);
  kfree(p);  // measured at its free: 16 MiB, all written (dense)
  std::uint64_t advised;
  unsigned pct;
  vmalloc_thp_stats(&advised, &pct);
  ASSERT_EQ(pct, 100u);
  ASSERT_EQ(vmalloc_cache_bytes(), n);
  // Two in a row: one probe in eight is plain, the others want advice.
  for (int i = 0; i < 2; ++i) {
    auto* q = static_cast<unsigned char*>(kmalloc(8 * MiB));
    ASSERT_EQ(q, p) << "request " << i << " made a new mapping";
    EXPECT_EQ(q[0], 0x4b);
    EXPECT_EQ(resident_pages(q, 8 * MiB), 8 * MiB / 4096) << "no fault";
    kfree(q);
    EXPECT_EQ(vmalloc_cache_bytes(), n);
  }
  vmalloc_cache_release(~std::uint64_t{0});
  vmalloc_thp_reset_for_test();
  vmalloc_set_wake_hook(nullptr);
}

}  // namespace
}  // namespace numaslub
