// lib/reclaim on the process heap: pages really leave after frees and idle
// time, released memory reads as zero where calloc relies on it, the
// watermarks and fake pressure drive releases, and a forked child restarts
// its reclaim thread. Runs with NUMASLUB_CONF set by CTest (short decay).
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "lib/base/config.h"
#include "lib/buddy/page_alloc.h"
#include "lib/reclaim/reclaim.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/vmalloc.h"
#include "tests/test_mincore.h"

using namespace numaslub;

namespace {

using numaslub::testutil::resident_pages;

template <typename Pred>
bool wait_for(Pred pred, int ms) {
  for (int waited = 0; waited < ms; waited += 10) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

void free_all(std::vector<void*>& v) {
  for (void* p : v) kfree(p);
  v.clear();
}

class Reclaim : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(slub_init());
    reclaim_init();
    saved_ = config();
  }
  void TearDown() override {
    config_set_for_test(saved_);
    reclaim_set_pressure_source(nullptr);
  }
  Config saved_;
};

TEST_F(Reclaim, FreedPagesLeaveAfterDecay) {
  ASSERT_LE(config().decay_ms, 200u) << "run with NUMASLUB_CONF=decay_ms=100";
  std::vector<void*> v;
  for (int i = 0; i < 64; ++i) {
    void* p = kmalloc(2 << 20);  // large blocks: released block by block
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x5a, 2 << 20);
    v.push_back(p);
  }
  std::vector<void*> probe(v.begin(), v.end());
  for (void* p : probe) ASSERT_EQ(resident_pages(p, 2 << 20), 512u);
  free_all(v);
  ASSERT_TRUE(wait_for([] { return kswapd_running(0); }, 2000)) << "kswapd never started";
  bool left = wait_for(
      [&] {
        std::size_t n = 0;
        for (void* p : probe) n += resident_pages(p, 2 << 20);
        return n < 64 * 512 / 20;  // under 5% still resident
      },
      3000);
  EXPECT_TRUE(left);
  static char buf[4096];
  reclaim_vmstat(buf, sizeof buf);
  EXPECT_NE(std::strstr(buf, "kswapd_passes"), nullptr);
}

TEST_F(Reclaim, ReleasedMemoryReadsAsZeroForCalloc) {
  Config c0 = config();
  c0.reclaim_start = 0;  // 1 MiB is below the default start mark
  config_set_for_test(c0);
  auto* p = static_cast<unsigned char*>(kmalloc(1 << 20));
  std::memset(p, 0xff, 1 << 20);
  kfree(p);
  // Released: the same pages come back zeroed, with no memset needed.
  PageAllocator* pa = page_allocator();
  ASSERT_TRUE(wait_for([&] { return resident_pages(p, 1 << 20) == 0; }, 3000));
  auto* z = static_cast<unsigned char*>(kcalloc(1, 1 << 20));
  for (std::size_t i = 0; i < (1 << 20); i += 64) ASSERT_EQ(z[i], 0);
  kfree(z);
  // Not released yet (no time to decay): calloc must clear it itself.
  Config c = config();
  c.decay_ms = 60000;
  config_set_for_test(c);
  auto* d = static_cast<unsigned char*>(kmalloc(1 << 20));
  std::memset(d, 0xff, 1 << 20);
  kfree(d);
  auto* z2 = static_cast<unsigned char*>(kcalloc(1, 1 << 20));
  for (std::size_t i = 0; i < (1 << 20); i += 64) ASSERT_EQ(z2[i], 0);
  kfree(z2);
  (void)pa;
}

bool g_fake_pressure = false;
bool fake_pressure() {
  return g_fake_pressure;
}

TEST_F(Reclaim, PressureReleasesEverythingCached) {
  Config c = config();
  c.decay_ms = 600000;  // decay alone would keep everything
  config_set_for_test(c);
  reclaim_set_pressure_source(fake_pressure);
  std::vector<void*> v;
  for (int i = 0; i < 32; ++i) {
    v.push_back(kmalloc(1 << 20));
    std::memset(v.back(), 1, 1 << 20);
  }
  Zone& z = page_allocator()->zone(0);
  {
    // And so would the watermarks (set after the allocations: onlining a
    // section recomputes them).
    LockGuard<Mutex> g(z.lock);
    z.wmark_min = z.wmark_low = z.wmark_high = std::size_t{1} << 40;
  }
  std::vector<void*> probe(v);
  free_all(v);
  g_fake_pressure = false;
  reclaim_pass(0);
  std::size_t before = 0;
  for (void* p : probe) before += resident_pages(p, 1 << 20);
  EXPECT_GT(before, 32u * 256 / 2) << "released without pressure or decay";
  g_fake_pressure = true;
  reclaim_pass(0);
  // kswapd sees the same pressure and may hold some blocks mid-release.
  EXPECT_TRUE(wait_for(
      [&] {
        std::size_t after = 0;
        for (void* p : probe) after += resident_pages(p, 1 << 20);
        return after == 0;
      },
      2000));
}

