#include "lib/numa/arena.h"

#include <new>

#include "lib/base/base.h"

namespace numaslub {

namespace {

constexpr int kRlimitAs = 9;  // RLIMIT_AS
constexpr int kENOSPC = 28, kEINVAL = 22, kENOMEM = 12, kEEXIST = 17;

void unreserve(const OsMem& os, void* p, std::size_t len) {
  if (os.unreserve) os.unreserve(p, len);
}

// Where the heap (size bytes, aligned to align) is asked for: at a random
// multiple of align in [4 TiB, 36 TiB) (21 bits of randomness with 16 MiB
// sections, as many as the kernel gives the mmap base). Above the brk heap
// of a non-PIE program and ASan's shadow, far below the mmap area that fills
// top down from under the stack and PIE executables (at 85 TiB and above).
// Reserved there, the range the heap grows into in steps has nothing mapped
// above it for terabytes, so the program's later mmaps never land in it, as
// they would in a gap the kernel had picked (it fills the highest gap first).
// A kernel with fewer address bits, or a sanitizer's shadow there, just makes
// the hint miss: then the kernel picks. 0 (no hint) for a heap over 16 TiB.
std::uintptr_t heap_hint(std::size_t size, std::size_t align) {
  constexpr std::uintptr_t kLow = std::uintptr_t{4} << 40, kSpan = std::uintptr_t{32} << 40;
  if (size > kSpan / 2 || align == 0) return 0;
  std::uintptr_t slots = (kSpan - size) / align;
  return kLow + static_cast<std::uintptr_t>(sys::random_u64() % slots) * align;
}

// Address space this process may still map under RLIMIT_AS, or ~0.
std::uint64_t address_space_left() {
  sys::Rlimit lim{};
  if (sys::getrlimit(kRlimitAs, &lim) != 0 || lim.cur == ~0ULL) return ~0ULL;
  char buf[4096];
  std::uint64_t vm_kb = 0;
  if (read_text_file("/proc/self/status", buf, sizeof buf) > 0)
    find_kb_field(buf, "VmSize", &vm_kb);
  std::uint64_t used = vm_kb << 10;
  return lim.cur > used ? lim.cur - used : 0;
}

// The heap's share of the address space RLIMIT_AS leaves: the rest is for
// the program's own mappings, thread stacks and the heap's direct mappings
// (blocks over 4 MiB).
constexpr std::uint64_t kBudgetNum = 3, kBudgetDen = 4;

struct Sizing {
  std::size_t per_node = 0;  // bytes reserved per node (0: not even a section fits)
  std::size_t section = 0;
};

// Under RLIMIT_AS (glibc's malloc works with a few MiB; so must we):
// - the heap takes 3/4 of what is left, less the descriptors (1/64) and the
//   alignment slack of its reservation;
// - sections shrink (down to the 4 MiB buddy block) so that a small budget
//   still holds several, and the slack stays small;
// - one node's range is any multiple of a section, not a power of two (its
//   node_shift is rounded up; nothing past `pages` is reserved). Several
//   nodes keep power-of-two ranges, so no address space is reserved between
//   them.
Sizing arena_sizing(const Config& cfg, unsigned nr_nodes) {
  Sizing z;
  std::uint64_t s = cfg.section_size < kMaxBlockSize ? kMaxBlockSize : cfg.section_size;
  std::size_t section = static_cast<std::size_t>(pow2_floor(s));
  std::uint64_t want = cfg.arena_size < section ? section : cfg.arena_size;
  std::uint64_t left = address_space_left();
  if (left != ~0ULL) {
    std::uint64_t budget = left / kBudgetDen * kBudgetNum;
    while (section > kMaxBlockSize && section * 16 > budget) section >>= 1;
    // The heap's reservation needs a section of alignment slack while it is
    // made (it is trimmed right after); the descriptors' needs none.
    std::uint64_t slack = section + kPageSize;
    std::uint64_t per_node = budget > slack ? (budget - slack) / nr_nodes : 0;
    per_node = per_node / 65 * 64;  // divide first: per_node * 64 can wrap
    if (per_node < want) want = per_node;
  }
  z.section = section;
  if (want < section) return z;
  z.per_node = static_cast<std::size_t>(nr_nodes > 1 || left == ~0ULL ? pow2_floor(want)
                                                                      : align_down(want, section));
  return z;
}

}  // namespace

std::size_t arena_node_size(const Config& cfg, unsigned nr_nodes) {
  return arena_sizing(cfg, nr_nodes).per_node;
}

std::size_t arena_section_size(const Config& cfg, unsigned nr_nodes) {
  return arena_sizing(cfg, nr_nodes).section;
}

int Arena::init(const Topology& topo, const Config& cfg, const OsMem& os) {
  os_ = &os;
  nr_nodes_ = topo.nr_nodes ? topo.nr_nodes : 1;
  policy_.resolve(topo, cfg);
  Sizing z = arena_sizing(cfg, nr_nodes_);
  std::size_t section = z.section, per_node = z.per_node;
  if (per_node == 0) return kENOMEM;
  section_pages_ = section >> kPageShift;

  // The estimate can be wrong (no /proc to read VmSize from, other threads
  // mapping at the same time): when the kernel refuses, reserve half as
  // much, down to one section, rather than fail.
  void *heap = nullptr, *map = nullptr;
  std::size_t map_bytes = 0;
  std::size_t size = 0;
  bool hinted = false;
  for (;;) {
    node_shift_ = ilog2_ceil(per_node >> kPageShift);
    size = ((std::size_t{nr_nodes_} - 1) << (node_shift_ + kPageShift)) + per_node;
    map_bytes = (size >> kPageShift) * sizeof(Page);
    // The hint leaves room for mem_map right above the heap.
    void* hint = reinterpret_cast<void*>(heap_hint(size + map_bytes, section));
    heap = hint;
    int e = os.reserve(size, section, &heap);
    hinted = heap == hint && hint;
    if (!e) {
      // Right above the heap's range, so that it too can grow in place.
      map = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(heap) + size);
      e = os.reserve(map_bytes, kPageSize, &map);
      if (e) unreserve(os, heap, size);
    }
    if (!e) break;
    if (e != kENOMEM || per_node <= section) return e;
    per_node = nr_nodes_ > 1 ? per_node / 2 : align_down(per_node / 2, section);
    if (per_node < section) per_node = section;
  }
  base_ = reinterpret_cast<std::uintptr_t>(heap);
  mem_map_ = static_cast<Page*>(map);
  window_ = size;
  nodes_ = static_cast<NodeRange*>(boot_alloc(sizeof(NodeRange) * nr_nodes_));
  if (!nodes_) {
    unreserve(os, heap, size);
    unreserve(os, map, map_bytes);
    return kENOMEM;
  }
  // In steps: each node keeps its first section, the rest of its range (and
  // of its descriptors) is given back, to be extended in place.
  // Several nodes only where the hint was taken: their gaps lie inside the
  // fast paths' bound, and where the kernel picked the place (a sanitizer's
  // shadow, fewer address bits) its next mmaps, our own direct mappings
  // included, would land in them and be taken for heap.
  bool steps = cfg.reserve_steps && os.extend && os.unreserve && (nr_nodes_ == 1 || hinted);
  in_steps_ = steps;
  for (unsigned n = 0; n < nr_nodes_; ++n) {
    NodeRange* r = new (&nodes_[n]) NodeRange();
    r->pfn_start = std::size_t{n} << node_shift_;
    r->pages = per_node >> kPageShift;
    r->base = base_ + (r->pfn_start << kPageShift);
    r->phys_node = topo.phys_node[n];
    r->reserved = per_node;
    std::size_t initial = kInitialSections * section;
    if (steps && per_node > initial) {
      Extent x = extent(*r, initial, per_node);
      os.unreserve(x.heap, x.heap_len);
      os.unreserve(x.map, x.map_len);
      r->reserved = initial;
    }
  }
  // One node: size() is what is reserved, and grows. Several: the whole
  // window, so that the fast paths' one bound covers every node (their gaps
  // are address space nobody maps unasked: see arena.h).
  size_.store(nr_nodes_ == 1 ? nodes_[0].reserved : size, std::memory_order_release);
  if (cfg.verbose)
    log_msg("arena: %u node(s) x %zu MiB at %p, sections of %zu MiB, descriptors at %p", nr_nodes_,
            per_node >> 20, heap, section >> 20, map);
  return 0;
}

