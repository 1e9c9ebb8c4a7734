// The published views' file format: what a process under numaslub writes
// into its file (publish.h) and another process of the same user reads
// (reader.h), modelled on the JVM's hsperfdata files.
//
// One file per process, $TMPDIR/numaslub-<euid>/<pid> (/tmp when TMPDIR is
// unset), directory mode 0700, file mode 0600. Layout, all little-endian
// host words, every section 8-byte aligned:
//
//   [FileHeader]                         written once, before the file gets its name
//   [snapshot copy 0][snapshot copy 1]   each: SnapHeader, ZoneSnap[nodes],
//                                        PcpSnap[pcp_cpus * nodes],
//                                        CacheSnap[classes],
//                                        CacheNodeSnap[classes * nodes],
//                                        StatSnap[vmstat_max]
//
// The two copies make a latch (the kernel's seqcount_latch): FileHeader::seq
// counts the snapshots published, copy (seq & 1) holds the latest complete
// one, and a publish writes the other copy and then stores seq + 1 with
// release order. A reader loads seq (acquire), copies copy (seq & 1), and
// keeps the copy only if seq has not changed meanwhile (any write to that
// copy comes after seq moved past the value it read). So a reader never
// waits for a writer, and a writer stopped or interrupted in the middle of
// a publish leaves the previous snapshot readable. Each copy carries a
// checksum of itself as a second line of defence.
//
// Every count is a 64-bit word (sizes in pages or objects, as the kernel's
// views print them). A change of any struct below bumps kVersion.
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaslub::pub {

inline constexpr char kMagic[8] = {'N', 'S', 'L', 'U', 'B', 'P', 'U', 'B'};
inline constexpr std::uint32_t kVersion = 1;
inline constexpr unsigned kOrders = 11;       // buddy orders 0..10 (kNrOrders)
inline constexpr unsigned kVmstatMax = 128;   // "name value" counters kept
inline constexpr unsigned kStatNameLen = 40;  // with the NUL
inline constexpr unsigned kPolicyLen = 96;

struct FileHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_size;  // sizeof(FileHeader)
  std::uint64_t file_size;
  std::uint64_t snap_off[2];  // the two copies
  std::uint64_t snap_size;
  std::int32_t pid;
  std::uint32_t uid;         // effective uid of the publisher
  std::uint64_t start_time;  // /proc/<pid>/stat field 22 (clock ticks), 0 if unknown
  std::uint64_t created_real_ns;
  std::uint32_t nr_nodes;
  std::uint32_t nr_cpus;  // per-CPU page list entries per node (0: pcp=0)
  std::uint32_t nr_classes;
  std::uint32_t nr_orders;
  std::uint32_t vmstat_max;
  std::uint32_t publish_ms;
  char comm[16];
  char cmdline[256];  // argv joined by spaces, truncated
  // Publisher-owned: snapshots published so far (atomic, see above).
  alignas(64) std::uint64_t seq;
  std::uint64_t exiting;  // set before the file is removed at exit
  // Reader-owned: a reader adds 1 to ask for a fresh snapshot; the target
  // serves it at its next slow path (at most every 10 ms).
  alignas(64) std::uint64_t request;
  std::uint64_t pad[7];
};
static_assert(sizeof(FileHeader) % 64 == 0);

struct SnapHeader {
  std::uint64_t seq;         // the publish this copy holds
  std::uint64_t mono_ns;     // CLOCK_MONOTONIC when it was taken
  std::uint64_t real_ns;     // CLOCK_REALTIME
  std::uint64_t checksum;    // snap_checksum of the copy with this field 0
  std::uint64_t collect_ns;  // how long collecting took
  std::uint32_t nr_vmstat;
  std::uint32_t flags;  // kSnapSlubReady, kSnapRseq
  std::uint64_t vmalloc_count;
  std::uint64_t vmalloc_bytes;
  std::uint64_t requests_served;
  char policy[kPolicyLen];  // MemPolicy::describe
  std::uint64_t reserved[4];
};
inline constexpr std::uint32_t kSnapSlubReady = 1;  // the caches exist (else slabinfo is empty)
inline constexpr std::uint32_t kSnapRseq = 2;       // per-CPU sheaves (else per-thread)

// One node's zone, as zoneinfo and buddyinfo print it.
struct ZoneSnap {
  std::uint64_t nr_free[kOrders];   // blocks per order (buddyinfo)
  std::uint64_t nr_clean[kOrders];  // of those, clean blocks
  std::uint64_t alloc[kOrders];     // blocks handed out per order
  std::uint64_t freed[kOrders];     // blocks given back per order
  std::uint64_t free_pages, clean_pages, lazy_pages, isolated_pages;
  std::uint64_t present_pages, spanned_pages;
  std::uint64_t wmark_min, wmark_low, wmark_high;
  std::uint64_t splits, merges, grow, grow_fail, released;
  std::uint64_t numa_hit, numa_miss, numa_fail, remote_free;
  std::uint64_t sections_online, start_pfn;
  std::uint64_t pcp_pages;  // the sum of this node's PcpSnap::count
  std::uint32_t phys_node;
  std::uint32_t allowed;         // the memory policy lets the heap use it
  std::uint32_t kswapd_running;  // its reclaim thread exists
  std::uint32_t pad;
};