TEST_F(Reclaim, HighWatermarkReleasesWithoutWaitingForDecay) {
  Config c = config();
  c.decay_ms = 600000;
  config_set_for_test(c);
  Zone& z = page_allocator()->zone(0);
  std::size_t high;
  {
    LockGuard<Mutex> g(z.lock);
    high = z.wmark_high;
  }
  std::size_t blocks = (high * 4096) / (4 << 20) + 8;  // well past the high mark
  std::vector<void*> v;
  for (std::size_t i = 0; i < blocks; ++i) {
    v.push_back(kmalloc(4 << 20));
    ASSERT_NE(v.back(), nullptr);
    std::memset(v.back(), 1, 4 << 20);
  }
  free_all(v);
  kfree(kmalloc(40));
  bool balanced = wait_for(
      [&] {
        LockGuard<Mutex> g(z.lock);
        return z.dirty_pages() <= z.wmark_high;
      },
      3000);
  EXPECT_TRUE(balanced);
}

// Frees n MiB of touched 1 MiB blocks.
void burst(int mib) {
  std::vector<void*> v;
  for (int i = 0; i < mib; ++i) {
    v.push_back(kmalloc(1 << 20));
    std::memset(v.back(), 3, 1 << 20);
  }
  free_all(v);
}

std::size_t task_count() {
  std::size_t n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}

TEST_F(Reclaim, ThreadStartsOnlyAboveTheStartMark) {
  ASSERT_EQ(config().reclaim_start, 32u << 20) << "run with the default reclaim_start";
  std::size_t tasks = task_count();
  burst(4);
  kfree(kmalloc(40));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(kswapd_running(0)) << "4 MiB free started a thread";
  EXPECT_EQ(task_count(), tasks);
  burst(64);
  ASSERT_TRUE(wait_for([] { return kswapd_running(0); }, 2000)) << "64 MiB free: no thread";
  EXPECT_EQ(task_count(), tasks + 1);
}

// Cached direct mappings keep their pages (vmalloc.h), so they count
// towards starting the thread as free pages do, and the thread unmaps them
// once idle for decay_ms. Below the start mark they start nothing.
TEST_F(Reclaim, CachedMappingsStartTheThreadAndAge) {
  ASSERT_EQ(config().reclaim_start, 32u << 20) << "run with the default reclaim_start";
  ASSERT_LE(config().decay_ms, 200u) << "run with NUMASLUB_CONF=decay_ms=100";
  std::size_t tasks = task_count();
  std::vector<void*> v;
  for (int i = 0; i < 4; ++i) {
    v.push_back(kmalloc(12 << 20));
    ASSERT_NE(v.back(), nullptr);
    std::memset(v.back(), 0x11, 12 << 20);
  }
  kfree(v[0]);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(kswapd_running(0)) << "12 MiB cached started a thread";
  EXPECT_EQ(task_count(), tasks);
  EXPECT_EQ(resident_pages(v[0], 12 << 20), 3072u) << "not cached with its pages";
  for (int i = 1; i < 4; ++i) kfree(v[i]);  // 48 MiB cached
  ASSERT_TRUE(wait_for([] { return kswapd_running(0); }, 2000)) << "48 MiB cached: no thread";
  // Unmapped after they leave the cache (outside its lock): wait for both.
  EXPECT_TRUE(wait_for(
      [&] {
        for (void* p : v)
          if (resident_pages(p, 12 << 20) != ~std::size_t{0}) return false;
        return vmalloc_cache_bytes() == 0;
      },
      3000))
      << "never aged";
}

