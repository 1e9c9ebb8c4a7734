// Tests for lib/numa's topology: sysfs trees written to a temporary
// directory (memory-less nodes, sparse ids, no has_memory, no sysfs), the
// real one, distances and fallback order, and fake nodes.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#ifdef NS_HAVE_LIBNUMA
#include <numa.h>
#include <numaif.h>
#else
#include <linux/mempolicy.h>
#endif

#include "lib/base/base.h"
#include "lib/numa/numa.h"

namespace numaslub {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// ---------------------------------------------------------------- Topology

using Files = std::initializer_list<std::pair<const char*, const char*>>;

// Loads a Topology from a sysfs-like tree written to a temporary directory.
std::unique_ptr<Topology> load_tree(Files files) {
  char tmpl[] = "/tmp/numaslub-sysfs-XXXXXX";
  EXPECT_NE(mkdtemp(tmpl), nullptr);
  for (const auto& [rel, text] : files) {
    std::filesystem::path p = std::string(tmpl) + "/" + rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text << "\n";
  }
  auto t = std::make_unique<Topology>();
  t->nr_nodes = 7;  // load_sysfs starts over
  t->load_sysfs(tmpl);
  std::filesystem::remove_all(tmpl);
  return t;
}

// Every CPU's node agrees with at most one node mask, and no mask holds more.
void expect_consistent(const Topology& t) {
  unsigned total = 0, in_masks = 0;
  for (unsigned c = 0; c < t.nr_cpus; ++c) {
    unsigned owners = 0;
    for (unsigned n = 0; n < t.nr_nodes; ++n)
      if (t.node_cpus[n].test(c)) {
        ++owners;
        EXPECT_EQ(t.cpu_to_node[c], n) << "cpu " << c;
      }
    EXPECT_LE(owners, 1u) << "cpu " << c;
    total += owners;
  }
  for (unsigned n = 0; n < t.nr_nodes; ++n) in_masks += t.node_cpus[n].count();
  EXPECT_EQ(in_masks, total);
}

// Checks nodes (physical ids), the distance matrix and each CPU's node.
void expect_topology(const Topology& t, std::vector<unsigned> phys,
                     std::vector<std::vector<unsigned>> dist, std::vector<unsigned> cpu_node) {
  ASSERT_EQ(t.nr_nodes, phys.size());
  EXPECT_EQ(t.nr_cpus, cpu_node.size());
  for (unsigned i = 0; i < phys.size(); ++i) {
    EXPECT_EQ(t.phys_node[i], phys[i]) << "node " << i;
    for (unsigned j = 0; j < phys.size(); ++j)
      EXPECT_EQ(t.distance[i][j], dist[i][j]) << "distance " << i << "," << j;
  }
  for (unsigned c = 0; c < cpu_node.size(); ++c) {
    EXPECT_EQ(t.cpu_to_node[c], cpu_node[c]) << "cpu " << c;
    EXPECT_TRUE(t.node_cpus[cpu_node[c]].test(c)) << "cpu " << c;
  }
  expect_consistent(t);
}

TEST(NumaTopology, SysfsMemorylessNodeCpusGoToNearest) {
  auto t = load_tree({{"cpu/possible", "0-7"},
                      {"node/online", "0-2"},
                      {"node/has_memory", "0,2"},
                      {"node/node0/cpulist", "0-2"},
                      {"node/node0/distance", "10 20 30"},
                      {"node/node1/cpulist", "3-5"},  // memory-less, nearest to node 2
                      {"node/node1/distance", "20 10 15"},
                      {"node/node2/cpulist", "6-7"},
                      {"node/node2/distance", "31 15 10"}});
  EXPECT_FALSE(t->fake);
  // Rows are not transposed: distance[1][0] is node 2's first column.
  expect_topology(*t, {0, 2}, {{10, 30}, {31, 10}}, {0, 0, 0, 1, 1, 1, 1, 1});
  EXPECT_EQ(t->node_of_cpu(4), 1);
  EXPECT_EQ(t->node_of_cpu(-1), 0);
  EXPECT_EQ(t->node_of_cpu(8), 0);
}

TEST(NumaTopology, SysfsSparseNodeIdsAreDense) {
  // Online nodes 0, 2, 3 (no node1 directory); node 0 has no memory.
  auto t = load_tree({{"cpu/possible", "0-5"},
                      {"node/online", "0,2-3"},
                      {"node/has_memory", "2-3"},
                      {"node/node0/cpulist", "0-1"},
                      {"node/node0/distance", "10 17 25"},  // columns: nodes 0, 2, 3
                      {"node/node2/cpulist", "2-3"},
                      {"node/node2/distance", "17 10 20"},
                      {"node/node3/cpulist", "4-5"},
                      {"node/node3/distance", "25 22 10"}});
  expect_topology(*t, {2, 3}, {{10, 20}, {22, 10}}, {0, 0, 0, 0, 1, 1});
}

TEST(NumaTopology, SysfsWithoutHasMemoryUsesOnline) {
  auto t = load_tree({{"cpu/possible", "0-3"},
                      {"node/online", "0-1"},
                      {"node/node0/cpulist", "0,2"},
                      {"node/node0/distance", "10 21"},
                      {"node/node1/cpulist", "1,3"},
                      {"node/node1/distance", "21 10"}});
  expect_topology(*t, {0, 1}, {{10, 21}, {21, 10}}, {0, 1, 0, 1});
}

TEST(NumaTopology, MissingSysfsGivesOneNode) {
  auto t = std::make_unique<Topology>();
  t->nr_nodes = 7;  // load_sysfs starts over
  t->load_sysfs("/nonexistent/numaslub/sys");
  // The CPUs the kernel shows (affinity, current CPU), not a guessed one.
  EXPECT_EQ(t->nr_cpus, kernel_cpus());
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  for (unsigned c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) {
      EXPECT_LT(c, t->nr_cpus);
    }
  expect_topology(*t, {0}, {{10}}, std::vector<unsigned>(t->nr_cpus, 0));
  // CPUs known but no node directory: one node holding all of them.
  t = load_tree({{"cpu/possible", "0-5"}});
  expect_topology(*t, {0}, {{10}}, {0, 0, 0, 0, 0, 0});
}

TEST(NumaTopology, FallbackOrderSortsByDistance) {
  auto t = std::make_unique<Topology>();
  t->nr_nodes = 4;
  const std::uint8_t d[4][4] = {
      {10, 40, 25, 25}, {40, 10, 20, 30}, {30, 20, 10, 20}, {25, 30, 20, 10}};
  for (unsigned i = 0; i < 4; ++i)
    for (unsigned j = 0; j < 4; ++j) t->distance[i][j] = d[i][j];
  const std::uint16_t want[4][4] = {{0, 2, 3, 1}, {1, 2, 3, 0}, {2, 1, 3, 0}, {3, 2, 0, 1}};
  for (unsigned n = 0; n < 4; ++n) {
    std::uint16_t out[kMaxNodes] = {};
    ASSERT_EQ(t->fallback_order(n, out), 4u);
    for (unsigned k = 0; k < 4; ++k) EXPECT_EQ(out[k], want[n][k]) << "from " << n << " #" << k;
  }
}

TEST(NumaTopology, RealSysfs) {
  auto t = std::make_unique<Topology>();
  t->load_sysfs();
  ASSERT_GE(t->nr_nodes, 1u);
  EXPECT_EQ(t->nr_cpus, possible_cpus());
  for (unsigned n = 0; n < t->nr_nodes; ++n) EXPECT_EQ(t->distance[n][n], 10u);
  expect_consistent(*t);
  // Every CPU this process may run on belongs to a node.
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  for (unsigned c = 0; c < t->nr_cpus && c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) {
      EXPECT_TRUE(t->node_cpus[t->cpu_to_node[c]].test(c)) << c;
    }
#ifdef NS_HAVE_LIBNUMA
  // libnuma agrees on the node of each CPU whose node has memory.
  if (numa_available() < 0) return;
  for (unsigned c = 0; c < t->nr_cpus && c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    int node = numa_node_of_cpu(static_cast<int>(c));
    if (node < 0 || numa_node_size64(node, nullptr) <= 0) continue;
    EXPECT_EQ(t->phys_node[t->cpu_to_node[c]], node) << c;
  }
#endif
}

void expect_fake(const Topology& real, const Topology& f, unsigned n) {
  EXPECT_TRUE(f.fake);
  ASSERT_EQ(f.nr_nodes, n);
  EXPECT_EQ(f.nr_cpus, real.nr_cpus);
  for (unsigned i = 0; i < n; ++i)
    for (unsigned j = 0; j < n; ++j) EXPECT_EQ(f.distance[i][j], i == j ? 10u : 20u);
  unsigned assigned = 0;
  for (unsigned n2 = 0; n2 < n; ++n2) assigned += f.node_cpus[n2].count();
  EXPECT_EQ(assigned, f.nr_cpus);  // every CPU in some node
  expect_consistent(f);
  for (unsigned c = 0; c < f.nr_cpus; ++c) {
    EXPECT_EQ(f.phys_node[f.cpu_to_node[c]], real.phys_node[real.cpu_to_node[c]]) << c;
    if (c > 0 && f.nr_cpus >= n) {  // contiguous groups
      EXPECT_GE(f.cpu_to_node[c], f.cpu_to_node[c - 1]);
    }
  }
  std::uint16_t order[kMaxNodes];
  ASSERT_EQ(f.fallback_order(n - 1, order), n);
  EXPECT_EQ(order[0], n - 1);
}

TEST(NumaTopology, MakeFakeOnRealTopology) {
  auto real = std::make_unique<Topology>();
  real->load_sysfs();
  for (unsigned n : {2u, 4u}) {
    auto f = std::make_unique<Topology>();
    f->make_fake(*real, n);
    SCOPED_TRACE(n);
    expect_fake(*real, *f, n);
  }
}

TEST(NumaTopology, MakeFakeSplitsCpusEvenly) {
  // Two real nodes: CPUs 0-3 on node 0, 4-7 on node 5.
  auto real = load_tree({{"cpu/possible", "0-7"},
                         {"node/online", "0,5"},
                         {"node/node0/cpulist", "0-3"},
                         {"node/node5/cpulist", "4-7"}});
  auto f = std::make_unique<Topology>();
  f->make_fake(*real, 4);
  expect_fake(*real, *f, 4);
  for (unsigned n = 0; n < 4; ++n) {
    EXPECT_EQ(f->node_cpus[n].count(), 2u) << n;
    EXPECT_EQ(f->phys_node[n], n < 2 ? 0u : 5u) << n;
  }
  f->make_fake(*real, 0);
  EXPECT_EQ(f->nr_nodes, 1u);
  EXPECT_EQ(f->node_cpus[0].count(), 8u);
  f->make_fake(*real, 1000);
  EXPECT_EQ(f->nr_nodes, kMaxNodes);
  expect_consistent(*f);

  // More fake nodes than CPUs, on a machine whose node 0 has no memory:
  // nodes left without CPUs are backed by the real memory node too.
  auto small = load_tree({{"cpu/possible", "0-1"},
                          {"node/online", "0,3"},
                          {"node/has_memory", "3"},
                          {"node/node0/cpulist", "0-1"}});
  f->make_fake(*small, 4);
  expect_fake(*small, *f, 4);
  for (unsigned n = 0; n < 4; ++n) EXPECT_EQ(f->phys_node[n], 3u) << n;
}

}  // namespace
}  // namespace numaslub