int Arena::online_section(unsigned nid, std::size_t* first_pfn, std::size_t* npages) {
  if (nid >= nr_nodes_) return kEINVAL;
  NodeRange& n = nodes_[nid];
  LockGuard<Mutex> g(n.hotplug_lock);
  std::size_t off = n.online_pages.load(std::memory_order_relaxed);
  if (off + section_pages_ > n.pages) return kENOSPC;
  std::size_t pfn = n.pfn_start + off;
  std::size_t end = (off + section_pages_) << kPageShift;
  if (end > n.reserved) {
    if (int e = extend_locked(n, end)) {
      ++n.online_failures;
      n.last_error = e;
      return e;
    }
  }
  Page* desc = mem_map_ + pfn;
  std::size_t desc_bytes = section_pages_ * sizeof(Page);
  int e = os_->commit(desc, desc_bytes);
  if (!e) {
    e = os_->commit(pfn_to_virt(pfn), section_pages_ << kPageShift);
    if (e) os_->decommit(desc, desc_bytes);
  }
  if (e) {
    ++n.online_failures;
    n.last_error = e;
    return e;
  }
  e = apply_policy(pfn_to_virt(pfn), section_pages_ << kPageShift, nid);
  if (e) {
    os_->decommit(pfn_to_virt(pfn), section_pages_ << kPageShift);
    os_->decommit(desc, desc_bytes);
    ++n.online_failures;
    n.last_error = e;
    return e;
  }
  ++n.sections_online;
  n.online_pages.store(off + section_pages_, std::memory_order_release);
  *first_pfn = pfn;
  *npages = section_pages_;
  return 0;
}