// A cached direct mapping has the thread look again every half period, but
// must not postpone a free block's own deadline: 150 ms into a 200 ms decay
// the next pass is due in about 55 ms, not in the mapping's 100 ms.
TEST_F(Reclaim, CachedMappingDoesNotDelayTheZonesDeadline) {
  Config c = config();
  c.decay_ms = 200;
  config_set_for_test(c);
  void* m = kmalloc(8 << 20);
  ASSERT_NE(m, nullptr);
  std::memset(m, 1, 8 << 20);
  kfree(m);
  ASSERT_GT(vmalloc_cache_bytes(), 0u);
  reclaim_pass(0);  // whatever was due before this test is gone
  void* b = kmalloc(1 << 20);
  std::memset(b, 2, 1 << 20);
  kfree(b);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  std::uint64_t sleep_ns = 0;
  reclaim_pass(0, &sleep_ns);
  EXPECT_GT(sleep_ns, 0u);
  EXPECT_LT(sleep_ns, 90'000'000u) << "the pass sleeps past the block's deadline";
}

// A burst pass gives back all but a reserve of at most reclaim_start, not
// the whole min mark (10% of the zone: after a 1 GiB burst, 116 MiB stayed
// until decay).
bool no_pressure() {
  return false;
}

// The set-up of the burst tests: only the burst rule releases (decay far
// off, no pressure), a reserve of 8 MiB, 64 written 2 MiB blocks in *v
// (above the slab classes and the CPUs' run lists), and node 0's marks of
// a larger heap (set after the allocations: onlining a section recomputes
// them): min 32 MiB, four times the reserve (a release may pass its mark
// by a 4 MiB block or two).
void burst_setup(std::vector<void*>* v) {
  Config c = config();
  c.decay_ms = 600000;
  c.reclaim_start = 8 << 20;
  config_set_for_test(c);
  reclaim_set_pressure_source(no_pressure);
  for (int i = 0; i < 64; ++i) {
    v->push_back(kmalloc(2 << 20));
    std::memset(v->back(), 4, 2 << 20);
  }
  Zone& z = page_allocator()->zone(0);
  LockGuard<Mutex> g(z.lock);
  z.wmark_min = 8192;
  z.wmark_low = 16384;
  z.wmark_high = 24576;
}

TEST_F(Reclaim, BurstKeepsAtMostReclaimStart) {
  std::vector<void*> v;
  burst_setup(&v);
  Zone& z = page_allocator()->zone(0);
  free_all(v);
  reclaim_pass(0);
  // kswapd (started by the burst) may hold blocks mid-release: wait.
  std::size_t dirty = 0;
  EXPECT_TRUE(wait_for(
      [&] {
        LockGuard<Mutex> g(z.lock);
        dirty = z.dirty_pages() - std::min(z.thp_kept_pages, z.dirty_pages());
        return dirty <= std::size_t{9 << 20} >> 12;
      },
      2000))
      << dirty << " dirty pages kept";
}

// A burst releases only blocks that have stayed free for 5 ms: a program
// churning big blocks (`large`) keeps more than the high mark free at
// instants and reuses it within milliseconds; the old burst released those
// blocks at once, and they were faulted in and zeroed again. Those the
// program does not take back go at a later look.
TEST_F(Reclaim, BurstLeavesBlocksFreedJustNow) {
  std::vector<void*> v;
  burst_setup(&v);
  Zone& z = page_allocator()->zone(0);
  auto dirty_now = [&] {
    LockGuard<Mutex> g(z.lock);
    return z.dirty_pages() - std::min(z.thp_kept_pages, z.dirty_pages());
  };
  auto t0 = std::chrono::steady_clock::now();
  free_all(v);
  std::size_t freed = dirty_now();
  auto took = std::chrono::steady_clock::now() - t0;  // the pass reads its clock first
  reclaim_pass(0);
  std::size_t after = dirty_now();
  // The blocks' stamps and the pass read the coarse clock (4 ms ticks):
  // within 1 ms they are at most one tick apart, under the 5 ms age. Slower
  // (a loaded machine) and the blocks may go: nothing to tell then.
  if (took < std::chrono::milliseconds(1)) {
    EXPECT_GE(freed, std::size_t{100} << 8) << "the frees left no burst to test";
    EXPECT_GE(after, freed - (std::size_t{8} << 8)) << "blocks freed just now were released";
  }
  EXPECT_TRUE(wait_for([&] { return dirty_now() <= std::size_t{9 << 20} >> 12; }, 2000))
      << dirty_now() << " dirty pages kept";
}

