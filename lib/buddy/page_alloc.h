// The page allocator: every node's zone, the per-CPU page lists in front of
// them, and the node fallback order (the kernel's zonelist).
//
// alloc_pages(nid, order) looks, in order: the calling CPU's list for that
// node's zone (orders 0..3), the zone's buddy lists, a new section onlined
// into the zone, then the other nodes by distance (unless kGfpThisNode), and
// finally drains every CPU's lists and tries once more (the kernel's
// drain_all_pages on the way to direct reclaim). Only then does it fail.
//
// The memory policy (Arena::policy(), numa= or the process's own) shapes
// both ends: the zonelists hold only the nodes it allows (bind), so a node
// outside them is served by the nearest allowed one, and topo() is the
// machine seen through the policy: each CPU belongs to its home node (under
// bind and preferred the nearest listed node), which is where kNumaNoNode
// allocations, and the slab layer's per-CPU caches, take their memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/buddy/pcp.h"
#include "lib/buddy/zone.h"
#include "lib/numa/numa.h"

namespace numaslub {

enum Gfp : unsigned {
  kGfpZero = 1u << 0,      // the block must read as zero
  kGfpThisNode = 1u << 1,  // no fallback to other nodes
  // The caller may touch few of the block's pages (a large block, a slab
  // of objects bigger than a page): Placement::kSparse, kept out of huge
  // ranges where it can be.
  kGfpSparse = 1u << 2,
};

inline constexpr int kNumaNoNode = -1;

// thp= (config.h's kThpChoices): when a section is advised to be backed by
// huge pages (MADV_HUGEPAGE) as it comes online, before any page of it is
// touched (advice given later only helps through khugepaged's slow
// collapsing; faults in an advised range map 2 MiB at once):
// - auto: once the node's zone is dense (Zone::dense(): thp_dense % of its
//   onlined pages known to be touched, account_touched) when it grows. A
//   node's first section never is: a small program keeps the RSS of base
//   pages, where a huge page mostly empty would cost up to 2 MiB per
//   touched range. Pages merely allocated do not count: a program that
//   writes two words of each 60 KiB block (alloc-test) would have every
//   page of its heap resident, and the kernel may stall each fault on
//   compaction for the 2 MiB page. A heap of small objects that fills its
//   sections before growing gets huge pages from its second section on.
// - always: every section.
// - never: no advice, no per-range words, nothing of zone.h's huge-page
//   bookkeeping: the heap behaves as without this option.
enum class ThpMode : std::uint8_t { kAuto, kAlways, kNever };
static_assert(choice_index(kThpChoices, "auto") == int(ThpMode::kAuto) &&
              choice_index(kThpChoices, "always") == int(ThpMode::kAlways) &&
              choice_index(kThpChoices, "never") == int(ThpMode::kNever));

struct NodeStats {
  StatCounter alloc_local;     // served by the requested node
  StatCounter alloc_fallback;  // served by another node (the kernel's numa_miss)
  StatCounter alloc_fail;      // no node could serve
  // Blocks of this node freed by a CPU whose home is another node.
  std::atomic<std::uint64_t> remote_free{0};
};

class PageAllocator {
 public:
  // Builds zones over a reserved arena for topo's nodes. Returns 0 or errno.
  int init(const Config& cfg, const Topology& topo, const OsMem& os);

  // Returns the head page of a 2^order block, or nullptr (out of memory).
  // nid == kNumaNoNode means the calling CPU's node. The head's PG_clean
  // tells whether the block reads as zero (always, with kGfpZero).
  Page* alloc_pages(int nid, unsigned order, unsigned gfp = 0);
  // use_pcp = false sends a small block straight to the zone: pieces of a
  // larger block (a large allocation's trimmed tail or its release) should
  // merge back at once rather than wait on a per-CPU list.
  void free_pages(Page* page, unsigned order, bool use_pcp = true);
  // The owner of allocated block `block` says it has written `pages` of its
  // pages (negative: gives that back before freeing it): Zone::touched_pages,
  // which thp=auto weighs.
  void account_touched(const Page* block, std::ptrdiff_t pages) {
    zones_[page_to_nid(block)].touched_pages.fetch_add(static_cast<std::size_t>(pages),
                                                       std::memory_order_relaxed);
  }

  // The kernel's alloc_pages_exact: a run of exactly `pages` pages (any
  // count up to kMaxBlockPages), aligned to 2^min_order pages. A run of a
  // class's page count (pcp.h, run_round_pages) is taken from the calling
  // CPU's run list when one is there (not with kGfpZero, nor min_order >
  // 0); otherwise, when no resident block of its order is free, it is
  // fitted over adjacent free blocks, resident ones mostly, starting at any
  // page (Zone::fit_run_locked; runs of kFitMinPages or more, not kGfpZero
  // nor min_order > 0); otherwise it is cut from a buddy block of the
  // smallest order that holds it, its tail freed under the same zone lock.
  // Returns the head.
  Page* alloc_pages_exact(int nid, std::size_t pages, unsigned min_order = 0, unsigned gfp = 0);
  // Below it, alloc_pages_exact rounds up to a block: the pieces are pages
  // the per-CPU lists keep anyway.
  static constexpr std::size_t kFitMinPages = kRunMinPages;
  static_assert(kFitMinPages <= kRunMinPages, "a run request is also fitted (alloc_pages_exact)");
  // Frees a run from alloc_pages_exact (or what is left of one: realloc
  // trims and grows them): onto the calling CPU's run list when its page
  // count is a class's, else to the zone as aligned blocks, under one zone
  // lock. The head's descriptor must carry no buddy flag (the caller has
  // cleared its own marks).
  void free_pages_exact(Page* page, std::size_t pages);