void Arena::publish_reserved(const NodeRange& n) {
  if (nr_nodes_ != 1 || n.reserved <= size_.load(std::memory_order_relaxed)) return;
  size_.store(n.reserved, std::memory_order_release);
  if (grow_hook_) grow_hook_(n.reserved);
}

Arena::Extent Arena::extent(const NodeRange& n, std::size_t from, std::size_t to) const {
  return {reinterpret_cast<void*>(n.base + from), to - from,
          mem_map_ + n.pfn_start + (from >> kPageShift),
          ((to - from) >> kPageShift) * sizeof(Page)};
}

void Arena::fork_child_repair(unsigned nid) {
  NodeRange& n = nodes_[nid];
  std::size_t to = n.extending_to;
  if (to > n.reserved && os_->probe_mapped) {
    Extent x = extent(n, n.reserved, to);
    // The heap part is extended first: the map part mapped means both are.
    bool heap_done = os_->probe_mapped(x.heap, x.heap_len);
    bool map_done = heap_done && os_->probe_mapped(x.map, x.map_len);
    if (map_done) {
      n.reserved = to;
    } else if (heap_done && os_->unreserve) {
      os_->unreserve(x.heap, x.heap_len);
    }
  }
  n.extending_to = 0;
  publish_reserved(n);
}

int Arena::extend_locked(NodeRange& n, std::size_t need) {
  std::size_t have = n.reserved, window = n.pages << kPageShift;
  if (need > window || !os_->extend) return kENOSPC;
  // Double (fewer mmaps, VmSize at most about twice the heap); if that much
  // cannot be had (RLIMIT_AS, another mapping in the way), just what is needed.
  std::size_t want = have * 2 > need ? have * 2 : need;
  if (want > window) want = window;
  int e = 0;
  for (std::size_t to : {want, need}) {
    Extent x = extent(n, have, to);
    // In flight from here until `reserved` says so (a fork child reads it).
    n.extending_to = to;
    signal_fence();
    e = os_->extend(x.heap, x.heap_len);
    if (!e) {
      e = os_->extend(x.map, x.map_len);
      if (!e) {
        n.reserved = to;
        publish_reserved(n);
        signal_fence();
        n.extending_to = 0;
        return 0;
      }
      if (os_->unreserve) os_->unreserve(x.heap, x.heap_len);
    }
    signal_fence();
    n.extending_to = 0;
    if (to == need) break;
  }
  // Whatever stands in the way (EEXIST), the heap cannot grow: out of memory.
  return e == kENOSPC || e == kEEXIST ? kENOMEM : e;
}

int Arena::apply_policy(void* addr, std::size_t len, unsigned nid) const {
  if (!policy_.os_policy || nid >= nr_nodes_) return 0;
  constexpr int kMpolBind = 2, kMpolInterleave = 3;
  constexpr unsigned kBits = MemPolicy::kMaskBits, kWord = MemPolicy::kWordBits;
  const unsigned phys = nodes_[nid].phys_node;
  int e;
  if (policy_.mode == NumaMode::kInterleave && os_->set_policy) {
    e = os_->set_policy(addr, len, kMpolInterleave, policy_.interleave_mask, kBits);
  } else if (policy_.mode == NumaMode::kBind && os_->set_policy && phys < kBits) {
    unsigned long mask[kBits / kWord] = {};
    mask[phys / kWord] = 1UL << (phys % kWord);
    e = os_->set_policy(addr, len, kMpolBind, mask, kBits);
  } else {
    e = os_->bind(addr, len, phys);  // MPOL_PREFERRED
  }
  // Only a refused strict binding is an error; ENOSYS / EPERM mean the
  // kernel cannot place memory at all, and the memory is usable anyway.
  constexpr int kENOSYS = 38, kEPERM = 1;
  if (policy_.mode != NumaMode::kBind || e == kENOSYS || e == kEPERM) return 0;
  return e;
}

}  // namespace numaslub