// A run a CPU caches after the reclaim thread went to sleep armed wakes it
// (Zone::run_wake_seq), and its idle drain returns the run to the zone: the
// memory goes back without the program asking.
TEST_F(Reclaim, RunCachedAfterTheThreadSleptIsDrained) {
  cpu_set_t old, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof old, &old), 0);
  int cpu = current_cpu();
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  PageAllocator* pa = page_allocator();
  Zone& z = pa->zone(0);
  PerCpuPages* pcp = pa->pcp(static_cast<unsigned>(cpu), 0);
  ASSERT_NE(pcp, nullptr);
  // Allocated before: its free is then a run freed, nothing of the zone's.
  void* block = kmalloc(100 * 1024);
  ASSERT_NE(block, nullptr);
  burst(64);
  kfree(kmalloc(40));
  ASSERT_TRUE(wait_for([] { return kswapd_running(0); }, 2000));
  ASSERT_TRUE(wait_for(
      [&] {
        LockGuard<Mutex> g(z.lock);
        return z.kswapd_armed;
      },
      5000))
      << "the thread never went to sleep armed";
  std::uint64_t run_frees;
  {
    LockGuard<Mutex> g(pcp->lock);
    run_frees = pcp->run_frees;
  }
  kfree(block);
  {
    // Counted, not looked for: the thread it woke may have drained it already.
    LockGuard<Mutex> g(pcp->lock);
    EXPECT_EQ(pcp->run_frees, run_frees + 1) << "the block went to the zone, not a run list";
  }
  bool drained = wait_for(
      [&] {
        LockGuard<Mutex> g(pcp->lock);
        return pcp->run_pages == 0;
      },
      3000);
  sched_setaffinity(0, sizeof old, &old);
  EXPECT_TRUE(drained) << "the cached run never went back";
}

TEST_F(Reclaim, ForkedChildRestartsItsReclaimThreadLazily) {
  burst(64);
  kfree(kmalloc(40));
  ASSERT_TRUE(wait_for([] { return kswapd_running(0); }, 2000));
  // Let the parent's thread release what it can, so the child starts from
  // a small cache.
  Zone& z = page_allocator()->zone(0);
  wait_for(
      [&] {
        LockGuard<Mutex> g(z.lock);
        return z.dirty_pages() * 4096 < (16u << 20);
      },
      3000);
  pid_t pid = fork();
  if (pid == 0) {
    reclaim_fork_child();  // what the shim's atfork child handler does
    if (kswapd_running(0) || task_count() != 1) _exit(10);
    std::vector<void*> c;
    for (int i = 0; i < 64; ++i) {
      c.push_back(kmalloc(1 << 20));
      std::memset(c.back(), 2, 1 << 20);
    }
    std::vector<void*> probe(c);
    for (void* p : c) kfree(p);
    kfree(kmalloc(40));
    for (int i = 0; i < 300; ++i) {
      std::size_t n = 0;
      for (void* p : probe) n += resident_pages(p, 1 << 20);
      if (n == 0) _exit(kswapd_running(0) ? 0 : 11);
      usleep(10000);
    }
    _exit(12);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0)
      << "10: a thread right after the fork handler, 11: released without a thread, "
         "12: no release";
}

TEST(ReclaimPressure, ParsesPsiAndCgroupFiles) {
  double v = -1;
  EXPECT_TRUE(parse_psi_some_avg10(
      "some avg10=12.50 avg60=3.00 avg300=0.10 total=123\nfull avg10=1.00 avg60=0 avg300=0 "
      "total=1\n",
      &v));
  EXPECT_DOUBLE_EQ(v, 12.5);
  EXPECT_FALSE(parse_psi_some_avg10("full avg10=1.00", &v));
  char path[64];
  EXPECT_TRUE(parse_cgroup_v2_path("0::/user.slice/app.scope\n", path, sizeof path));
  EXPECT_STREQ(path, "/user.slice/app.scope");
  EXPECT_FALSE(parse_cgroup_v2_path("4:memory:/foo\n", path, sizeof path));
  EXPECT_TRUE(parse_cgroup_v1_memory_path("9:name=systemd:/\n5:cpu,memory:/docker/abc\n0::/\n",
                                          path, sizeof path));
  EXPECT_STREQ(path, "/docker/abc");
  EXPECT_FALSE(parse_cgroup_v1_memory_path("3:memoryx:/a\n0::/\n", path, sizeof path));
}

