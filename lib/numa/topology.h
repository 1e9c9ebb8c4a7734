// NUMA topology: nodes, their CPUs and distances, read from sysfs without
// allocating, or made up ("numa=fake=N") so every per-node path runs on a
// one-node machine.
//
// Logical node ids are dense 0..nr_nodes-1. Each maps to a physical node
// (the id mbind and get_mempolicy speak); fake nodes all map to the real node
// their CPUs belong to. CPUs of memory-less nodes are given to the nearest
// node that has memory.
#pragma once

#include <cstdint>

#include "lib/base/sysfs.h"

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

class Mutex;
Mutex& topology_lock();  // guards building the process topology (fork handlers)

// The process's topology (fake when config().fake_numa > 0), built once.
const Topology& topology();

}  // namespace numaslub
