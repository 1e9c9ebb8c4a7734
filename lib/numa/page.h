// Page descriptors: one 64-byte struct per 4 KiB page, kept out of band in an
// array beside the heap (SPARSEMEM_VMEMMAP's mem_map). The array is reserved
// with the heap and committed one section at a time together with the pages
// it describes, so `address -> descriptor` is a subtraction and a shift.
//
// The numa layer owns the array; the layers above own the fields:
// - buddy: PG_buddy/PG_clean/PG_lazy/PG_pcp/PG_isolated, order and lru while
//   a block is free, priv[1] (the time it was freed, for reclaim's decay) and
//   priv[2] (who isolated it);
// - slub (and large allocations): PG_head/PG_tail/PG_slab/PG_large/PG_sampled, head_off,
//   slab_class (on every page of a slab, so free() learns the size class
//   from any object's page with one load), and the priv[] words, which
//   struct Slab overlays (as the kernel's struct slab overlays struct page).
// Only the head page of a block carries block state. Tails of a slab carry
// PG_tail and head_off, so any object's page finds its slab in O(1). A large
// block (PG_large) marks its head page only: writing a descriptor per page
// would cost a 4 MiB block 64 KiB of descriptor stores. Its interior
// pointers are found by walking back from the page to the head, at most
// kMaxBlockPages descriptors (kmalloc.cpp's report_bad_large_free, the one
// path that needs it: a free must name the block). Tails of free blocks
// carry nothing.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"

namespace numaslub {

inline constexpr unsigned kPageShift = 12;
inline constexpr std::size_t kPageSize = std::size_t{1} << kPageShift;
inline constexpr unsigned kMaxOrder = 10;  // largest buddy block: 4 MiB
inline constexpr unsigned kNrOrders = kMaxOrder + 1;
inline constexpr std::size_t kMaxBlockPages = std::size_t{1} << kMaxOrder;
inline constexpr std::size_t kMaxBlockSize = kMaxBlockPages * kPageSize;

enum PageFlag : std::uint32_t {
  PG_buddy = 1u << 0,  // head of a free block on a free_area list
  PG_clean = 1u << 1,  // every page of the block reads as zero (fresh or released)
  PG_pcp = 1u << 2,    // head of a block on a per-CPU page list
  PG_head = 1u << 3,   // head of an allocated compound block
  PG_tail = 1u << 4,   // tail page of a slab; head_off is valid
  PG_slab = 1u << 5,   // head of a slab; the slab overlay is valid
  PG_large = 1u << 6,  // head of a whole-block (large) allocation
  PG_lazy = 1u << 7,   // free block released with MADV_FREE: not charged, contents undefined
  PG_isolated =
      1u << 8,           // free block taken off the lists by reclaim; priv[2]: the isolating thread
  PG_sampled = 1u << 9,  // head of a large block the heap profiler sampled; priv[3]: its record
};

struct alignas(64) Page {
  ListNode lru;             // free_area / per-CPU / partial list link
  std::uint32_t flags;      // PageFlag bits
  std::uint8_t order;       // block order, valid on heads
  std::uint8_t slab_class;  // slab class + 1 on every page of a slab, else 0
  std::uint16_t sheaf_off;  // with slab_class: the class's sheaf-slot offset (free's fast path)
  std::uint32_t head_off;   // on tails: pages back to the head
  std::uint32_t reserved32;
  std::uint64_t priv[4];  // owner-layer overlay (struct Slab, free stamps)
};
static_assert(sizeof(Page) == 64, "page descriptors are one cache line");

inline constexpr std::size_t kPriv0Offset = offsetof(Page, priv);

}  // namespace numaslub
