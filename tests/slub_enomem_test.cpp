// Allocation failure at every layer boundary the object caches stand on:
// section onlining (the OS refuses a commit), page allocation (the buddy
// has nothing left) and the allocator's own metadata (boot_alloc). Each
// failure must give NULL and ENOMEM, keep what was allocated intact and
// usable, and last only as long as its cause: the seams are
// page_allocator_set_os_for_test (lib/buddy) and boot_alloc_fail_for_test
// (lib/base), and KmemCache takes its page allocator as a parameter.
//
// ctest runs this binary in the four configurations of slub_test (rseq,
// percpu=thread, fake_numa=2, both): see tests/CMakeLists.txt.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"
#include "lib/numa/numa.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/size_class.h"
#include "lib/slub/slab.h"

namespace numaslub {
namespace {

constexpr std::size_t KiB = 1024, MiB = KiB * KiB;

// The Linux OS layer, but commits stop succeeding once g_budget bytes are
// committed: the OS refusing to online a section (as under overcommit
// limits or a cgroup's memory.max).
std::size_t g_budget = 0;
std::size_t g_committed = 0;
std::size_t g_refused = 0;
int failing_commit(void* addr, std::size_t len) {
  if (g_committed + len > g_budget) {
    ++g_refused;
    return ENOMEM;
  }
  int e = os_mem_linux().commit(addr, len);
  if (e == 0) g_committed += len;
  return e;
}
const OsMem& failing_os() {
  static const OsMem os = [] {
    OsMem o = os_mem_linux();
    o.commit = failing_commit;
    return o;
  }();
  return os;
}

// Runs body in a child process; returns its exit status (0: passed).
template <class F>
int in_child(F body) {
  pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// ---------------------------------------------------------------- slab layer

// A cache on a page allocator whose sections stop coming: fill hands out
// what the onlined sections hold, then returns 0 (no crash, no partial
// slab); freed objects go back and the slabs shrink; once the OS gives
// again, fill grows past where it stopped.
TEST(SlabOnFailingBuddy, FillStopsAtTheFailureAndRecovers) {
  static Topology real, topo;
  real.load_sysfs();
  topo.make_fake(real, 1);
  Config cfg;
  cfg.arena_size = 256 * MiB;
  cfg.section_size = 16 * MiB;
  g_budget = 40 * MiB;  // two sections and their descriptors
  g_committed = g_refused = 0;
  static PageAllocator pa;
  ASSERT_EQ(pa.init(cfg, topo, failing_os()), 0);
  static KmemCache cache;
  unsigned cls = kClassBySize16[1024 / 16];
  ASSERT_TRUE(cache.init(cls, &pa, 0x1234567));
  std::vector<void*> objs;
  void* buf[64];
  for (;;) {
    unsigned got = cache.fill(0, buf, 64);
    if (got == 0) break;
    objs.insert(objs.end(), buf, buf + got);
    ASSERT_LT(objs.size(), 64 * MiB / 1024) << "more objects than the budget holds";
  }
  EXPECT_GT(g_refused, 0u);
  EXPECT_GE(objs.size(), 16 * MiB / 1024);  // a whole section's worth at least
  for (void* p : objs) std::memset(p, 0x5a, 1024);
  std::size_t before = objs.size();
  cache.free_batch(objs.data(), static_cast<unsigned>(objs.size()));
  objs.clear();
  EXPECT_GT(cache.shrink(true), 0u);
  g_budget = 128 * MiB;
  while (objs.size() <= before) {
    unsigned got = cache.fill(0, buf, 64);
    ASSERT_GT(got, 0u) << "no recovery after " << objs.size() << " objects";
    objs.insert(objs.end(), buf, buf + got);
  }
  cache.free_batch(objs.data(), static_cast<unsigned>(objs.size()));
}

// ---------------------------------------------------------------- whole heap

// The process heap, sections refused past a budget: small and large
// allocations fail with ENOMEM, realloc and calloc keep what they had,
// freeing lets allocation go on, and more budget lets the heap grow.
TEST(SlubEnomem, HeapFailsWithEnomemKeepsBlocksAndRecovers) {
  int st = in_child([] {
    page_allocator_set_os_for_test(failing_os());
    g_budget = 48 * MiB;
    g_committed = g_refused = 0;
    std::vector<void*> v;
    errno = 0;
    for (;;) {
      void* p = kmalloc(1000);
      if (!p) break;
      std::memset(p, static_cast<int>(v.size() & 0x7f), 1000);
      v.push_back(p);
      if (v.size() > 200000) _exit(3);  // the budget did not hold
    }
    if (errno != ENOMEM) _exit(4);
    if (g_refused == 0 || v.empty()) _exit(5);
    errno = 0;
    if (kmalloc(2 * MiB) != nullptr || errno != ENOMEM) _exit(6);  // a large block
    errno = 0;
    if (kcalloc(1, 3 * MiB) != nullptr || errno != ENOMEM) _exit(7);
    errno = 0;
    void* last = v.back();
    if (krealloc(last, 2 * MiB) != nullptr || errno != ENOMEM) _exit(8);
    for (std::size_t i = 0; i < v.size(); ++i) {
      auto* b = static_cast<unsigned char*>(v[i]);
      if (b[0] != (i & 0x7f) || b[999] != (i & 0x7f)) _exit(9);  // a block was damaged
    }
    std::size_t first = v.size();
    for (void* p : v) kfree(p);
    v.clear();
    void* again = kmalloc(1000);
    if (!again) _exit(10);  // freed memory serves again
    kfree(again);
    g_budget = 256 * MiB;
    for (std::size_t i = 0; i < 2 * first; ++i) {
      void* p = kmalloc(1000);
      if (!p) _exit(11);  // the heap did not grow once the OS gave again
      v.push_back(p);
    }
    void* big = kmalloc(2 * MiB);
    if (!big) _exit(12);
    kfree(big);
    for (void* p : v) kfree(p);
  });
  EXPECT_EQ(st, 0);
}

// Every metadata allocation of the heap's set-up, made to fail in turn (in
// a fresh child each): the first allocation fails with ENOMEM and no crash,
// and once boot_alloc gives again the next one sets the heap up and works.
// Fails on the old code: topology() used boot_alloc's memory unchecked
// (SIGSEGV when the second call failed).
TEST(SlubEnomem, EachMetadataFailureFailsOnlyWhileItLasts) {
  // How many boot_alloc calls a set-up and a first allocation make.
  std::size_t calls = 0;
  for (unsigned skip = 0;; ++skip) {
    int st = in_child([skip] {
      struct sigaction sa {};
      sa.sa_flags = SA_SIGINFO;
      sa.sa_sigaction = [](int, siginfo_t* si, void*) {
        std::fprintf(stderr, "SIGSEGV at %p\n", si->si_addr);
        _exit(77);
      };
      sigaction(SIGSEGV, &sa, nullptr);
      boot_alloc_fail_for_test(skip, 1u << 30);
      errno = 0;
      void* p = kmalloc(64);
      if (p) _exit(100);  // set-up needed no more than `skip` calls
      if (errno != ENOMEM) _exit(3);
      // A large block needs no cache: it may be served when the failure hit
      // metadata of the small objects' path only (a CPU's sheaves).
      errno = 0;
      void* l = kmalloc(100 * KiB);
      if (l)
        kfree(l);
      else if (errno != ENOMEM)
        _exit(4);
      boot_alloc_fail_for_test(0, 0);
      p = kmalloc(64);
      if (!p) _exit(5);  // the failure was final
      std::memset(p, 1, 64);
      kfree(p);
      void* q = kmalloc(100 * KiB);
      if (!q) _exit(6);
      kfree(q);
    });
    if (st == 100) break;
    ASSERT_EQ(st, 0) << "with boot_alloc failing after " << skip << " calls";
    ++calls;
    ASSERT_LT(calls, 5000u);
  }
  EXPECT_GT(calls, 0u) << "set-up allocates metadata: some call must have failed";
}

}  // namespace
}  // namespace numaslub
