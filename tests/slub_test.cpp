// Tests for lib/slub: size classes, alignment, content integrity, large and
// huge blocks, kcalloc / krealloc / kmalloc_aligned / kmalloc_node, threads
// (random churn, CPU migration, cross-thread frees), the hardening checks,
// ownership, shrinking and the slabinfo view.
//
// The per-CPU mode is chosen once per process from NUMASLUB_CONF; ctest runs
// this binary three times (see tests/CMakeLists.txt): as is (rseq), with
// "percpu=thread" and with "fake_numa=2".
#include <errno.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lib/buddy/page_alloc.h"
#include "lib/slub/vmalloc.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/obj_index.h"
#include "lib/slub/size_class.h"

namespace numaslub {
namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * 1024;

// ------------------------------------------------------------ helpers

std::string conf_env() {
  const char* e = std::getenv("NUMASLUB_CONF");
  return e ? e : "";
}

bool is_pow2(std::size_t n) {
  return n && (n & (n - 1)) == 0;
}

std::uintptr_t addr(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// The per-object pattern: derived from the pointer and the size, so a block
// handed out twice, or written through a stale pointer, shows up.
std::uint64_t seed_of(const void* p, std::size_t n) {
  return mix(addr(p) ^ (n << 1) ^ 1);
}

std::uint64_t word_at(std::uint64_t seed, std::size_t i) {
  return seed ^ (i * 0x9E3779B97F4A7C15ULL);
}

void fill(void* p, std::size_t n, std::uint64_t seed) {
  auto* b = static_cast<unsigned char*>(p);
  std::size_t words = n / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t w = word_at(seed, i);
    std::memcpy(b + i * 8, &w, 8);
  }
  std::uint64_t last = word_at(seed, words);
  for (std::size_t j = words * 8; j < n; ++j)
    b[j] = static_cast<unsigned char>(last >> (j % 8 * 8));
}

// Index of the first byte that differs from the pattern, or n.
std::size_t first_bad(const void* p, std::size_t n, std::uint64_t seed) {
  auto* b = static_cast<const unsigned char*>(p);
  std::size_t words = n / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t w;
    std::memcpy(&w, b + i * 8, 8);
    if (w != word_at(seed, i)) {
      for (std::size_t j = i * 8;; ++j)
        if (b[j] != static_cast<unsigned char>(word_at(seed, i) >> (j % 8 * 8))) return j;
    }
  }
  std::uint64_t last = word_at(seed, words);
  for (std::size_t j = words * 8; j < n; ++j)
    if (b[j] != static_cast<unsigned char>(last >> (j % 8 * 8))) return j;
  return n;
}

void fill_obj(void* p, std::size_t n) {
  fill(p, n, seed_of(p, n));
}
bool check_obj(const void* p, std::size_t n) {
  return first_bad(p, n, seed_of(p, n)) == n;
}

bool all_zero(const void* p, std::size_t n) {
  auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i]) return false;
  return true;
}

struct Slot {
  void* p = nullptr;
  std::size_t n = 0;
};

// Sizes around every class boundary: n-1, n, n+1 (n+1 of the last class is
// a large request).
std::vector<std::size_t> boundary_sizes() {
  std::vector<std::size_t> v{0, 1};
  for (std::uint32_t c : kClassSize) {
    v.push_back(c - 1);
    v.push_back(c);
    v.push_back(c + 1);
  }
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// Expected alignment of a kmalloc(n) result.
std::size_t expected_align(std::size_t n) {
  if (n > kMaxSmallSize) return 4096;
  if (is_pow2(n) && n >= 16) return n;
  return 16;
}

std::size_t online_cpus_in_mask() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return static_cast<std::size_t>(CPU_COUNT(&set));
}

bool cpus01_allowed() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return false;
  return CPU_ISSET(0, &set) && CPU_ISSET(1, &set);
}

bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

// Restores the thread's CPU affinity when it goes out of scope.
class AffinityGuard {
 public:
  AffinityGuard() {
    CPU_ZERO(&saved_);
    ok_ = sched_getaffinity(0, sizeof saved_, &saved_) == 0;
  }
  ~AffinityGuard() {
    if (ok_) sched_setaffinity(0, sizeof saved_, &saved_);
  }

