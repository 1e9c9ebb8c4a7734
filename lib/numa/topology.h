// NUMA topology: nodes, their CPUs and distances, read from sysfs without
// allocating, or made up ("numa=fake=N") so every per-node path runs on a
// one-node machine.
//
// Logical node ids are dense 0..nr_nodes-1. Each maps to a physical node
// (the id mbind and get_mempolicy speak); fake nodes all map to the real node
// their CPUs belong to. CPUs of memory-less nodes are given to the nearest
// node that has memory.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"

namespace numaslub {

struct Topology {
  unsigned nr_nodes = 0;
  unsigned nr_cpus = 0;  // possible CPUs
  bool fake = false;
  std::uint16_t cpu_to_node[kMaxCpus] = {};
  std::uint16_t phys_node[kMaxNodes] = {};
  std::uint8_t distance[kMaxNodes][kMaxNodes] = {};
  CpuMask node_cpus[kMaxNodes];

  // Reads <root>/node/... and <root>/cpu/possible (root is normally
  // "/sys/devices/system"). On any failure yields a single node 0 holding
  // every CPU, so the allocator always has a topology.
  void load_sysfs(const char* root = "/sys/devices/system");

  // Splits `real`'s CPUs into n fake nodes (contiguous CPU groups, distance
  // 10 local / 20 remote), all backed by real node of each CPU.
  void make_fake(const Topology& real, unsigned n);

  // Nodes ordered by distance from nid (nid first): the kernel's zonelist.
  unsigned fallback_order(unsigned nid, std::uint16_t* out) const;

  int node_of_cpu(int cpu) const {
    return cpu >= 0 && static_cast<unsigned>(cpu) < nr_cpus ? cpu_to_node[cpu] : 0;
  }
};

// Where the heap's pages go (numa=): each node's range on its node (local),
// spread over nodes (interleave), only on some nodes (bind), or one node
// first (preferred). Node ids are the heap's logical nodes, the same as the
// kernel's wherever every node has memory. The values are the indices of
// the option's choices (lib/base/config.h).
enum class NumaMode : std::uint8_t { kLocal, kInterleave, kBind, kPreferred };
static_assert(choice_index(kNumaChoices, "local") == int(NumaMode::kLocal) &&
              choice_index(kNumaChoices, "interleave") == int(NumaMode::kInterleave) &&
              choice_index(kNumaChoices, "bind") == int(NumaMode::kBind) &&
              choice_index(kNumaChoices, "preferred") == int(NumaMode::kPreferred));

// The heap's memory policy, the kernel's mempolicy applied to the whole
// heap: which nodes may hold its pages, which node each node's CPUs
// allocate from first (their "home"), and what the OS is told about each
// section. Resolved once from numa= or, when the process was started under
// a policy of its own (numactl --membind/--interleave/--preferred), from
// that policy, which then wins and is never overridden with mbind.
//
// Invariants: allowed != 0 and only names existing nodes; home[n] is an
// allowed node for every node n; interleave_mask names physical nodes.
struct MemPolicy {
  static constexpr unsigned kMaskBits = 1024;  // physical node ids mbind may see
  static constexpr unsigned kWordBits = 8 * sizeof(unsigned long);

  NumaMode mode = NumaMode::kLocal;
  std::uint64_t allowed = ~0ULL;       // logical nodes the page allocator may use
  std::uint16_t home[kMaxNodes] = {};  // node n's CPUs allocate from home[n] first
  // kInterleave: the physical nodes the sections are interleaved over.
  unsigned long interleave_mask[kMaskBits / kWordBits] = {};
  std::uint64_t nodes = 0;  // the LIST (logical), 0 for local
  bool os_policy = true;    // mbind sections (mbind=1 and no process policy)
  int process_mode = 0;     // the process's own MPOL_* at start-up (0: MPOL_DEFAULT)

  bool allows(unsigned nid) const { return nid < kMaxNodes && (allowed >> nid & 1); }

  // Resolves cfg (or the process's policy, read with get_mempolicy) for
  // topo's nodes. An impossible request (nodes that do not exist) is logged
  // and falls back to local. Never allocates.
  void resolve(const Topology& topo, const Config& cfg);

  // "bind:1 (process policy 2)", for views and logs. Returns the length.
  std::size_t describe(char* buf, std::size_t cap) const;
};

class Mutex;
Mutex& topology_lock();  // guards building the process topology (fork handlers)

// The process's topology (fake when config().fake_numa > 0), built once.
const Topology& topology();

}  // namespace numaslub
