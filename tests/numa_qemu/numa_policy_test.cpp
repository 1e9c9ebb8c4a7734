// The heap's memory policy on the host: numa= parsing, MemPolicy::resolve
// (from the config and from a process policy set as numactl sets it), and
// the page allocator under it on fake nodes: zonelists restricted to the
// allowed nodes, CPUs' home nodes, strict bindings the kernel refuses.
// Real placement on real nodes is numa_place's job, in QEMU guests.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lib/base/config.h"
#include "lib/base/syscall.h"
#include "lib/buddy/page_alloc.h"
#include "lib/numa/arena.h"
#include "lib/numa/topology.h"

namespace numaslub {
namespace {

constexpr std::size_t kMiB = 1 << 20;
constexpr int kMpolDefault = 0, kMpolPreferred = 1, kMpolBind = 2, kMpolInterleave = 3,
              kMpolLocal = 4;

// ---------------------------------------------------------------- numa=

TEST(NumaConfig, ParsesModesAndNodeLists) {
  Config c;
  EXPECT_EQ(NumaMode{c.numa}, NumaMode::kLocal);
  EXPECT_EQ(c.parse("numa=bind:0-1,3", false), 0);
  EXPECT_EQ(NumaMode{c.numa}, NumaMode::kBind);
  EXPECT_EQ(c.numa_nodes, 0b1011u);
  // A comma followed by a digit continues the list; any other ends the entry.
  EXPECT_EQ(c.parse("numa=interleave:0,2,verbose,pcp_high=7", false), 0);
  EXPECT_EQ(NumaMode{c.numa}, NumaMode::kInterleave);
  EXPECT_EQ(c.numa_nodes, 0b101u);
  EXPECT_TRUE(c.verbose);
  EXPECT_EQ(c.pcp_high, 7u);
  EXPECT_EQ(c.parse("numa=interleave", false), 0);
  EXPECT_EQ(c.numa_nodes, 0u);
  EXPECT_EQ(c.parse("numa=preferred:2", false), 0);
  EXPECT_EQ(NumaMode{c.numa}, NumaMode::kPreferred);
  EXPECT_EQ(c.numa_nodes, 0b100u);
  EXPECT_EQ(c.parse("numa=bind:63", false), 0);
  EXPECT_EQ(c.numa_nodes, 1ULL << 63);
  EXPECT_EQ(c.parse("numa=local", false), 0);
  EXPECT_EQ(NumaMode{c.numa}, NumaMode::kLocal);
  EXPECT_EQ(c.numa_nodes, 0u);
}

TEST(NumaConfig, BadValuesAreRejectedAndLeaveTheMode) {
  Config c;
  ASSERT_EQ(c.parse("numa=preferred:1", false), 0);
  for (const char* bad : {"numa=bind", "numa=bind:", "numa=bind:64", "numa=bind:2-1", "numa=bind:x",
                          "numa=bind:1-", "numa=bind:-1", "numa=preferred", "numa=local:1",
                          "numa=nodes", "numa=", "numa=interleave:"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(c.parse(bad, false), 1);
    EXPECT_EQ(NumaMode{c.numa}, NumaMode::kPreferred);
    EXPECT_EQ(c.numa_nodes, 0b10u);
  }
}

// ---------------------------------------------------------------- resolve

// Four nodes, one CPU each, distances where "nearest" is not "lowest id":
// node 0's zonelist is 0 2 3 1; node 2's nearest of {1, 3} is 1.
std::unique_ptr<Topology> four_nodes() {
  auto t = std::make_unique<Topology>();
  t->nr_nodes = 4;
  t->nr_cpus = 4;
  const std::uint8_t d[4][4] = {
      {10, 30, 20, 25}, {30, 10, 25, 20}, {20, 25, 10, 30}, {25, 20, 30, 10}};
  for (unsigned i = 0; i < 4; ++i) {
    t->phys_node[i] = static_cast<std::uint16_t>(i + 4);  // not the logical ids
    t->cpu_to_node[i] = static_cast<std::uint16_t>(i);
    t->node_cpus[i].set(i);
    for (unsigned j = 0; j < 4; ++j) t->distance[i][j] = d[i][j];
  }
  return t;
}

Config numa_config(const char* text) {
  Config c;
  c.arena_size = 64 * kMiB;
  c.section_size = 16 * kMiB;
  EXPECT_EQ(c.parse(text, false), 0) << text;
  return c;
}

std::string describe(const MemPolicy& p) {
  char buf[128];
  p.describe(buf, sizeof buf);
  return buf;
}

TEST(NumaPolicy, LocalIsEveryNodeOnItself) {
  auto t = four_nodes();
  MemPolicy p;
  p.resolve(*t, numa_config("numa=local"));
  EXPECT_EQ(p.mode, NumaMode::kLocal);
  EXPECT_EQ(p.allowed, 0b1111u);
  for (unsigned n = 0; n < 4; ++n) EXPECT_EQ(p.home[n], n);
  EXPECT_TRUE(p.os_policy);
  EXPECT_EQ(describe(p), "local");
  p.resolve(*t, numa_config("numa=local,mbind=0"));
  EXPECT_FALSE(p.os_policy);
  EXPECT_EQ(describe(p), "local (mbind off)");
}

TEST(NumaPolicy, BindRestrictsAndSendsEachCpuToTheNearestListedNode) {
  auto t = four_nodes();
  MemPolicy p;
  p.resolve(*t, numa_config("numa=bind:1,3"));
  EXPECT_EQ(p.mode, NumaMode::kBind);
  EXPECT_EQ(p.allowed, 0b1010u);
  EXPECT_FALSE(p.allows(0));
  EXPECT_TRUE(p.allows(3));
  const unsigned want[4] = {3, 1, 1, 3};
  for (unsigned n = 0; n < 4; ++n) EXPECT_EQ(p.home[n], want[n]) << n;
  EXPECT_EQ(describe(p), "bind:1,3");
}

TEST(NumaPolicy, PreferredSendsEveryCpuToTheNodeAndAllowsAll) {
  auto t = four_nodes();
  MemPolicy p;
  p.resolve(*t, numa_config("numa=preferred:2"));
  EXPECT_EQ(p.mode, NumaMode::kPreferred);
  EXPECT_EQ(p.allowed, 0b1111u);
  for (unsigned n = 0; n < 4; ++n) EXPECT_EQ(p.home[n], 2u);
  EXPECT_EQ(describe(p), "preferred:2");
}

TEST(NumaPolicy, InterleaveMasksThePhysicalNodes) {
  auto t = four_nodes();
  MemPolicy p;
  p.resolve(*t, numa_config("numa=interleave"));
  EXPECT_EQ(p.mode, NumaMode::kInterleave);
  EXPECT_EQ(p.nodes, 0b1111u);
  EXPECT_EQ(p.allowed, 0b1111u);
  EXPECT_EQ(p.interleave_mask[0], 0xf0UL);  // physical 4..7
  for (unsigned n = 0; n < 4; ++n) EXPECT_EQ(p.home[n], n);
  EXPECT_EQ(describe(p), "interleave:0-3");
  p.resolve(*t, numa_config("numa=interleave:1-2"));
  EXPECT_EQ(p.interleave_mask[0], 0x60UL);
  EXPECT_EQ(describe(p), "interleave:1-2");
}

TEST(NumaPolicy, NodesThatDoNotExistFallBackToLocal) {
  auto t = four_nodes();
  MemPolicy p;
  p.resolve(*t, numa_config("numa=bind:5-6"));
  EXPECT_EQ(p.mode, NumaMode::kLocal);
  EXPECT_EQ(p.allowed, 0b1111u);
  p.resolve(*t, numa_config("numa=bind:2,9"));
  EXPECT_EQ(p.mode, NumaMode::kBind);
  EXPECT_EQ(p.allowed, 0b100u);
  for (unsigned n = 0; n < 4; ++n) EXPECT_EQ(p.home[n], 2u);
}

// Sets the calling thread's policy as numactl does before exec; 0 or -errno.
long set_mempolicy(int mode, unsigned long mask) {
  return sys::call(SYS_set_mempolicy, mode, mode == kMpolLocal ? nullptr : &mask,
                   mode == kMpolLocal ? 0UL : 8 * sizeof mask + 1);
}

TEST(NumaPolicy, TheProcessPolicyWinsAndIsNotOverridden) {
  auto real = std::make_unique<Topology>();
  real->load_sysfs();
  const unsigned phys = real->phys_node[0];
  if (phys >= 64) GTEST_SKIP() << "node 0 is physical node " << phys;
  struct Case {
    int mode;
    NumaMode want;
    const char* text;
  };
  const Case cases[] = {{kMpolBind, NumaMode::kBind, "bind:0 (process policy 2)"},
                        {kMpolInterleave, NumaMode::kInterleave, "interleave:0 (process policy 3)"},
                        {kMpolPreferred, NumaMode::kPreferred, "preferred:0 (process policy 1)"},
                        {kMpolLocal, NumaMode::kLocal, "local (process policy 4)"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    // A thread of its own: the policy is per thread and must not leak.
    long r = 0;
    MemPolicy p;
    std::thread th([&] {
      r = set_mempolicy(c.mode, 1UL << phys);
      if (r == 0) p.resolve(*real, numa_config("numa=interleave"));  // the config loses
      set_mempolicy(kMpolDefault, 0);
    });
    th.join();
    if (r == -ENOSYS || r == -EPERM) GTEST_SKIP() << "set_mempolicy: " << -r;
    ASSERT_EQ(r, 0);
    EXPECT_EQ(p.mode, c.want);
    EXPECT_FALSE(p.os_policy);
    // Kernels before 5.14 report MPOL_LOCAL as MPOL_PREFERRED with no node.
    if (c.mode != kMpolLocal || p.process_mode != kMpolPreferred) {
      EXPECT_EQ(p.process_mode, c.mode);
      if (real->nr_nodes == 1) {
        EXPECT_EQ(describe(p), c.text);
      }
    }
  }
}

// ---------------------------------------------------------------- allocator

// An OsMem whose set_policy can refuse, and which records what it was asked.
struct Refuse {
  std::uintptr_t lo = 0, hi = 0;  // refuse ranges inside [lo, hi)
  int refuse_next = 0;            // and this many calls, wherever
  int err = EINVAL;
  int calls = 0, last_mode = -1;
  unsigned long last_mask = 0;
};
Refuse g_refuse;

int test_set_policy(void* addr, std::size_t len, int mode, const unsigned long* mask,
                    unsigned long maxnode) {
  ++g_refuse.calls;
  g_refuse.last_mode = mode;
  g_refuse.last_mask = mask ? mask[0] : 0;
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  if (g_refuse.refuse_next > 0) {
    --g_refuse.refuse_next;
    return g_refuse.err;
  }
  if (a >= g_refuse.lo && a < g_refuse.hi) return g_refuse.err;
  return os_mem_linux().set_policy(addr, len, mode, mask, maxnode);
}

const OsMem& test_os() {
  static const OsMem os = {os_mem_linux().reserve, os_mem_linux().commit,  os_mem_linux().decommit,
                           os_mem_linux().bind,    os_mem_linux().release, test_set_policy};
  return os;
}

// A page allocator on n fake nodes under `conf`; kept alive until exit.
struct Heap {
  Topology real, topo;
  PageAllocator pa;
};
std::vector<std::unique_ptr<Heap>> g_heaps;

PageAllocator* make_heap(unsigned nodes, const char* conf) {
  auto h = std::make_unique<Heap>();
  h->real.load_sysfs();
  h->topo.make_fake(h->real, nodes);
  g_refuse = Refuse{};
  if (h->pa.init(numa_config(conf), h->topo, test_os()) != 0) return nullptr;
  g_heaps.push_back(std::move(h));
  return &g_heaps.back()->pa;
}

std::string zoneinfo(PageAllocator* pa) {
  std::string s(1 << 20, '\0');
  s.resize(pa->zoneinfo(s.data(), s.size()));
  return s;
}

TEST(NumaAllocator, BindServesEverythingFromTheListedNode) {
  PageAllocator* pa = make_heap(2, "numa=bind:1");
  ASSERT_NE(pa, nullptr);
  for (unsigned c = 0; c < pa->nr_cpus(); ++c) EXPECT_EQ(pa->topo().node_of_cpu(c), 1) << c;
  EXPECT_TRUE(pa->topo().node_cpus[0].empty());
  EXPECT_EQ(pa->local_node(), 1);
  EXPECT_EQ(pa->policy_node(0), 1u);
  EXPECT_EQ(pa->policy_node(1), 1u);

  Page* p = pa->alloc_pages(kNumaNoNode, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pa->page_to_nid(p), 1u);
  Page* q = pa->alloc_pages(0, 3);  // excluded: served by the nearest allowed node
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(pa->page_to_nid(q), 1u);
  EXPECT_EQ(pa->node_stats(0).alloc_fallback, 1u);
  EXPECT_EQ(pa->alloc_pages(0, 0, kGfpThisNode), nullptr);
  EXPECT_EQ(pa->node_stats(0).alloc_fail, 1u);
  EXPECT_EQ(pa->zone(0).present_pages, 0u);
  EXPECT_EQ(g_refuse.last_mode, kMpolBind);  // node 1's section, strictly bound
  pa->free_pages(p, 0);
  pa->free_pages(q, 3);

  std::string zi = zoneinfo(pa);
  EXPECT_NE(zi.find("mempolicy:           bind:1 (excluded)"), std::string::npos) << zi;
  EXPECT_NE(zi.find("mempolicy:           bind:1\n"), std::string::npos) << zi;
  EXPECT_NE(zi.find("numa_remote_free"), std::string::npos) << zi;
}

TEST(NumaAllocator, PreferredSendsPlainAllocationsToTheNode) {
  PageAllocator* pa = make_heap(2, "numa=preferred:1");
  ASSERT_NE(pa, nullptr);
  Page* p = pa->alloc_pages(kNumaNoNode, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pa->page_to_nid(p), 1u);
  Page* q = pa->alloc_pages(0, 0, kGfpThisNode);  // asked for: still there
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(pa->page_to_nid(q), 0u);
  EXPECT_EQ(pa->node_stats(0).alloc_fallback, 0u);
  pa->free_pages(p, 0);
  pa->free_pages(q, 0);
}

TEST(NumaAllocator, InterleaveBindsSectionsInterleaved) {
  PageAllocator* pa = make_heap(2, "numa=interleave");
  ASSERT_NE(pa, nullptr);
  Page* p = pa->alloc_pages(1, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pa->page_to_nid(p), 1u);
  EXPECT_EQ(g_refuse.last_mode, kMpolInterleave);
  const unsigned phys = pa->arena().node(1).phys_node;
  if (phys < 64) {
    EXPECT_TRUE(g_refuse.last_mask >> phys & 1);
  }
  pa->free_pages(p, 0);
}

TEST(NumaAllocator, ARefusedStrictBindingFallsBackByDistance) {
  PageAllocator* pa = make_heap(2, "numa=bind:0-1");
  ASSERT_NE(pa, nullptr);
  const NodeRange& r0 = pa->arena().node(0);
  g_refuse.lo = r0.base;
  g_refuse.hi = r0.base + (r0.pages << kPageShift);
  Page* p = pa->alloc_pages(0, 2);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pa->page_to_nid(p), 1u);
  EXPECT_EQ(pa->node_stats(0).alloc_fallback, 1u);
  EXPECT_GE(r0.online_failures, 1u);
  EXPECT_EQ(r0.last_error, EINVAL);
  EXPECT_EQ(r0.online_pages.load(), 0u);  // nothing onlined unbound
  EXPECT_EQ(pa->zone(0).present_pages, 0u);

  // A direct mapping: node 0 refuses, node 1 takes it.
  void* m = mmap(nullptr, 4 * kMiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  int calls = g_refuse.calls;
  g_refuse.refuse_next = 1;
  EXPECT_EQ(pa->bind_mapping(m, 4 * kMiB, 0), 0);
  EXPECT_EQ(g_refuse.calls, calls + 2);
  // Every node refuses: the error comes back; the allocation fails.
  g_refuse.lo = 0;
  g_refuse.hi = ~std::uintptr_t{0};
  EXPECT_EQ(pa->bind_mapping(m, 4 * kMiB, 0), EINVAL);
  munmap(m, 4 * kMiB);
  pa->free_pages(p, 2);

  // ENOSYS / EPERM (no NUMA, a sandbox) are not refusals: memory is usable.
  g_refuse.err = ENOSYS;
  Page* q = pa->alloc_pages(0, 0, kGfpThisNode);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(pa->page_to_nid(q), 0u);
  pa->free_pages(q, 0);
}

TEST(NumaAllocator, AllRefusedFailsWithNoMemory) {
  PageAllocator* pa = make_heap(2, "numa=bind:0-1");
  ASSERT_NE(pa, nullptr);
  g_refuse.lo = pa->arena().base();
  g_refuse.hi = ~std::uintptr_t{0};
  EXPECT_EQ(pa->alloc_pages(0, 0), nullptr);
  EXPECT_EQ(pa->node_stats(0).alloc_fail, 1u);
}

TEST(NumaAllocator, LocalPrefersEachNodeWithoutAView) {
  PageAllocator* pa = make_heap(2, "numa=local");
  ASSERT_NE(pa, nullptr);
  for (unsigned c = 0; c < pa->nr_cpus(); ++c)
    EXPECT_EQ(pa->topo().node_of_cpu(c), g_heaps.back()->topo.node_of_cpu(c));
  EXPECT_EQ(&pa->topo(), &g_heaps.back()->topo);  // no policy view needed
  Page* p = pa->alloc_pages(1, 0, kGfpThisNode);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pa->page_to_nid(p), 1u);
  EXPECT_EQ(g_refuse.calls, 0);  // MPOL_PREFERRED goes through bind()
  pa->free_pages(p, 0);
}

TEST(NumaAllocator, RemoteFreesAreCountedOnTheBlocksNode) {
  PageAllocator* pa = make_heap(2, "numa=preferred:0");  // every CPU's home is node 0
  ASSERT_NE(pa, nullptr);
  Page* p = pa->alloc_pages(1, 1, kGfpThisNode);
  ASSERT_NE(p, nullptr);
  pa->free_pages(p, 1);  // freed by a CPU of node 0
  EXPECT_EQ(pa->node_stats(1).remote_free.load(), 1u);
  EXPECT_EQ(pa->node_stats(0).remote_free.load(), 0u);
}

}  // namespace
}  // namespace numaslub
