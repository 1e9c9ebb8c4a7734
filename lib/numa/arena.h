// Node arenas: the heap's address space, one power-of-two range per node,
// reserved inaccessible at start-up and onlined a section at a time (the
// kernel's memory hotplug), plus the page descriptor array beside it.
//
// Layout (one reservation each, both aligned to a section):
//   heap:    [ node 0 range | node 1 range | ... ]   each 2^node_shift pages
//   mem_map: [ Page for every heap page, same order ]
// so for a heap address a: pfn = (a - heap_base) >> 12, node = pfn >> node_shift,
// descriptor = mem_map + pfn. No lock, no search.
//
// Invariants:
// - Each node onlines its range from the bottom up; online_pages only grows
//   and is published with release order after the section's descriptors and
//   pages are committed, so a reader that sees pfn < online_pages may touch
//   mem_map[pfn].
// - A section is a multiple of the largest buddy block (4 MiB) and aligned to
//   it, so a buddy block never straddles an online boundary.
// - Reservations are PROT_NONE and MAP_NORESERVE: they cost no commit charge
//   (strict overcommit works) and shrink to fit RLIMIT_AS (arena_node_size).
// - A node's range spans 2^node_shift pages but only its first `pages` are
//   reserved (pages < 2^node_shift only with one node under RLIMIT_AS, where
//   the range ends the reservation: size() stops at the last node's pages).
// - Reserved in steps (reserve_steps=1, the default, and an OsMem that can
//   `extend`): address space is taken in proportion to the heap, so VmSize
//   follows use and an RLIMIT_AS lowered at run time is respected when the
//   heap grows (the growing mmap is what the kernel refuses). The whole
//   window is reserved once to find its place, then every node gives back
//   all of its range (heap and descriptors) but the first kInitialSections;
//   onlining past a node's `reserved` bytes first extends both in place
//   (MAP_FIXED_NOREPLACE), doubling, up to the node's range. The window is
//   asked for far from the mmap area (heap_hint() in arena.cpp), so others'
//   later mappings do not land in it; one that does (a runtime that maps at
//   random hints, or a missed hint) stops its node's growth there: onlining
//   then fails with ENOMEM (reserve_steps=0 reserves everything at start-up,
//   as before). A fork may catch a thread growing a node: the child then
//   finds the extension done or not in the address space (fork and mmap
//   exclude each other) but not in `reserved`; fork_child_repair settles it
//   from `extending_to`.
// - size() (the fast paths' bound): with one node, what is reserved; it
//   only grows, is published with release order after both reservations
//   exist, and every address below it is ours, so "off < heap size" never
//   takes a foreign pointer for ours. With several nodes it is the whole
//   window, so that one bound covers every node's objects; a pointer into a
//   node's unreserved gap (only ever mapped there by someone asking for that
//   address) makes free read a descriptor that is not mapped: SIGSEGV. So
//   several nodes reserve in steps only where the window is at the hint:
//   where the kernel picked its place, its next mappings (our direct
//   mappings too) would fill the gaps.
// - A section is told the memory policy (policy()) before it is published:
//   preferred on its node (local, preferred), interleaved (interleave) or
//   bound to its node (bind), nothing when the process has a policy of its
//   own or mbind=0. Under bind a section the kernel refuses to bind is not
//   onlined (its pages could land anywhere): onlining fails and the page
//   allocator falls back to the next allowed node.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/numa/os_mem.h"
#include "lib/numa/page.h"
#include "lib/numa/topology.h"

namespace numaslub {

struct NodeRange {
  std::uintptr_t base = 0;       // first byte of the node's range
  std::size_t pfn_start = 0;     // heap-relative pfn of the first page
  std::size_t pages = 0;         // pages of the range (its window)
  std::size_t reserved = 0;      // bytes of the range reserved so far (hotplug_lock)
  std::size_t extending_to = 0;  // an extension in flight, else 0 (hotplug_lock)
  unsigned phys_node = 0;        // mbind target
  std::atomic<std::size_t> online_pages{0};
  Mutex hotplug_lock;  // serializes onlining of this node's sections
  std::uint64_t sections_online = 0;
  std::uint64_t online_failures = 0;
  int last_error = 0;
};

class Arena {
 public:
  // Reserves heap and descriptors for every node of topo and resolves the
  // memory policy (cfg's numa=, or the process's own). Returns 0 or an errno.
  int init(const Topology& topo, const Config& cfg, const OsMem& os);

  // Onlines the next section of node nid. On success returns 0 and the
  // section's heap-relative first pfn and page count; ENOSPC when the node's
  // reservation is used up; otherwise the OS's errno (commit refused, or
  // under bind the binding refused).
  int online_section(unsigned nid, std::size_t* first_pfn, std::size_t* npages);