// One CPU's page lists for one node.
struct PcpSnap {
  std::uint32_t count;  // pages held
  std::uint32_t high;
  std::uint32_t batch;
  std::uint32_t pad;
  std::uint64_t hits;
};

// Per-node parts of a cache.
struct CacheNodeSnap {
  std::uint64_t inuse;  // objects not on a slab freelist (active_objs)
  std::uint64_t slabs;
  std::uint64_t partial;
  std::uint64_t full_sheaves;  // in the node's barn
  std::uint64_t remote_frees;
  std::uint64_t slabs_allocated;
  std::uint64_t slabs_freed;
};

// sum += part, field by field: the publisher's totals and the reader's
// check of them are the same sum.
inline void add_part(CacheNodeSnap& sum, const CacheNodeSnap& part) {
  sum.inuse += part.inuse;
  sum.slabs += part.slabs;
  sum.partial += part.partial;
  sum.full_sheaves += part.full_sheaves;
  sum.remote_frees += part.remote_frees;
  sum.slabs_allocated += part.slabs_allocated;
  sum.slabs_freed += part.slabs_freed;
}

// One kmalloc cache: constants, counters, and the totals over its nodes
// (the sums of its CacheNodeSnap parts, as the publisher wrote them).
struct CacheSnap {
  char name[24];
  std::uint32_t size, objects, order, sheaf_capacity, barn_max_full, min_partial;
  std::uint64_t refills, flushes;
  CacheNodeSnap total;
};

struct StatSnap {
  char name[kStatNameLen];
  std::uint64_t value;
};

// Where each section of a snapshot copy starts, from the header's counts.
struct Layout {
  std::uint64_t zones, pcp, caches, cache_nodes, vmstat, size;
};

constexpr std::uint64_t align8(std::uint64_t n) {
  return (n + 7) & ~std::uint64_t{7};
}

constexpr Layout layout_of(std::uint32_t nodes, std::uint32_t cpus, std::uint32_t classes,
                           std::uint32_t vmstat_max) {
  Layout l{};
  l.zones = align8(sizeof(SnapHeader));
  l.pcp = l.zones + sizeof(ZoneSnap) * nodes;
  l.caches = l.pcp + sizeof(PcpSnap) * std::uint64_t{cpus} * nodes;
  l.cache_nodes = l.caches + sizeof(CacheSnap) * classes;
  l.vmstat = l.cache_nodes + sizeof(CacheNodeSnap) * std::uint64_t{classes} * nodes;
  l.size = align8(l.vmstat + sizeof(StatSnap) * vmstat_max);
  return l;
}

// The checksum of a snapshot copy (size bytes, a multiple of 8), taken as
// if its SnapHeader::checksum were 0.
inline std::uint64_t snap_checksum(const void* copy, std::uint64_t size) {
  const auto* w = static_cast<const std::uint64_t*>(copy);
  constexpr std::uint64_t kSkip = offsetof(SnapHeader, checksum) / 8;
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ size;
  for (std::uint64_t i = 0; i < size / 8; ++i) {
    std::uint64_t v = i == kSkip ? 0 : w[i];
    h = (h ^ v) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  return h;
}

// A snapshot as a reader holds it: a private copy and where its parts are.
struct Snapshot {
  const FileHeader* file = nullptr;  // the header (a private copy too)
  const SnapHeader* head = nullptr;
  const ZoneSnap* zones = nullptr;       // [nr_nodes]
  const PcpSnap* pcp = nullptr;          // [cpu * nr_nodes + node]
  const CacheSnap* caches = nullptr;     // [nr_classes]
  const CacheNodeSnap* nodes = nullptr;  // [class * nr_nodes + node]
  const StatSnap* vmstat = nullptr;      // [head->nr_vmstat]
  std::uint64_t age_ns = 0;              // how old it was when read
  const PcpSnap& pcp_of(unsigned cpu, unsigned node) const {
    return pcp[cpu * file->nr_nodes + node];
  }
  const CacheNodeSnap& node_of(unsigned cls, unsigned node) const {
    return nodes[cls * file->nr_nodes + node];
  }
  // The vmstat counter `name`, or `def` when it is not there.
  std::uint64_t stat(const char* name, std::uint64_t def = 0) const;
};

}  // namespace numaslub::pub