  // The node an allocation for nid (kNumaNoNode: the calling CPU's) is
  // served from first: nid itself where the policy allows it, else the
  // nearest allowed node; and past it, while `skip_full`, nodes whose
  // reservation is used up with nothing free (a hint: not locked against
  // concurrent frees).
  unsigned policy_node(int nid, bool skip_full = false);
  // Gives a direct mapping [addr, addr+len) the policy of node nid's memory
  // (kNumaNoNode: the calling CPU's home), trying the allowed nodes by
  // distance when a strict binding is refused. Returns 0 or that errno.
  int bind_mapping(void* addr, std::size_t len, int nid);

  void* alloc_block(int nid, unsigned order, unsigned gfp = 0) {
    Page* p = alloc_pages(nid, order, gfp);
    return p ? arena_.page_to_virt(p) : nullptr;
  }

  // Returns every per-CPU list's blocks to their zones; pages moved.
  std::size_t drain_all_pcp();
  // Drains the per-CPU lists and releases up to max_pages free resident
  // pages of every zone to the OS. Returns pages released.
  std::size_t release_free(std::size_t max_pages = ~std::size_t{0});

  Page* virt_to_page(const void* p) const { return arena_.virt_to_page(p); }
  void* page_address(const Page* p) const { return arena_.page_to_virt(p); }
  unsigned page_to_nid(const Page* p) const { return arena_.nid_of_pfn(arena_.page_to_pfn(p)); }
  bool owns(const void* p) const { return arena_.is_online(p); }

  unsigned nr_nodes() const { return arena_.nr_nodes(); }
  unsigned nr_cpus() const { return nr_cpus_; }
  Zone& zone(unsigned nid) { return zones_[nid]; }
  const Zone& zone(unsigned nid) const { return zones_[nid]; }
  Arena& arena() { return arena_; }
  const Arena& arena() const { return arena_; }
  const Topology& topo() const { return *topo_; }
  PerCpuPages* pcp(unsigned cpu, unsigned nid) const {
    return pcp_ ? &pcp_[cpu * arena_.nr_nodes() + nid] : nullptr;
  }
  NodeStats& node_stats(unsigned nid) { return node_stats_[nid]; }
  ThpMode thp() const { return thp_; }
  int local_node() const;

  // In a fork child, before anything allocates (`self`: the forking
  // thread's id in the parent). Frees the locks that threads which did not
  // survive the fork held and repairs what they guarded: a per-CPU list
  // they held is emptied (its blocks stay allocated: a leak, never a double
  // allocation), zones are repaired (Zone::fork_child_repair), a hotplug
  // lock needs nothing (a section is published last).
  void fork_child_repair(std::uint32_t self);

  // Text views in the kernel's layouts; write into buf (always terminated)
  // and return the length. buddyinfo: "Node N, zone   Normal  n0 .. n10".
  std::size_t buddyinfo(char* buf, std::size_t cap);
  std::size_t zoneinfo(char* buf, std::size_t cap);

 private:
  static bool grow_zone(void* self, Zone* zone, bool huge_ok);
  // Releases up to the zone's release_debt of its coldest resident free
  // blocks (not those that would split a huge range), isolated under the
  // lock and madvised without it, as reclaim does; the debt is cleared.
  void pay_release_debt(Zone& z);
  Page* alloc_from(unsigned nid, int cpu, unsigned order, unsigned gfp);
  // alloc_pages without pay_release_debt (alloc_pages_exact pays once it
  // has given back the tail it does not use).
  Page* alloc_pages_unpaid(int nid, unsigned order, unsigned gfp);
  int this_cpu() const;

  Arena arena_;
  const Topology* topo_ = nullptr;
  Zone* zones_ = nullptr;
  PerCpuPages* pcp_ = nullptr;  // [cpu][node]
  NodeStats* node_stats_ = nullptr;
  std::uint16_t* zonelists_ = nullptr;  // [node][nr_nodes], first zonelist_len_ used
  unsigned zonelist_len_ = 0;           // nodes the policy allows
  unsigned nr_cpus_ = 0;
  ThpMode thp_ = ThpMode::kNever;  // kNever also where the OsMem cannot advise
};

// The process-wide page allocator over the process topology and config(),
// initialized on first use; nullptr if no heap could be reserved.
PageAllocator* page_allocator();
// The process-wide page allocator if it is set up already, else null.
PageAllocator* page_allocator_if_ready();
// Tests: the process-wide page allocator reaches the OS through `os` (kept
// by reference) instead of os_mem_linux(), so that the layers above can be
// shown an injected failure of section onlining or of a reservation. Call
// before anything allocates.
void page_allocator_set_os_for_test(const OsMem& os);
// In a fork child: page_allocator_if_ready()->fork_child_repair(self), and
// the set-up lock.
void page_allocator_fork_child(std::uint32_t self);

}  // namespace numaslub
