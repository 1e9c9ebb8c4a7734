// numa_place: numaslub's placement checks on a machine with real NUMA nodes,
// run inside a QEMU guest by numa-qemu.sh (see guest.sh). It asks the kernel
// where every page of an allocation lives (move_pages with nodes == NULL)
// and never times anything: the guest CPU is emulated.
//
//   numa_place local          a thread on each node's CPU gets slab objects,
//                             buddy blocks and direct mappings on its node
//   numa_place remote         objects freed on another node go back home
//   numa_place node           numaslub_malloc_node places on the node asked
//   numa_place exhaust        a full node falls back by distance, ENOMEM only
//                             when all are full (run with a small arena_size)
//   numa_place interleave     pages spread over every node
//   numa_place bind LIST      everything on LIST (each CPU: its nearest listed node)
//   numa_place preferred N    plain allocations on N, node-directed ones where asked
//
// Options: --policy=PREFIX  numaslub_numa_policy() must start with PREFIX;
//          --process        the policy is numactl's (the heap does not mbind
//                           over it): node-directed requests follow that policy.
// Linked with libnumaslub.a (NS_LINKED) it calls the API directly; otherwise
// it runs under LD_PRELOAD=libnumaslub.so and finds the API with dlsym.
// Prints one row per allocation with the pages found on each node; exits
// with the number of failed checks.
#include <dlfcn.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "numaslub/numaslub.h"

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kKiB = 1024, kMiB = 1024 * 1024;

struct Api {
  void* (*malloc_node)(std::size_t, int);
  int (*nr_nodes)();
  int (*node_stats)(int, numaslub_node_stat*, std::size_t);
  std::size_t (*numa_policy)(char*, std::size_t);
  std::size_t (*zoneinfo)(char*, std::size_t);
};
Api api;