 private:
  cpu_set_t saved_;
  bool ok_;
};

void pin_here() {
  int cpu = sched_getcpu();
  if (cpu >= 0) pin_to(cpu);
}

// slabinfo as a string.
std::string slabinfo_text() {
  std::vector<char> buf(64 * KiB);
  std::size_t n = slabinfo(buf.data(), buf.size());
  EXPECT_LT(n, buf.size());
  return std::string(buf.data(), std::min(n, buf.size()));
}

// active_objs of the cache named `name` in a slabinfo text; -1 when absent.
long active_objs(const std::string& text, const std::string& name) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.compare(0, name.size(), name) != 0 || line.size() <= name.size() ||
        line[name.size()] != ' ')
      continue;
    long active = -1, total = -1;
    if (std::sscanf(line.c_str() + name.size(), "%ld %ld", &active, &total) != 2) return -1;
    return active;
  }
  return -1;
}

long total_active_objs(const std::string& text) {
  long sum = 0;
  for (std::uint32_t c : kClassSize) {
    long a = active_objs(text, "kmalloc-" + std::to_string(c));
    if (a < 0) return -1;
    sum += a;
  }
  return sum;
}

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
        slub_set_max_cpu_slots_for_test(1);
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
        if (slub_nr_cpu_slots() != 1) _exit(6);
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
        slub_set_max_cpu_slots_for_test(1);
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

// ------------------------------------------------------------ hardening

// obj_index.h's multiply-and-rotate agrees with division at every offset
// of every class's slab, the unused tail and the pages of no slab included.
TEST(SlubHardening, ObjIndexAgreesWithDivision) {
  for (unsigned c = 0; c < kNrClasses; ++c) {
    std::uint32_t d = kClassSize[c];
    std::uint64_t bytes = std::uint64_t{kPageSize} << slab_order_for(d);
    const ObjIndex& e = obj_index_entry(kObjIndex, class_slot_offset(c));
    ASSERT_EQ(e.objects, bytes / d) << d;
    ASSERT_EQ(e.mask, bytes - 1) << d;
    for (std::uint64_t base : {std::uint64_t{0}, bytes, 1000 * bytes}) {
      for (std::uint64_t off = 0; off < bytes; ++off) {
        bool start = off % d == 0 && off / d < e.objects;
        std::uint64_t i = obj_index(e, base + off);
        if (start)
          ASSERT_EQ(i, off / d) << d << " at " << off;
        else
          ASSERT_GE(i, e.objects) << d << " at " << off;
      }
    }
  }
  for (std::size_t slot = 0; slot < class_slot_offset(0); slot += 16)
    EXPECT_EQ(obj_index_entry(kObjIndex, slot).objects, 0u);
}

// A free of anything but the start of a live object aborts on the fast
// path's check, naming the object it points into and the cache.
TEST(SlubHardeningDeathTest, InteriorFreeNamesTheObject) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (std::size_t n : {std::size_t{16}, 48ul, 64ul, 160ul, 1000ul, 28672ul}) {
    char* p = static_cast<char*>(kmalloc(n));
    ASSERT_NE(p, nullptr);
    for (std::size_t delta : {std::size_t{8}, std::size_t{16}, n - 8}) {
      if (delta == 0 || delta >= kClassSize[size_to_class(n)]) continue;
      EXPECT_DEATH(kfree(p + delta), "invalid pointer .* bytes into object") << n << "+" << delta;
    }
    kfree(p);
  }
}

// A double free after any number of other frees (the object is no longer
// on top of the sheaf): the free tag catches it wherever the object is.
TEST(SlubHardeningDeathTest, FarDoubleFree) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (std::size_t others : {1ul, 8ul, 100ul, 5000ul}) {
    EXPECT_DEATH(
        {
          void* p = kmalloc(64);
          std::vector<void*> v;
          for (std::size_t i = 0; i < others; ++i) v.push_back(kmalloc(64));
          kfree(p);
          for (void* q : v) kfree(q);
          kfree(p);
        },
        "double free")
        << others;
  }
}