  // Tells the OS the policy for [addr, addr+len) holding node nid's memory
  // (a section, or a direct mapping of the layers above). Returns 0, or
  // the errno of a binding the kernel refused under bind; elsewhere binding
  // is best effort (a kernel without NUMA answers ENOSYS, a sandbox EPERM).
  int apply_policy(void* addr, std::size_t len, unsigned nid) const;
  const MemPolicy& policy() const { return policy_; }

  bool contains(const void* p) const {
    return reinterpret_cast<std::uintptr_t>(p) - base_ < size_.load(std::memory_order_acquire);
  }
  // True when p lies in an onlined section (its descriptor may be read).
  bool is_online(const void* p) const {
    if (!contains(p)) return false;
    std::size_t pfn = virt_to_pfn(p);
    const NodeRange& n = nodes_[nid_of_pfn(pfn)];
    return pfn - n.pfn_start < n.online_pages.load(std::memory_order_acquire);
  }

  std::size_t virt_to_pfn(const void* p) const {
    return (reinterpret_cast<std::uintptr_t>(p) - base_) >> kPageShift;
  }
  void* pfn_to_virt(std::size_t pfn) const {
    return reinterpret_cast<void*>(base_ + (pfn << kPageShift));
  }
  Page* pfn_to_page(std::size_t pfn) const { return mem_map_ + pfn; }
  std::size_t page_to_pfn(const Page* p) const { return static_cast<std::size_t>(p - mem_map_); }
  Page* virt_to_page(const void* p) const { return mem_map_ + virt_to_pfn(p); }
  void* page_to_virt(const Page* p) const { return pfn_to_virt(page_to_pfn(p)); }
  unsigned nid_of_pfn(std::size_t pfn) const { return static_cast<unsigned>(pfn >> node_shift_); }
  unsigned node_shift() const { return node_shift_; }  // log2(pages per node range)

  unsigned nr_nodes() const { return nr_nodes_; }
  NodeRange& node(unsigned nid) { return nodes_[nid]; }
  const NodeRange& node(unsigned nid) const { return nodes_[nid]; }
  std::size_t section_pages() const { return section_pages_; }
  std::uintptr_t base() const { return base_; }
  // Bytes of heap reserved (all nodes); grows when reserved in steps.
  std::size_t size() const { return size_.load(std::memory_order_acquire); }
  // Whether node ranges are reserved in steps (reserve_steps=1, and with
  // several nodes only where the heap's address hint was taken).
  bool in_steps() const { return in_steps_; }
  // Bytes the heap may grow to (the reserved size when not growing in steps).
  std::size_t window() const { return window_; }
  // Fork child, when a thread that did not survive the fork held node nid's
  // hotplug lock: an extension it had in flight is adopted if the kernel
  // made it (the whole range is mapped: madvise finds no hole), else undone;
  // with one node size() and the grow hook catch up with `reserved`.
  void fork_child_repair(unsigned nid);
  // Called (under the node's hotplug lock) with the new size() after the
  // reservation grew: the slub layer republishes its fast-path bound.
  void set_grow_hook(void (*fn)(std::size_t heap_bytes)) { grow_hook_ = fn; }
  Page* mem_map() const { return mem_map_; }
  const OsMem& os() const { return *os_; }

 private:
  // Reserves more of node n's range (heap and descriptors) so that its
  // first `need` bytes are reserved (n's hotplug lock held). Returns 0 or an
  // errno.
  int extend_locked(NodeRange& n, std::size_t need);
  // Bytes [from, to) of node n's range: its heap part and its descriptors.
  struct Extent {
    void* heap;
    std::size_t heap_len;
    void* map;
    std::size_t map_len;
  };
  Extent extent(const NodeRange& n, std::size_t from, std::size_t to) const;
  // With one node: size() (and the grow hook) catch up with n.reserved.
  void publish_reserved(const NodeRange& n);

  static constexpr std::size_t kInitialSections = 1;

  std::uintptr_t base_ = 0;
  std::atomic<std::size_t> size_{0};  // bytes of heap reserved (all nodes)
  std::size_t window_ = 0;            // bytes size_ may grow to
  bool in_steps_ = false;
  void (*grow_hook_)(std::size_t) = nullptr;
  Page* mem_map_ = nullptr;
  unsigned nr_nodes_ = 0;
  unsigned node_shift_ = 0;  // log2(pages per node)
  std::size_t section_pages_ = 0;
  const OsMem* os_ = nullptr;
  MemPolicy policy_;
  NodeRange* nodes_ = nullptr;
};

// Bytes of address space per node that fit under RLIMIT_AS (and the
// configured arena_size): a power of two (without a limit, or with several
// nodes) or a multiple of the section (one node under a limit), at least one
// section, or 0 when not even that fits. Exposed for tests.
std::size_t arena_node_size(const Config& cfg, unsigned nr_nodes);
// The section size the arena uses under the same conditions: cfg's, made
// smaller (down to 4 MiB) when RLIMIT_AS leaves little room.
std::size_t arena_section_size(const Config& cfg, unsigned nr_nodes);

}  // namespace numaslub