template <typename F>
void resolve(F* fn, const char* name) {
  *fn = reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

bool load_api() {
#ifdef NS_LINKED
  api = {numaslub_malloc_node, numaslub_nr_nodes, numaslub_node_stats, numaslub_numa_policy,
         numaslub_zoneinfo};
#else
  resolve(&api.malloc_node, "numaslub_malloc_node");
  resolve(&api.nr_nodes, "numaslub_nr_nodes");
  resolve(&api.node_stats, "numaslub_node_stats");
  resolve(&api.numa_policy, "numaslub_numa_policy");
  resolve(&api.zoneinfo, "numaslub_zoneinfo");
#endif
  return api.malloc_node && api.nr_nodes && api.node_stats && api.numa_policy && api.zoneinfo;
}

int failures = 0;
#define CHECK(cond, ...)                                  \
  do {                                                    \
    if (!(cond)) {                                        \
      ++failures;                                         \
      std::printf("FAIL line %d: %s: ", __LINE__, #cond); \
      std::printf(__VA_ARGS__);                           \
      std::printf("\n");                                  \
    }                                                     \
  } while (0)

int nr_nodes = 0;
bool process_policy = false;

// printf into a std::string (GCC 12 warns about "literal" + std::string).
std::string fmt(const char* f, long a, long b = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

numaslub_node_stat stats(int node) {
  numaslub_node_stat st{};
  CHECK(api.node_stats(node, &st, sizeof st) == 0, "numaslub_node_stats(%d)", node);
  return st;
}

// Pages per node of a set of pages; `unknown` counts pages move_pages could
// not place (not present, or an error).
struct Hist {
  std::vector<long> n = std::vector<long>(64, 0);
  long unknown = 0;
  long total() const {
    long t = unknown;
    for (long v : n) t += v;
    return t;
  }
  void add(const Hist& o) {
    for (int i = 0; i < 64; ++i) n[i] += o.n[i];
    unknown += o.unknown;
  }
  // "n1" when every page is on one node, else "n0=3 n1=5".
  std::string str() const {
    std::string s;
    int only = -1, used = 0;
    for (int i = 0; i < 64; ++i)
      if (n[i]) only = i, ++used;
    if (used == 1 && !unknown) return fmt("n%ld", only);
    for (int i = 0; i < nr_nodes; ++i) s += fmt(s.empty() ? "n%ld=%ld" : " n%ld=%ld", i, n[i]);
    if (unknown) s += fmt(" ?=%ld", unknown);
    return s;
  }
  bool only_on(std::uint64_t nodes) const {
    if (unknown || total() == 0) return false;
    for (int i = 0; i < 64; ++i)
      if (n[i] && !(nodes >> i & 1)) return false;
    return true;
  }
};

void add_pages(std::set<std::uintptr_t>* pages, const void* p, std::size_t len) {
  auto a = reinterpret_cast<std::uintptr_t>(p) & ~(kPage - 1);
  auto end = reinterpret_cast<std::uintptr_t>(p) + len;
  for (; a < end; a += kPage) pages->insert(a);
}

Hist where(const std::set<std::uintptr_t>& pages) {
  Hist h;
  std::vector<void*> batch;
  auto flush = [&] {
    std::vector<int> status(batch.size(), -1);
    if (move_pages(0, batch.size(), batch.data(), nullptr, status.data(), 0) != 0) {
      h.unknown += static_cast<long>(batch.size());
    } else {
      for (int s : status) s >= 0 && s < 64 ? ++h.n[s] : ++h.unknown;
    }
    batch.clear();
  };
  for (std::uintptr_t a : pages) {
    batch.push_back(reinterpret_cast<void*>(a));
    if (batch.size() == 4096) flush();
  }
  if (!batch.empty()) flush();
  return h;
}

// The three ways to the page allocator: slab objects (<= 64 KiB), buddy
// blocks (up to 4 MiB), direct mappings above.
struct Kind {
  const char* name;
  std::vector<std::pair<std::size_t, int>> sizes;  // (bytes, count)
};
const Kind kKinds[] = {
    {"slab", {{64, 512}, {2 * kKiB, 32}, {16 * kKiB, 4}}},
    {"buddy", {{80 * kKiB, 4}, {1 * kMiB, 1}, {4 * kMiB, 1}}},
    {"mapping", {{6 * kMiB, 1}}},
};

struct Block {
  void* p;
  std::size_t size;
};

// Allocates one kind (plain malloc when node == kPlain, else
// numaslub_malloc_node(size, node)) and touches every byte.
constexpr int kPlain = -100;
std::vector<Block> alloc_kind(const Kind& k, int node) {
  std::vector<Block> v;
  for (auto [size, count] : k.sizes)
    for (int i = 0; i < count; ++i) {
      void* p = node == kPlain ? std::malloc(size) : api.malloc_node(size, node);
      CHECK(p != nullptr, "%s of %zu bytes (node %d): errno %d", k.name, size, node, errno);
      if (!p) continue;
      std::memset(p, 0xa5, size);
      v.push_back({p, size});
    }
  return v;
}

Hist where(const std::vector<Block>& blocks) {
  std::set<std::uintptr_t> pages;
  for (const Block& b : blocks) add_pages(&pages, b.p, b.size);
  return where(pages);
}

void free_all(std::vector<Block>* v) {
  for (const Block& b : *v) std::free(b.p);
  v->clear();
}

// Runs fn on a thread that starts bound to node's CPUs: it is there before
// its first allocation (in per-thread cache mode, a thread's caches hold the
// objects of the node it first allocated on).
void on_node(int node, const std::function<void()>& fn) {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  bitmask* m = numa_allocate_cpumask();
  CHECK(numa_node_to_cpus(node, m) == 0, "numa_node_to_cpus(%d)", node);
  for (unsigned c = 0; c < m->size && c < CPU_SETSIZE; ++c)
    if (numa_bitmask_isbitset(m, c)) CPU_SET(c, &cpus);
  numa_free_cpumask(m);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setaffinity_np(&attr, sizeof cpus, &cpus);
  struct Ctx {
    int node;
    const std::function<void()>* fn;
  } ctx{node, &fn};
  pthread_t t;
  int e = pthread_create(
      &t, &attr,
      [](void* arg) -> void* {
        auto* c = static_cast<Ctx*>(arg);
        int cpu = sched_getcpu();
        (*c->fn)();
        // Checked after fn: printing allocates.
        CHECK(numa_node_of_cpu(cpu) == c->node, "thread for node %d ran on cpu %d", c->node, cpu);
        return nullptr;
      },
      &ctx);
  CHECK(e == 0, "pthread_create: %d", e);
  if (e == 0) pthread_join(t, nullptr);
  pthread_attr_destroy(&attr);
}

std::uint64_t bit(int n) {
  return std::uint64_t{1} << n;
}

// Nodes by distance from `from` (itself first, ties by id): the zonelist.
std::vector<int> by_distance(int from) {
  std::vector<int> v;
  for (int i = 0; i < nr_nodes; ++i) v.push_back(i);
  std::stable_sort(v.begin(), v.end(), [&](int a, int b) {
    int da = a == from ? 0 : numa_distance(from, a), db = b == from ? 0 : numa_distance(from, b);
    return da < db;
  });
  return v;
}

int nearest_in(int from, std::uint64_t set) {
  for (int n : by_distance(from))
    if (set >> n & 1) return n;
  return -1;
}

void row(const char* mode, const std::string& who, const char* kind, const std::string& how,
         const Hist& h, const char* verdict) {
  std::printf("  %-10s %-9s %-8s %-16s pages %-24s %s\n", mode, who.c_str(), kind, how.c_str(),
              h.str().c_str(), verdict);
}

// Allocates every kind on a thread of each CPU node, plain and (unless
// `directed` is false) with numaslub_malloc_node for every node, and checks
// the pages are on expect_plain(cpu node) / expect_directed(cpu node, asked).
void placement_matrix(const char* mode, const std::function<std::uint64_t(int)>& expect_plain,
                      const std::function<std::uint64_t(int, int)>& expect_directed) {
  for (int cpu_node = 0; cpu_node < nr_nodes; ++cpu_node) {
    on_node(cpu_node, [&] {
      std::string who = fmt("cpu@n%ld", cpu_node);
      for (const Kind& k : kKinds) {
        std::vector<Block> v = alloc_kind(k, kPlain);
        Hist h = where(v);
        bool ok = h.only_on(expect_plain(cpu_node));
        row(mode, who, k.name, "malloc", h, ok ? "ok" : "WRONG");
        CHECK(ok, "%s: %s from %s landed on %s", mode, k.name, who.c_str(), h.str().c_str());
        free_all(&v);
      }
      if (!expect_directed) return;
      for (int asked = 0; asked < nr_nodes; ++asked)
        for (const Kind& k : kKinds) {
          std::vector<Block> v = alloc_kind(k, asked);
          Hist h = where(v);
          bool ok = h.only_on(expect_directed(cpu_node, asked));
          row(mode, who, k.name, fmt("malloc_node(%ld)", asked), h, ok ? "ok" : "WRONG");
          CHECK(ok, "%s: malloc_node(%d) %s from %s landed on %s", mode, asked, k.name, who.c_str(),
                h.str().c_str());
          free_all(&v);
        }
    });
  }
}

// ---------------------------------------------------------------- modes

void mode_local() {
  std::vector<numaslub_node_stat> before;
  for (int n = 0; n < nr_nodes; ++n) before.push_back(stats(n));
  placement_matrix(
      "local", [](int cpu) { return bit(cpu); }, nullptr);
  for (int n = 0; n < nr_nodes; ++n) {
    numaslub_node_stat st = stats(n);
    CHECK(st.numa_hit > before[n].numa_hit, "node %d served no block of its own CPU", n);
    CHECK(st.present_bytes > 0 && st.allowed == 1, "node %d: present %zu allowed %d", n,
          st.present_bytes, st.allowed);
  }
}

void mode_node() {
  placement_matrix(
      "node", [](int cpu) { return bit(cpu); }, [](int, int asked) { return bit(asked); });
  errno = 0;
  void* p = api.malloc_node(64, nr_nodes);
  CHECK(p == nullptr && errno == EINVAL, "malloc_node(64, %d): %p errno %d", nr_nodes, p, errno);
  // node < 0: the calling CPU's node.
  on_node(nr_nodes - 1, [&] {
    std::vector<Block> v = alloc_kind(kKinds[1], -1);
    Hist h = where(v);
    row("node", fmt("cpu@n%ld", nr_nodes - 1), "buddy", "malloc_node(-1)", h, "");
    CHECK(h.only_on(bit(nr_nodes - 1)), "malloc_node(-1) landed on %s", h.str().c_str());
    free_all(&v);
  });
}

void mode_remote() {
  const int home = 0, away = nr_nodes - 1;
  constexpr int kObjects = 4096;
  std::vector<void*> objs;
  std::set<void*> mine;
  on_node(home, [&] {
    for (int i = 0; i < kObjects; ++i) {
      void* p = std::malloc(64);
      std::memset(p, 1, 64);
      objs.push_back(p);
    }
  });
  mine.insert(objs.begin(), objs.end());
  std::set<std::uintptr_t> pages;
  for (void* p : objs) add_pages(&pages, p, 64);
  Hist h = where(pages);
  row("remote", "cpu@n0", "slab", "malloc 4096x64", h, h.only_on(bit(home)) ? "ok" : "WRONG");
  CHECK(h.only_on(bit(home)), "objects of node %d landed on %s", home, h.str().c_str());

  numaslub_node_stat b0 = stats(home);
  std::vector<void*> theirs;
  on_node(away, [&] {
    for (void* p : objs) std::free(p);  // remote frees: they go home
    for (int i = 0; i < kObjects; ++i) {
      void* p = std::malloc(64);
      std::memset(p, 2, 64);
      theirs.push_back(p);
    }
  });
  numaslub_node_stat a0 = stats(home);
  unsigned long long sent = a0.objects_remote_freed - b0.objects_remote_freed;
  std::printf("  remote     cpu@n%d   slab     free 4096 of n%d  objects sent home: %llu\n", away,
              home, sent);
  CHECK(sent >= kObjects, "only %llu of %d remote frees reached node %d", sent, kObjects, home);
  pages.clear();
  int stolen = 0;
  for (void* p : theirs) {
    add_pages(&pages, p, 64);
    stolen += mine.count(p) ? 1 : 0;
  }
  h = where(pages);
  row("remote", fmt("cpu@n%ld", away), "slab", "malloc after", h,
      h.only_on(bit(away)) && !stolen ? "ok" : "WRONG");
  CHECK(h.only_on(bit(away)), "node %d's CPU got objects on %s", away, h.str().c_str());
  CHECK(stolen == 0, "node %d's CPU reused %d objects of node %d", away, stolen, home);

  // Back on the home node the freed objects are reused.
  int reused = 0;
  std::vector<void*> again;
  on_node(home, [&] {
    for (int i = 0; i < kObjects; ++i) again.push_back(std::malloc(64));
  });
  pages.clear();
  for (void* p : again) {
    add_pages(&pages, p, 64);
    reused += mine.count(p) ? 1 : 0;
  }
  h = where(pages);
  std::printf("  remote     cpu@n%d   slab     malloc again     pages %-24s reused %d of %d\n",
              home, h.str().c_str(), reused, kObjects);
  CHECK(h.only_on(bit(home)), "home objects landed on %s", h.str().c_str());
  CHECK(reused >= kObjects / 2, "only %d of the objects freed remotely were reused at home",
        reused);
  on_node(home, [&] {
    for (void* p : again) std::free(p);
  });
  on_node(away, [&] {
    for (void* p : theirs) std::free(p);
  });

  // Buddy blocks: freed on the other node, they stay node 0's pages.
  std::vector<Block> blocks;
  on_node(home, [&] { blocks = alloc_kind({"buddy", {{80 * kKiB, 8}}}, kPlain); });
  b0 = stats(home);
  on_node(away, [&] {
    free_all(&blocks);
    blocks = alloc_kind({"buddy", {{80 * kKiB, 8}}}, kPlain);
  });
  a0 = stats(home);
  h = where(blocks);
  std::printf("  remote     cpu@n%d   buddy    free 8 of n%d     blocks sent home: %llu\n", away,
              home, a0.pages_remote_freed - b0.pages_remote_freed);
  row("remote", fmt("cpu@n%ld", away), "buddy", "malloc after", h,
      h.only_on(bit(away)) ? "ok" : "WRONG");
  CHECK(a0.pages_remote_freed - b0.pages_remote_freed >= 8, "remote block frees not counted");
  CHECK(h.only_on(bit(away)), "node %d's CPU got blocks on %s", away, h.str().c_str());
  on_node(away, [&] { free_all(&blocks); });

  char zi[1 << 16];
  api.zoneinfo(zi, sizeof zi);
  CHECK(std::strstr(zi, "numa_remote_free") != nullptr, "zoneinfo has no numa_remote_free");
}

void mode_exhaust() {
  const std::vector<int> zonelist = by_distance(0);
  std::string zl;
  for (int n : zonelist) zl += fmt(" %ld", n);
  std::printf("  exhaust    zonelist of node 0 by distance:%s\n", zl.c_str());
  constexpr int kMax = 4096, kSmall = 64;
  std::vector<void*> blocks, small;
  std::vector<int> nodes(kMax, -1), small_nodes(kSmall, -1);
  blocks.reserve(kMax);
  small.reserve(kSmall);
  int err = 0;
  numaslub_node_stat b0 = stats(0), a0{};
  on_node(0, [&] {
    // Nothing in here may allocate through malloc until the blocks are
    // freed again (move_pages is a plain system call).
    while (blocks.size() < kMax) {
      errno = 0;
      void* p = api.malloc_node(kMiB, 0);
      if (!p) {
        err = errno;
        break;
      }
      std::memset(p, 3, kMiB);
      blocks.push_back(p);
      // Once node 0 is full, node-directed small objects fall back too.
      int status = -1;
      if (small.empty() && move_pages(0, 1, &p, nullptr, &status, 0) == 0 && status != 0)
        for (int i = 0; i < kSmall; ++i) {
          void* q = api.malloc_node(64, 0);
          if (!q) break;
          std::memset(q, 4, 64);
          small.push_back(q);
        }
    }
    a0 = stats(0);
    if (move_pages(0, blocks.size(), blocks.data(), nullptr, nodes.data(), 0) != 0)
      std::fill(nodes.begin(), nodes.end(), -1);
    if (!small.empty() &&
        move_pages(0, small.size(), small.data(), nullptr, small_nodes.data(), 0) != 0)
      std::fill(small_nodes.begin(), small_nodes.end(), -1);
    for (void* p : blocks) std::free(p);
    for (void* q : small) std::free(q);
  });
  nodes.resize(blocks.size());
  small_nodes.resize(small.size());
  // Runs of equal nodes, in the order they were served.
  std::vector<std::pair<int, int>> runs;
  for (int n : nodes) {
    if (runs.empty() || runs.back().first != n) runs.push_back({n, 0});
    ++runs.back().second;
  }
  std::string seq;
  for (auto [n, c] : runs) seq += fmt(" n%ldx%ld", n, c);
  std::printf(
      "  exhaust    cpu@n0    buddy    malloc_node(0)   1 MiB blocks served by:%s, then %s\n",
      seq.c_str(), err == ENOMEM ? "NULL/ENOMEM" : "?");
  CHECK(blocks.size() < kMax, "node 0 never filled up: run with arena_size=16M,section_size=4M");
  CHECK(err == ENOMEM, "the last malloc_node failed with errno %d, not ENOMEM", err);
  std::size_t pos = 0;
  for (auto [n, c] : runs) {
    while (pos < zonelist.size() && zonelist[pos] != n) ++pos;
    CHECK(pos < zonelist.size(), "blocks came from node %d out of distance order", n);
  }
  CHECK(!runs.empty() && runs.front().first == 0, "the first block is not on node 0");
  CHECK(runs.size() == static_cast<std::size_t>(nr_nodes),
        "%zu runs of nodes for %d nodes: every node should serve once", runs.size(), nr_nodes);
  CHECK(a0.numa_miss > b0.numa_miss && a0.numa_fail > b0.numa_fail,
        "node 0 stats: miss %llu -> %llu, fail %llu -> %llu", b0.numa_miss, a0.numa_miss,
        b0.numa_fail, a0.numa_fail);
  std::printf("  exhaust    node 0 stats: numa_hit %llu numa_miss +%llu numa_fail +%llu\n",
              a0.numa_hit, a0.numa_miss - b0.numa_miss, a0.numa_fail - b0.numa_fail);
  if (!small.empty()) {
    Hist h;
    for (int n : small_nodes) n >= 0 && n < 64 ? ++h.n[n] : ++h.unknown;
    bool ok = h.only_on(bit(zonelist[0]) | bit(zonelist[1]));
    row("exhaust", "cpu@n0", "slab", "malloc_node(0)", h, ok ? "ok (node 0 full)" : "WRONG");
    std::printf("             (objects, not pages: 64 objects of 64 B asked of the full node 0)\n");
    CHECK(ok, "small objects of a full node 0 landed on %s", h.str().c_str());
  }
  // Freed, node 0 serves again.
  on_node(0, [&] {
    std::vector<Block> v = alloc_kind({"buddy", {{kMiB, 2}}}, 0);
    Hist h = where(v);
    row("exhaust", "cpu@n0", "buddy", "after free", h, h.only_on(1) ? "ok" : "WRONG");
    CHECK(h.only_on(1), "after the frees node 0's blocks landed on %s", h.str().c_str());
    free_all(&v);
  });
}

void mode_interleave(std::uint64_t set) {
  int members = 0;
  for (int i = 0; i < nr_nodes; ++i) members += set >> i & 1 ? 1 : 0;
  std::vector<Block> all;
  Hist total;
  for (const Kind& k : {Kind{"slab", {{1 * kKiB, 8192}}}, Kind{"buddy", {{1 * kMiB, 16}}},
                        Kind{"mapping", {{8 * kMiB, 2}}}}) {
    std::vector<Block> v = alloc_kind(k, kPlain);
    Hist h = where(v);
    int used = 0;
    for (int i = 0; i < nr_nodes; ++i) used += h.n[i] ? 1 : 0;
    bool ok = used > 1 && h.only_on(set);
    row("interleave", "main", k.name, "malloc", h, ok ? "spread" : "WRONG");
    CHECK(ok, "%s: pages on %d node(s): %s", k.name, used, h.str().c_str());
    total.add(h);
    all.insert(all.end(), v.begin(), v.end());
  }
  for (int i = 0; i < nr_nodes; ++i)
    if (set >> i & 1)
      CHECK(total.n[i] * 4 * members >= total.total(), "node %d holds %ld of %ld pages", i,
            total.n[i], total.total());
  std::printf("  interleave all kinds: pages %s\n", total.str().c_str());
  free_all(&all);
}

std::uint64_t parse_nodes(const char* s) {
  std::uint64_t m = 0;
  for (const char* p = s; *p;) {
    char* end;
    long lo = std::strtol(p, &end, 10), hi = lo;
    if (*end == '-') hi = std::strtol(end + 1, &end, 10);
    for (long i = lo; i <= hi && i < 64; ++i) m |= bit(static_cast<int>(i));
    p = *end ? end + 1 : end;
  }
  return m;
}

void mode_bind(std::uint64_t set) {
  std::vector<numaslub_node_stat> before;
  for (int n = 0; n < nr_nodes; ++n) before.push_back(stats(n));
  placement_matrix(
      "bind", [&](int cpu) { return process_policy ? set : bit(nearest_in(cpu, set)); },
      [&](int, int asked) {
        if (process_policy) return set;  // numactl's policy places the pages
        return set >> asked & 1 ? bit(asked) : bit(nearest_in(asked, set));
      });
  for (int n = 0; n < nr_nodes; ++n) {
    numaslub_node_stat st = stats(n);
    if (set >> n & 1) {
      CHECK(st.allowed == 1, "node %d is in the list but not allowed", n);
      continue;
    }
    std::printf("  bind       node %d (excluded): present %zu bytes, allowed %d, numa_miss +%llu\n",
                n, st.present_bytes, st.allowed, st.numa_miss - before[n].numa_miss);
    CHECK(st.allowed == 0 && st.present_bytes == 0, "excluded node %d: allowed %d present %zu", n,
          st.allowed, st.present_bytes);
    CHECK(st.numa_miss > before[n].numa_miss, "requests for excluded node %d not counted", n);
  }
}

void mode_preferred(int node) {
  placement_matrix(
      "preferred", [&](int) { return bit(node); },
      [&](int, int asked) { return process_policy ? bit(node) : bit(asked); });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODE [ARG] [--policy=PREFIX] [--process]\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1], arg, policy_prefix;
  for (int i = 2; i < argc; ++i) {
    if (std::strncmp(argv[i], "--policy=", 9) == 0)
      policy_prefix = argv[i] + 9;
    else if (std::strcmp(argv[i], "--process") == 0)
      process_policy = true;
    else
      arg = argv[i];
  }
  if (numa_available() < 0) {
    std::printf("FAIL: no NUMA support in this kernel\n");
    return 1;
  }
  if (!load_api()) {
    std::printf("FAIL: numaslub's API not found (is libnumaslub preloaded?)\n");
    return 1;
  }
  std::free(std::malloc(1));  // set the heap up
  nr_nodes = api.nr_nodes();
  char policy[128];
  api.numa_policy(policy, sizeof policy);
#ifdef NS_LINKED
  const char* how = "linked";
#else
  const char* how = "LD_PRELOAD";
#endif
  std::printf("numa_place %s%s%s (%s): heap nodes %d, kernel nodes %d, policy '%s'\n", mode.c_str(),
              arg.empty() ? "" : " ", arg.c_str(), how, nr_nodes, numa_num_configured_nodes(),
              policy);
  CHECK(nr_nodes == numa_num_configured_nodes() && nr_nodes >= 2,
        "the heap sees %d nodes, the kernel %d", nr_nodes, numa_num_configured_nodes());
  if (!policy_prefix.empty())
    CHECK(std::strncmp(policy, policy_prefix.c_str(), policy_prefix.size()) == 0,
          "policy '%s' does not start with '%s'", policy, policy_prefix.c_str());
  if (failures) return failures;

  if (mode == "local")
    mode_local();
  else if (mode == "node")
    mode_node();
  else if (mode == "remote")
    mode_remote();
  else if (mode == "exhaust")
    mode_exhaust();
  else if (mode == "interleave")
    mode_interleave(arg.empty() ? (bit(nr_nodes) - 1) : parse_nodes(arg.c_str()));
  else if (mode == "bind" && !arg.empty())
    mode_bind(parse_nodes(arg.c_str()));
  else if (mode == "preferred" && !arg.empty())
    mode_preferred(std::atoi(arg.c_str()));
  else
    CHECK(false, "unknown mode %s", mode.c_str());
  std::printf("numa_place %s: %s (%d failed check%s)\n", mode.c_str(), failures ? "FAIL" : "PASS",
              failures, failures == 1 ? "" : "s");
  return failures > 100 ? 100 : failures;
}