// A memory cgroup the test creates under its own (v1's memory hierarchy, or
// v2 where the memory controller can be enabled for a child): its directory
// and the limit file to write, or false with the reason.
bool make_memory_cgroup(std::string* dir, std::string* limit_file, std::string* why) {
  char buf[4096];
  FILE* f = fopen("/proc/self/cgroup", "r");
  if (!f) return *why = "no /proc/self/cgroup", false;
  std::size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char cg[256];
  std::string name = "/numaslub-test-" + std::to_string(getpid());
  if (parse_cgroup_v1_memory_path(buf, cg, sizeof cg)) {
    std::string base = std::string("/sys/fs/cgroup/memory") + (std::strcmp(cg, "/") ? cg : "");
    if (mkdir((base + name).c_str(), 0755) == 0) {
      *dir = base + name;
      *limit_file = "memory.limit_in_bytes";
      return true;
    }
  }
  if (parse_cgroup_v2_path(buf, cg, sizeof cg)) {
    for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
      std::string base = std::string(root) + (std::strcmp(cg, "/") ? cg : "");
      if (mkdir((base + name).c_str(), 0755) != 0) continue;
      if (access((base + name + "/memory.max").c_str(), W_OK) == 0) {
        *dir = base + name;
        *limit_file = "memory.max";
        return true;
      }
      rmdir((base + name).c_str());
    }
  }
  *why = "cannot create a memory cgroup here (not root, or no memory controller delegated)";
  return false;
}

bool write_file(const std::string& path, const std::string& text) {
  FILE* f = fopen(path.c_str(), "w");
  if (!f) return false;
  bool ok = fputs(text.c_str(), f) >= 0;
  return fclose(f) == 0 && ok;
}

std::uint64_t read_u64(const std::string& path) {
  unsigned long long v = 0;
  FILE* f = fopen(path.c_str(), "r");
  if (!f) return 0;
  if (fscanf(f, "%llu", &v) != 1) v = 0;
  fclose(f);
  return v;
}

// In a memory-limited cgroup (a container), usage near the limit counts as
// pressure and a reclaim pass releases everything cached, although neither
// decay nor the watermarks would: before, only the host's PSI and cgroup v2
// at /sys/fs/cgroup were read, and a process in a v1 container kept its
// cache until the OOM killer came.
TEST_F(Reclaim, CgroupNearItsLimitIsPressure) {
  std::string dir, limit_file, why;
  if (!make_memory_cgroup(&dir, &limit_file, &why)) GTEST_SKIP() << why;
  constexpr std::uint64_t kLimit = 96u << 20;
  ASSERT_TRUE(write_file(dir + "/" + limit_file, std::to_string(kLimit)));
  std::string usage_file =
      dir + (limit_file == "memory.max" ? "/memory.current" : "/memory.usage_in_bytes");
  pid_t pid = fork();
  if (pid == 0) {
    if (!write_file(dir + "/cgroup.procs", "0")) _exit(20);
    Config c = config();
    c.decay_ms = 600000;
    config_set_for_test(c);
    Zone& z = page_allocator()->zone(0);
    if (pressure_from_kernel()) _exit(21);
    std::vector<void*> v;
    while (read_u64(usage_file) < kLimit / 100 * 93 && v.size() < 96) {
      v.push_back(kmalloc(1 << 20));
      std::memset(v.back(), 7, 1 << 20);
    }
    {
      LockGuard<Mutex> g(z.lock);
      z.wmark_min = z.wmark_low = z.wmark_high = std::size_t{1} << 40;
    }
    free_all(v);
    if (!pressure_from_kernel()) _exit(22);
    reclaim_pass(0);
    // The node's thread (started by the frees) may hold blocks mid-release.
    for (int i = 0; i < 200 && read_u64(usage_file) > kLimit / 2; ++i) usleep(10000);
    if (read_u64(usage_file) > kLimit / 2) _exit(23);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  rmdir(dir.c_str());
  ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  EXPECT_EQ(WEXITSTATUS(st), 0)
      << "20: cannot join the cgroup, 21: pressure before use, 22: no pressure near the "
         "limit, 23: cache not released";
}

}  // namespace
