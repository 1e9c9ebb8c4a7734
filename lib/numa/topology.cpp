#include "lib/numa/topology.h"

#include <atomic>

#include "lib/base/base.h"

namespace numaslub {

namespace {

void single_node(Topology* t, unsigned cpus) {
  t->nr_nodes = 1;
  t->nr_cpus = cpus ? cpus : 1;
  t->phys_node[0] = 0;
  t->distance[0][0] = 10;
  for (unsigned c = 0; c < t->nr_cpus; ++c) {
    t->cpu_to_node[c] = 0;
    t->node_cpus[0].set(c);
  }
}

}  // namespace

void Topology::load_sysfs(const char* root) {
  *this = Topology{};
  char path[256], buf[4096];
  CpuMask possible;
  format(path, sizeof path, "%s/cpu/possible", root);
  // Without sysfs, what the kernel says (affinity, current CPU): a lower
  // bound, which the per-CPU layers treat as such (they grow, or send CPUs
  // beyond their tables to a shared path).
  unsigned cpus = 0;
  if (read_text_file(path, buf, sizeof buf) > 0 && parse_list(buf, &possible) && !possible.empty())
    for (unsigned c = 0; c < kMaxCpus; ++c)
      if (possible.test(c)) cpus = c + 1;
  if (cpus == 0) cpus = kernel_cpus();

  NodeMask with_mem;
  format(path, sizeof path, "%s/node/has_memory", root);
  if (read_text_file(path, buf, sizeof buf) <= 0 || !parse_list(buf, &with_mem) ||
      with_mem.empty()) {
    format(path, sizeof path, "%s/node/online", root);
    if (read_text_file(path, buf, sizeof buf) <= 0 || !parse_list(buf, &with_mem) ||
        with_mem.empty()) {
      single_node(this, cpus);
      return;
    }
  }
  nr_cpus = cpus;
  std::uint16_t logical[kMaxNodes];
  for (unsigned p = 0; p < kMaxNodes; ++p) {
    logical[p] = 0xffff;
    if (with_mem.test(p)) {
      logical[p] = static_cast<std::uint16_t>(nr_nodes);
      phys_node[nr_nodes++] = static_cast<std::uint16_t>(p);
    }
  }
  // Physical distances (row per physical node), then the logical matrix.
  std::uint8_t pdist[kMaxNodes][kMaxNodes] = {};
  NodeMask online;
  format(path, sizeof path, "%s/node/online", root);
  if (read_text_file(path, buf, sizeof buf) <= 0 || !parse_list(buf, &online)) online = with_mem;
  for (unsigned p = 0; p < kMaxNodes; ++p) {
    if (!online.test(p)) continue;
    format(path, sizeof path, "%s/node/node%u/distance", root, p);
    std::uint32_t d[kMaxNodes];
    unsigned n = read_text_file(path, buf, sizeof buf) > 0 ? parse_numbers(buf, d, kMaxNodes) : 0;
    // The distance file lists one column per online node, in id order.
    unsigned col = 0;
    for (unsigned q = 0; q < kMaxNodes && col < n; ++q)
      if (online.test(q)) {
        std::uint32_t v = d[col++];
        pdist[p][q] = static_cast<std::uint8_t>(v > 255 ? 255 : v);
      }
    for (unsigned q = 0; q < kMaxNodes; ++q)
      if (!pdist[p][q]) pdist[p][q] = p == q ? 10 : 20;
  }
  for (unsigned i = 0; i < nr_nodes; ++i)
    for (unsigned j = 0; j < nr_nodes; ++j) distance[i][j] = pdist[phys_node[i]][phys_node[j]];

  // CPUs: each online node's cpulist; memory-less nodes' CPUs go to the
  // nearest node with memory.
  for (unsigned p = 0; p < kMaxNodes; ++p) {
    if (!online.test(p)) continue;
    format(path, sizeof path, "%s/node/node%u/cpulist", root, p);
    CpuMask m;
    if (read_text_file(path, buf, sizeof buf) < 0 || !parse_list(buf, &m)) continue;
    unsigned target = logical[p];
    if (target == 0xffff) {
      unsigned best = 0, bestd = 256;
      for (unsigned i = 0; i < nr_nodes; ++i)
        if (pdist[p][phys_node[i]] < bestd) bestd = pdist[p][phys_node[i]], best = i;
      target = best;
    }
    for (unsigned c = 0; c < nr_cpus; ++c)
      if (m.test(c)) {
        cpu_to_node[c] = static_cast<std::uint16_t>(target);
        node_cpus[target].set(c);
      }
  }
}

void Topology::make_fake(const Topology& real, unsigned n) {
  if (n == 0) n = 1;
  if (n > kMaxNodes) n = kMaxNodes;
  *this = Topology{};
  fake = true;
  nr_nodes = n;
  nr_cpus = real.nr_cpus;
  for (unsigned i = 0; i < n; ++i)
    for (unsigned j = 0; j < n; ++j) distance[i][j] = i == j ? 10 : 20;
  // Nodes left without CPUs (n > CPUs) are backed by the first real node.
  for (unsigned i = 0; i < n; ++i) phys_node[i] = real.phys_node[0];
  for (unsigned c = 0; c < nr_cpus; ++c) {
    unsigned node = nr_cpus >= n ? c * n / nr_cpus : c % n;
    cpu_to_node[c] = static_cast<std::uint16_t>(node);
    node_cpus[node].set(c);
    // A fake node is backed by the physical node of (one of) its CPUs.
    phys_node[node] = real.phys_node[real.cpu_to_node[c]];
  }
}

unsigned Topology::fallback_order(unsigned nid, std::uint16_t* out) const {
  unsigned k = 0;
  // Selection by distance, ties by id: a stable, deterministic zonelist.
  bool used[kMaxNodes] = {};
  for (unsigned round = 0; round < nr_nodes; ++round) {
    unsigned best = kMaxNodes, bestd = 1000;
    for (unsigned j = 0; j < nr_nodes; ++j) {
      unsigned d = j == nid ? 0 : distance[nid][j];
      if (!used[j] && d < bestd) best = j, bestd = d;
    }
    used[best] = true;
    out[k++] = static_cast<std::uint16_t>(best);
  }
  return k;
}

namespace {

// The kernel's MPOL_* modes and the flags get_mempolicy may or into them.
constexpr int kMpolDefault = 0, kMpolPreferred = 1, kMpolBind = 2, kMpolInterleave = 3,
              kMpolPreferredMany = 5, kMpolWeightedInterleave = 6;
constexpr int kMpolModeFlags = 0x7 << 13;  // MPOL_F_NUMA_BALANCING | RELATIVE | STATIC_NODES

std::uint64_t all_nodes(const Topology& t) {
  if (t.nr_nodes == 0) return 1;  // the arena's single node
  return t.nr_nodes >= 64 ? ~0ULL : (1ULL << t.nr_nodes) - 1;
}

// The logical nodes whose physical node is set in a kernel node mask.
std::uint64_t logical_nodes(const Topology& t, const unsigned long* mask) {
  std::uint64_t m = 0;
  for (unsigned n = 0; n < t.nr_nodes; ++n) {
    unsigned p = t.phys_node[n];
    if (p < MemPolicy::kMaskBits &&
        (mask[p / MemPolicy::kWordBits] >> (p % MemPolicy::kWordBits) & 1))
      m |= 1ULL << n;
  }
  return m;
}

const char* mode_name(NumaMode m) {
  switch (m) {
    case NumaMode::kInterleave:
      return "interleave";
    case NumaMode::kBind:
      return "bind";
    case NumaMode::kPreferred:
      return "preferred";
    default:
      return "local";
  }
}

}  // namespace

void MemPolicy::resolve(const Topology& topo, const Config& cfg) {
  *this = MemPolicy{};
  const std::uint64_t all = all_nodes(topo);
  mode = static_cast<NumaMode>(cfg.numa);
  nodes = cfg.numa_nodes;
  // The process's own policy (set by numactl before exec, inherited) wins.
  int pm = kMpolDefault;
  unsigned long pmask[kMaskBits / kWordBits] = {};
  if (sys::get_mempolicy(&pm, pmask, kMaskBits, nullptr, 0) != 0) pm = kMpolDefault;
  pm &= ~kMpolModeFlags;
  process_mode = pm;
  if (pm != kMpolDefault) {
    std::uint64_t lm = logical_nodes(topo, pmask);
    switch (pm) {
      case kMpolBind:
        mode = NumaMode::kBind;
        break;
      case kMpolInterleave:
      case kMpolWeightedInterleave:
        mode = NumaMode::kInterleave;
        break;
      case kMpolPreferred:
      case kMpolPreferredMany:  // an empty mask is "local allocation"
        mode = lm ? NumaMode::kPreferred : NumaMode::kLocal;
        break;
      default:  // MPOL_LOCAL, and modes newer than this code
        mode = NumaMode::kLocal;
        lm = 0;
    }
    nodes = lm;
  }
  os_policy = cfg.mbind && pm == kMpolDefault;
  if (mode == NumaMode::kLocal) nodes = 0;
  if (nodes & ~all) {
    if (mode == NumaMode::kInterleave || !(nodes & all) || cfg.verbose)
      log_msg("numa=%s: only nodes 0-%u exist; ignoring the others", mode_name(mode),
              topo.nr_nodes - 1);
    nodes &= all;
  }
  if (mode != NumaMode::kLocal && nodes == 0) {
    if (mode == NumaMode::kInterleave) {
      nodes = all;
    } else {
      log_msg("numa=%s names no node of this machine: using local", mode_name(mode));
      mode = NumaMode::kLocal;
    }
  }
  allowed = mode == NumaMode::kBind ? nodes : all;
  // A CPU's home: its node, or under bind/preferred the nearest listed node.
  for (unsigned n = 0; n < topo.nr_nodes; ++n) {
    home[n] = static_cast<std::uint16_t>(n);
    if (mode != NumaMode::kBind && mode != NumaMode::kPreferred) continue;
    std::uint16_t order[kMaxNodes];
    unsigned k = topo.fallback_order(n, order);
    for (unsigned i = 0; i < k; ++i)
      if (nodes >> order[i] & 1) {
        home[n] = order[i];
        break;
      }
  }
  if (mode == NumaMode::kInterleave)
    for (unsigned n = 0; n < topo.nr_nodes; ++n)
      if (nodes >> n & 1) {
        unsigned p = topo.phys_node[n];
        if (p < kMaskBits) interleave_mask[p / kWordBits] |= 1UL << (p % kWordBits);
      }
  if (cfg.verbose) {
    char buf[128];
    describe(buf, sizeof buf);
    log_msg("numa policy: %s", buf);
  }
}

std::size_t MemPolicy::describe(char* buf, std::size_t cap) const {
  BufWriter w(buf, cap);
  w.put(mode_name(mode));
  char sep = ':';
  for (unsigned n = 0; mode != NumaMode::kLocal && n < kMaxNodes; ++n) {
    if (!(nodes >> n & 1) || (n > 0 && nodes >> (n - 1) & 1)) continue;
    unsigned e = n;
    while (e + 1 < kMaxNodes && nodes >> (e + 1) & 1) ++e;
    if (e == n)
      w.printf("%c%u", sep, n);
    else
      w.printf("%c%u-%u", sep, n, e);
    sep = ',';
  }
  if (process_mode != kMpolDefault)
    w.printf(" (process policy %d)", process_mode);
  else if (!os_policy)
    w.put(" (mbind off)");
  return w.size();
}

namespace {
constinit std::atomic<Topology*> g_topology{nullptr};
// In static storage, not boot_alloc's: topology() cannot fail (its callers
// have no error path), and the pages are touched only as far as the machine
// has CPUs and nodes.
constinit Topology g_real_topology;
constinit Topology g_fake_topology;
constinit Mutex g_topology_lock;
}  // namespace

Mutex& topology_lock() {
  return g_topology_lock;
}

const Topology& topology() {
  if (Topology* t = g_topology.load(std::memory_order_acquire)) return *t;
  LockGuard<Mutex> g(g_topology_lock);
  if (Topology* t = g_topology.load(std::memory_order_relaxed)) return *t;
  // The real topology is kept for fake-node construction only.
  Topology* real = &g_real_topology;
  real->load_sysfs();
  Topology* t = real;
  if (config().fake_numa > 0) {
    t = &g_fake_topology;
    t->make_fake(*real, config().fake_numa);
  }
  g_topology.store(t, std::memory_order_release);
  return *t;
}

}  // namespace numaslub