// The tag is cleared when an object is handed out again: freeing,
// reallocating and freeing once more is not a double free, on every path
// (fast, after a flush to the slab, calloc, realloc in place, another node).
TEST(SlubHardening, ReuseAfterFreeIsNotADoubleFree) {
  for (int round = 0; round < 3; ++round) {
    std::vector<void*> v;
    for (int i = 0; i < 3000; ++i) v.push_back(kmalloc(64));
    for (void* p : v) kfree(p);
    if (round == 1) kmem_shrink_all();
    v.clear();
    for (int i = 0; i < 3000; ++i) v.push_back(i % 2 ? kcalloc(1, 64) : kmalloc(64));
    for (void*& p : v) p = krealloc(p, 60);
    for (int i = 0; i < 100; ++i) v.push_back(kmalloc_node(64, 0));
    for (void* p : v) kfree(p);
  }
}

TEST(SlubHardeningDeathTest, DoubleFreeOfLastFreed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (std::size_t n : {std::size_t{16}, 64ul, 1000ul, 32768ul}) {
    EXPECT_DEATH(
        {
          pin_here();
          void* p = kmalloc(n);
          kfree(p);
          kfree(p);
        },
        "double free")
        << n;
  }
}

TEST(SlubHardeningDeathTest, DoubleFreeOfLastFreedWhateverTheSheafFill) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The first free may leave the sheaf full, half full or just replaced by
  // an empty one: the check must hold in each state.
  for (std::size_t count : {1ul, 2ul, 7ul, 8ul, 9ul, 63ul, 64ul, 65ul, 200ul}) {
    for (std::size_t n : {std::size_t{64}, 20000ul}) {
      EXPECT_DEATH(
          {
            pin_here();
            std::vector<void*> v;
            for (std::size_t i = 0; i < count; ++i) v.push_back(kmalloc(n));
            for (void* p : v) kfree(p);
            kfree(v.back());
          },
          "double free")
          << count << " objects of " << n;
    }
  }
}

TEST(SlubHardeningDeathTest, DoubleFreeAfterFlushIsCaughtByFreelist) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The first free reaches the slab's freelist (shrink flushes the
  // sheaves); the second sits in a sheaf until the next flush, which finds
  // the object at the head of the freelist.
  EXPECT_DEATH(
      {
        pin_here();
        // p's slab must keep other live objects, or the shrink would give
        // the slab back and the second free would be an invalid pointer.
        std::vector<void*> keep;
        for (int i = 0; i < 256; ++i) keep.push_back(kmalloc(64));
        void* p = keep[128];
        keep.erase(keep.begin() + 128);
        kfree(p);
        kmem_shrink_all();
        kfree(p);
        kmem_shrink_all();
        for (void* q : keep) kfree(q);
      },
      "double free");
}

TEST(SlubHardeningDeathTest, FreeOfForeignPointer) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  kfree(kmalloc(8));
  void* m = mmap(nullptr, 64 * KiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  EXPECT_DEATH(kfree(m), "did not allocate");
  alignas(16) char on_stack[32] = {};
  EXPECT_DEATH(kfree(on_stack), "did not allocate");
  void* big = kmalloc(100 * KiB);
  ASSERT_NE(big, nullptr);
  EXPECT_DEATH(kfree(static_cast<char*>(big) + 4096), "invalid pointer");
  kfree(big);
  munmap(m, 64 * KiB);
}

std::atomic<void*> g_foreign_seen{nullptr};
void record_foreign(void* p) {
  g_foreign_seen = p;
}

TEST(SlubOwnership, ForeignFreeHook) {
  void* m = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  set_foreign_free(record_foreign);
  kfree(m);
  EXPECT_EQ(g_foreign_seen.load(), m);
  // Our own pointers never reach the hook.
  g_foreign_seen = nullptr;
  for (std::size_t n : {std::size_t{64}, 100 * KiB, 5 * MiB}) kfree(kmalloc(n));
  EXPECT_EQ(g_foreign_seen.load(), nullptr);
  set_foreign_free(nullptr);
  munmap(m, 4096);
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
