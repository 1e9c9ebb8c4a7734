// Conformance of the exported malloc API, run twice: linked with
// libnumaslub.a (api_test_static) and under LD_PRELOAD=libnumaslub.so
// (api_test_preload). Each case is a behaviour POSIX, C or glibc specifies.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <numaslub/numaslub.h>

extern "C" {
// C23, not yet in glibc 2.36's headers.
void free_sized(void* p, size_t size);
void free_aligned_sized(void* p, size_t align, size_t size);
void cfree(void* p);  // removed from glibc's headers, still exported
}

#if NS_LINKED
#define NS_LINKED_FN(f) f
#else
#define NS_LINKED_FN(f) nullptr
#endif

namespace {

bool aligned(const void* p, std::size_t a) {
  return reinterpret_cast<std::uintptr_t>(p) % a == 0;
}

// Functions glibc 2.36 lacks: linked directly, or found in the preloaded
// library at run time.
template <typename Fn>
Fn api(Fn linked, const char* name) {
#if NS_LINKED
  (void)name;
  return linked;
#else
  (void)linked;
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
#endif
}

// Defeats the compiler's knowledge of malloc so calls really happen.
void* (*volatile g_malloc)(std::size_t) = malloc;
void* (*volatile g_realloc)(void*, std::size_t) = realloc;
void* (*volatile g_calloc)(std::size_t, std::size_t) = calloc;
void* (*volatile g_reallocarray)(void*, std::size_t, std::size_t) = reallocarray;

TEST(Api, NumaslubIsTheAllocator) {
  using NodesFn = int (*)();
  NodesFn nodes = api<NodesFn>(NS_LINKED_FN(numaslub_nr_nodes), "numaslub_nr_nodes");
  ASSERT_NE(nodes, nullptr) << "numaslub is not linked or preloaded";
  EXPECT_GE(nodes(), 1);
  void* p = g_malloc(100);
  EXPECT_EQ(malloc_usable_size(p), 112u);  // numaslub's class; glibc would say 104
  free(p);
}

TEST(Api, MallocZeroGivesUniquePointers) {
  void* a = g_malloc(0);
  void* b = g_malloc(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  free(a);
  free(b);
}

TEST(Api, FreePreservesErrnoAndAcceptsNull) {
  void* p = g_malloc(64);
  void* big = g_malloc(8 << 20);
  errno = 1234;
  free(p);
  free(big);
  free(nullptr);
  EXPECT_EQ(errno, 1234);
}

TEST(Api, OverflowAndHugeRequestsFailWithEnomem) {
  errno = 0;
  EXPECT_EQ(g_calloc(SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(g_reallocarray(nullptr, SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(g_malloc(SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(g_malloc(SIZE_MAX / 2), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Api, FailedReallocKeepsTheOldBlock) {
  for (std::size_t size : {40u, 5000u, 100000u, 6u << 20}) {
    auto* p = static_cast<unsigned char*>(g_malloc(size));
    ASSERT_NE(p, nullptr);
    std::memset(p, 0x5a, size);
    errno = 0;
    EXPECT_EQ(g_realloc(p, SIZE_MAX / 2), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    for (std::size_t i = 0; i < size; i += 97) ASSERT_EQ(p[i], 0x5a);
    free(p);
  }
}

TEST(Api, ReallocSemantics) {
  void* p = g_realloc(nullptr, 10);  // realloc(NULL, n) is malloc(n)
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(g_realloc(p, 0), nullptr);  // glibc: frees and returns NULL
  // Growth and shrinking through slab, large and vmalloc sizes keep content.
  std::size_t sizes[] = {1, 16, 100, 1000, 40000, 300000, 5 << 20, 20 << 20, 70000, 33, 8};
  auto* q = static_cast<unsigned char*>(g_malloc(1));
  q[0] = 0;
  std::size_t have = 1;
  for (std::size_t n : sizes) {
    q = static_cast<unsigned char*>(g_realloc(q, n));
    ASSERT_NE(q, nullptr);
    std::size_t keep = have < n ? have : n;
    for (std::size_t i = 0; i < keep; i += 13) ASSERT_EQ(q[i], static_cast<unsigned char>(i * 7));
    for (std::size_t i = 0; i < n; ++i) q[i] = static_cast<unsigned char>(i * 7);
    have = n;
    EXPECT_GE(malloc_usable_size(q), n);
  }
  free(q);
}

TEST(Api, CallocZeroesReusedMemory) {
  for (std::size_t size : {24u, 2000u, 50000u, 1u << 20, 5u << 20}) {
    void* p = g_malloc(size);
    std::memset(p, 0xff, size);
    free(p);
    auto* z = static_cast<unsigned char*>(g_calloc(1, size));
    ASSERT_NE(z, nullptr);
    for (std::size_t i = 0; i < size; ++i) ASSERT_EQ(z[i], 0) << "size " << size << " at " << i;
    free(z);
  }
}

TEST(Api, PosixMemalign) {
  void* p = reinterpret_cast<void*>(0x1);
  EXPECT_EQ(posix_memalign(&p, 3, 16), EINVAL);
  EXPECT_EQ(posix_memalign(&p, 4, 16), EINVAL);  // not a multiple of sizeof(void*)
  EXPECT_EQ(p, reinterpret_cast<void*>(0x1));    // untouched on failure
  EXPECT_EQ(posix_memalign(&p, 64, SIZE_MAX / 2), ENOMEM);
  for (std::size_t a = 8; a <= (4u << 20); a *= 2) {
    for (std::size_t size : {1u, 100u, 4096u, 70000u}) {
      ASSERT_EQ(posix_memalign(&p, a, size), 0) << a << " " << size;
      EXPECT_TRUE(aligned(p, a)) << a << " " << size;
      std::memset(p, 1, size);
      free(p);
    }
  }
}

TEST(Api, AlignedAllocMemalignVallocPvalloc) {
  errno = 0;
  EXPECT_EQ(aligned_alloc(24, 48), nullptr);
  EXPECT_EQ(errno, EINVAL);
  for (std::size_t a : {1u, 2u, 4u, 8u, 16u, 256u, 65536u}) {
    void* p = aligned_alloc(a, 48);
    ASSERT_NE(p, nullptr) << a;
    EXPECT_TRUE(aligned(p, a));
    free(p);
  }
  void* m = memalign(24, 100);  // glibc rounds a non-power of two up
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(aligned(m, 32));
  free(m);
  void* v = valloc(10);
  EXPECT_TRUE(aligned(v, 4096));
  free(v);
  void* pv = pvalloc(10);
  EXPECT_TRUE(aligned(pv, 4096));
  EXPECT_GE(malloc_usable_size(pv), 4096u);
  free(pv);
}

TEST(Api, UsableSizeCoversEveryRequest) {
  EXPECT_EQ(malloc_usable_size(nullptr), 0u);
  for (std::size_t n = 1; n < 70000; n = n * 5 / 4 + 1) {
    void* p = g_malloc(n);
    ASSERT_GE(malloc_usable_size(p), n);
    std::memset(p, 0xab, malloc_usable_size(p));
    free(p);
  }
}

TEST(Api, SizedFrees) {
  auto fs = api<void (*)(void*, size_t)>(NS_LINKED_FN(free_sized), "free_sized");
  auto fas =
      api<void (*)(void*, size_t, size_t)>(NS_LINKED_FN(free_aligned_sized), "free_aligned_sized");
  auto cf = api<void (*)(void*)>(NS_LINKED_FN(cfree), "cfree");
  ASSERT_TRUE(fs && fas && cf);
  void* p = g_malloc(200);
  fs(p, 200);
  void* q = aligned_alloc(128, 256);
  fas(q, 128, 256);
  cf(g_malloc(10));
}

TEST(Api, MallinfoTrimMallopt) {
  std::vector<void*> v;
  for (int i = 0; i < 1000; ++i) v.push_back(g_malloc(1000));
  struct mallinfo2 mi = mallinfo2();
  EXPECT_GT(mi.arena, 1000u * 1000u);
  EXPECT_GE(mi.uordblks, 1000u * 1000u);
  for (void* p : v) free(p);
  int trimmed = malloc_trim(0);
  EXPECT_TRUE(trimmed == 0 || trimmed == 1);
  EXPECT_EQ(mallopt(M_ARENA_MAX, 2), 1);
  void* p = g_malloc(100);  // still works after a trim
  std::memset(p, 1, 100);
  free(p);
}

// numaslub_node_stats' slab_objects: the node's slab objects in use or
// cached, which objects asked of that node raise and their frees (after a
// trim empties the caches) lower again.
TEST(Api, NodeStatsCountTheNodesSlabObjects) {
  using StatsFn = int (*)(int, numaslub_node_stat*, size_t);
  using MallocNodeFn = void* (*)(size_t, int);
  using TrimFn = size_t (*)();
  auto stats = api<StatsFn>(NS_LINKED_FN(numaslub_node_stats), "numaslub_node_stats");
  auto malloc_node = api<MallocNodeFn>(NS_LINKED_FN(numaslub_malloc_node), "numaslub_malloc_node");
  auto trim = api<TrimFn>(NS_LINKED_FN(numaslub_trim), "numaslub_trim");
  ASSERT_TRUE(stats && malloc_node && trim) << "numaslub is not linked or preloaded";
  constexpr unsigned long long kN = 2000;
  std::vector<void*> v;
  v.reserve(kN);
  trim();  // nothing cached: slab_objects counts the live objects
  numaslub_node_stat before = {}, during = {}, after = {};
  ASSERT_EQ(stats(0, &before, sizeof before), 0);
  for (unsigned long long i = 0; i < kN; ++i) v.push_back(malloc_node(64, 0));
  ASSERT_EQ(stats(0, &during, sizeof during), 0);
  for (void* p : v) free(p);
  trim();
  ASSERT_EQ(stats(0, &after, sizeof after), 0);
  EXPECT_GE(during.slab_objects, before.slab_objects + kN);
  EXPECT_LE(after.slab_objects + kN, during.slab_objects);
  errno = 0;
  EXPECT_EQ(stats(-1, &after, sizeof after), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Api, CxxForms) {
  auto* a = new int(5);
  delete a;
  auto* arr = new int[1000];
  delete[] arr;
  struct alignas(256) Wide {
    char c[300];
  };
  auto* w = new Wide;
  EXPECT_TRUE(aligned(w, 256));
  delete w;
  auto* wa = new Wide[3];
  EXPECT_TRUE(aligned(wa, 256));
  delete[] wa;
  void* s = ::operator new(100);
  ::operator delete(s, 100);
  void* al = ::operator new(100, std::align_val_t(4096));
  EXPECT_TRUE(aligned(al, 4096));
  ::operator delete(al, 100, std::align_val_t(4096));
  EXPECT_EQ(::operator new(SIZE_MAX / 2, std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](SIZE_MAX / 2, std::align_val_t(64), std::nothrow), nullptr);
  EXPECT_THROW(static_cast<void>(::operator new(SIZE_MAX / 2)), std::bad_alloc);
}

int g_handler_calls = 0;
void release_reserve() {
  ++g_handler_calls;
  std::set_new_handler(nullptr);  // one try, then bad_alloc
}

TEST(Api, NewHandlerIsCalledBeforeBadAlloc) {
  std::set_new_handler(release_reserve);
  EXPECT_THROW(static_cast<void>(::operator new(SIZE_MAX / 4)), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 1);
}

TEST(Api, MmapWrappersReturnTheKernelsAnswer) {
  void* m = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  std::memset(m, 1, 1 << 20);
  void* g = mremap(m, 1 << 20, 4 << 20, MREMAP_MAYMOVE);
  ASSERT_NE(g, MAP_FAILED);
  EXPECT_EQ(static_cast<char*>(g)[12345], 1);
  EXPECT_EQ(munmap(g, 4 << 20), 0);
  errno = 0;
  EXPECT_EQ(mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, 12345, 0), MAP_FAILED);
  EXPECT_EQ(errno, EBADF);
  errno = 0;
  EXPECT_EQ(munmap(reinterpret_cast<void*>(0x1001), 4096), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Api, ForkWhileOtherThreadsAllocate) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t)
    workers.emplace_back([&stop, t] {
      std::vector<void*> v;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 100; ++i) v.push_back(g_malloc(16 + (i * 37 + t) % 5000));
        for (void* p : v) free(p);
        v.clear();
      }
    });
  int ok = 0;
  for (int k = 0; k < 50; ++k) {
    pid_t pid = fork();
    if (pid == 0) {
      std::vector<void*> v;
      for (int i = 0; i < 2000; ++i) v.push_back(g_malloc(i % 3000 + 1));
      for (void* p : v) free(p);
      std::thread t([] { free(g_malloc(100)); });
      t.join();
      _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  stop = true;
  for (auto& w : workers) w.join();
  EXPECT_EQ(ok, 50);
}

TEST(Api, DlopenLibraryThatAllocatesInConstructors) {
  for (int round = 0; round < 20; ++round) {
    void* h = dlopen(NS_DL_ALLOC_PATH, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(h, nullptr) << dlerror();
    auto fn = reinterpret_cast<const char* (*)()>(dlsym(h, "dl_alloc_greeting"));
    ASSERT_NE(fn, nullptr);
    EXPECT_STREQ(fn(), "allocated in a constructor");
    EXPECT_EQ(dlclose(h), 0);
  }
}

long rss_kb() {
  FILE* f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
  }
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

TEST(Api, ThreadChurnDoesNotGrowRss) {
  auto churn = [](int n) {
    for (int i = 0; i < n; ++i) {
      std::thread t([i] {
        void* p[8];
        for (int k = 0; k < 8; ++k) p[k] = g_malloc(16u << (k + i % 4));
        for (void* q : p) free(q);
      });
      t.join();
    }
  };
  churn(2000);
  long before = rss_kb();
  churn(100000);
  long after = rss_kb();
  EXPECT_LT(after - before, 16 * 1024) << "RSS grew from " << before << " to " << after << " KiB";
}

TEST(ApiDeathTest, DoubleFreeAbortsNamingTheAddress) {
  EXPECT_DEATH(
      {
        // The cheap check compares with the object this CPU freed last, so
        // both frees must happen on one CPU.
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu(), &one);
        sched_setaffinity(0, sizeof one, &one);
        void* p = g_malloc(48);
        free(p);
        free(p);
      },
      "double free of 0x[0-9a-f]+");
}

}  // namespace

namespace {

// NUMASLUB_CONF=debug: a sized free larger than the block aborts, naming it,
// whichever sized form frees it (they share the free fast path, which sends
// them to the check under debug: kmalloc.h). ctest runs it in rseq and in
// per-thread mode.
TEST(ApiDebugDeathTest, SizedDeleteOfTheWrongSizeAborts) {
  const char* conf = getenv("NUMASLUB_CONF");
  if (!conf || !strstr(conf, "debug")) GTEST_SKIP() << "runs with NUMASLUB_CONF=debug";
  auto fs = api<void (*)(void*, size_t)>(NS_LINKED_FN(free_sized), "free_sized");
  auto fas =
      api<void (*)(void*, size_t, size_t)>(NS_LINKED_FN(free_aligned_sized), "free_aligned_sized");
  ASSERT_TRUE(fs && fas);
  // The right sizes, many times (past a sheaf's worth): fine.
  for (int i = 0; i < 1000; ++i) {
    void* p = ::operator new(24);
    ::operator delete(p, 24);
    p = g_malloc(24);
    fs(p, 24);
    p = ::operator new (24, std::align_val_t{64});
    ::operator delete (p, 24, std::align_val_t{64});
  }
  const char* msg = "sized free of 0x[0-9a-f]+ with size 4096, but the block holds 32 bytes";
  EXPECT_DEATH(
      {
        void* q = ::operator new(24);
        ::operator delete(q, 4096);
      },
      msg);
  EXPECT_DEATH(
      {
        void* q = ::operator new[](24);
        ::operator delete[](q, 4096);
      },
      msg);
  EXPECT_DEATH(fs(g_malloc(24), 4096), msg);
  EXPECT_DEATH(fas(aligned_alloc(32, 24), 32, 4096), msg);
  EXPECT_DEATH(
      ::operator delete (::operator new (24, std::align_val_t{32}), 4096, std::align_val_t{32}),
      msg);
}

}  // namespace
