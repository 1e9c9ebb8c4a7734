// Tests for huge pages (thp=, lib/buddy/zone.h's huge ranges): the options
// parse; with thp=always every section is advised (a recording OsMem) and,
// where the kernel has THP, really mapped huge (smaps AnonHugePages);
// thp=auto advises a node's sections once its heap is dense (pages its
// owners say they wrote, not pages merely allocated), never its first;
// thp=never advises nothing and keeps no range words; a refused
// MADV_HUGEPAGE is harmless; reclaim releases a free 2 MiB block in one
// call and keeps a dense huge range whole unless under pressure; allocation
// fills the fullest huge range first; sparse blocks (kGfpSparse: large
// blocks) stay out of huge ranges while anything else fits.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lib/buddy/page_alloc.h"
#include "lib/reclaim/kswapd.h"
#include "lib/slub/slab.h"

namespace numaslub {
namespace {

constexpr std::size_t MiB = 1024 * 1024;

struct Call {
  std::uintptr_t addr;
  std::size_t len;
};
// What the recording OsMem saw (tests run one at a time in this binary).
std::vector<Call> g_advised, g_released;
int g_advise_result = 0;

int rec_advise(void* addr, std::size_t len) {
  g_advised.push_back({reinterpret_cast<std::uintptr_t>(addr), len});
  if (g_advise_result) return g_advise_result;
  return os_mem_linux().advise_huge(addr, len);
}
int rec_release(void* addr, std::size_t len) {
  g_released.push_back({reinterpret_cast<std::uintptr_t>(addr), len});
  return os_mem_linux().release(addr, len);
}

const OsMem& recording_os() {
  static OsMem os = [] {
    OsMem o = os_mem_linux();
    o.advise_huge = rec_advise;
    o.release = rec_release;
    return o;
  }();
  return os;
}

// A page allocator on one node, without per-CPU lists (every block goes
// straight to the zone, so the tests see exact buddy state). Kept until
// exit: arenas are never unmapped.
struct Heap {
  Topology real, topo;
  PageAllocator pa;
};
std::vector<std::unique_ptr<Heap>> g_heaps;

PageAllocator* make_heap(const char* thp, const OsMem& os, std::uint32_t dense = 75) {
  g_advised.clear();
  g_released.clear();
  auto h = std::make_unique<Heap>();
  h->real.load_sysfs();
  h->topo.make_fake(h->real, 1);
  Config cfg;
  cfg.arena_size = 256 * MiB;
  cfg.section_size = 16 * MiB;
  cfg.pcp = false;
  cfg.thp_dense = dense;
  EXPECT_EQ(cfg.parse((std::string("thp=") + thp).c_str()), 0);
  if (h->pa.init(cfg, h->topo, os) != 0) return nullptr;
  g_heaps.push_back(std::move(h));
  return &g_heaps.back()->pa;
}

// Release calls that fall in the heap (not the descriptor array).
std::vector<Call> heap_releases(PageAllocator* pa) {
  std::vector<Call> v;
  for (const Call& c : g_released)
    if (pa->arena().contains(reinterpret_cast<void*>(c.addr))) v.push_back(c);
  return v;
}

std::size_t zpfn(PageAllocator* pa, Page* p) {
  return pa->zone(0).pfn(p);
}

TEST(ThpConfig, OptionParses) {
  Config c;
  EXPECT_EQ(c.thp, static_cast<std::uint8_t>(ThpMode::kAuto));  // the default
  EXPECT_EQ(c.thp_dense, 75u);
  EXPECT_EQ(c.parse("thp=always,thp_dense=90"), 0);
  EXPECT_EQ(c.thp, static_cast<std::uint8_t>(ThpMode::kAlways));
  EXPECT_EQ(c.thp_dense, 90u);
  EXPECT_EQ(c.parse("thp=never"), 0);
  EXPECT_EQ(c.thp, static_cast<std::uint8_t>(ThpMode::kNever));
  EXPECT_EQ(c.parse("thp=auto"), 0);
  EXPECT_EQ(c.thp, static_cast<std::uint8_t>(ThpMode::kAuto));
  EXPECT_EQ(c.parse("thp=sometimes", false), 1);
  EXPECT_EQ(c.thp, static_cast<std::uint8_t>(ThpMode::kAuto));  // unchanged
}

TEST(Thp, AlwaysAdvisesEachSectionBeforeUse) {
  PageAllocator* pa = make_heap("always", recording_os());
  ASSERT_NE(pa, nullptr);
  ASSERT_EQ(pa->thp(), ThpMode::kAlways);
  Page* p = pa->alloc_pages(0, 0);
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(g_advised.size(), 1u);
  const NodeRange& r = pa->arena().node(0);
  EXPECT_EQ(g_advised[0].addr, r.base);
  EXPECT_EQ(g_advised[0].len, 16 * MiB);
  Zone& z = pa->zone(0);
  EXPECT_TRUE(z.range_huge(0));
  EXPECT_TRUE(z.range_huge(pa->arena().section_pages() - 1));
  EXPECT_EQ(z.stats.thp_backed, 16 * MiB / (2 * MiB));
  EXPECT_EQ(z.stats.thp_advise_fail, 0u);
  pa->free_pages(p, 0);
}

TEST(Thp, NeverIssuesNoAdviceAndKeepsNoRangeWords) {
  PageAllocator* pa = make_heap("never", recording_os());
  ASSERT_NE(pa, nullptr);
  std::vector<Page*> blocks;
  // Three sections' worth: a heap that is dense by any measure.
  for (int i = 0; i < 12; ++i) blocks.push_back(pa->alloc_pages(0, kMaxOrder));
  for (Page* b : blocks) ASSERT_NE(b, nullptr);
  EXPECT_TRUE(g_advised.empty());
  EXPECT_FALSE(pa->zone(0).thp_enabled());
  EXPECT_FALSE(pa->zone(0).range_huge(0));
  EXPECT_EQ(pa->zone(0).stats.thp_backed, 0u);
  for (Page* b : blocks) pa->free_pages(b, kMaxOrder);
}

// The blocks' owner says it wrote all of them (as new_slab does for a slab
// of small objects): Zone::touched_pages.
Page* alloc_touched(PageAllocator* pa, unsigned order) {
  Page* p = pa->alloc_pages(0, order);
  if (p) pa->account_touched(p, std::ptrdiff_t{1} << order);
  return p;
}

TEST(Thp, AutoAdvisesOnlyOnceTheNodeIsDense) {
  PageAllocator* pa = make_heap("auto", recording_os());
  ASSERT_NE(pa, nullptr);
  const std::size_t per_section = pa->arena().section_pages() >> kMaxOrder;
  std::vector<Page*> blocks;
  blocks.push_back(alloc_touched(pa, kMaxOrder));
  EXPECT_TRUE(g_advised.empty()) << "a node's first section is never advised";
  // Fill the first section: the zone is then 100% touched when it grows.
  while (blocks.size() < per_section + 1) blocks.push_back(alloc_touched(pa, kMaxOrder));
  for (Page* b : blocks) ASSERT_NE(b, nullptr);
  ASSERT_EQ(g_advised.size(), 1u);
  EXPECT_EQ(g_advised[0].addr, pa->arena().node(0).base + 16 * MiB);
  EXPECT_FALSE(pa->zone(0).range_huge(0));
  EXPECT_TRUE(pa->zone(0).range_huge(pa->arena().section_pages()));
  while (blocks.size() < 2 * per_section) blocks.push_back(alloc_touched(pa, kMaxOrder));
  for (Page* b : blocks) ASSERT_NE(b, nullptr);
  // Keep one page of each 4 MiB block: the zone is then almost all free
  // but has no free 4 MiB block, so the next one grows it, sparse: no advice.
  for (Page* blk : blocks) {
    for (unsigned o = 0; o < kMaxOrder; ++o) pa->free_pages(blk + (std::size_t{1} << o), o);
    pa->account_touched(blk, 1 - (std::ptrdiff_t{1} << kMaxOrder));
  }
  EXPECT_FALSE(pa->zone(0).dense());
  Page* big = pa->alloc_pages(0, kMaxOrder);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(pa->arena().node(0).sections_online, 3u);
  EXPECT_EQ(g_advised.size(), 1u);
  EXPECT_FALSE(pa->zone(0).range_huge(2 * pa->arena().section_pages()));
  pa->free_pages(big, kMaxOrder);
  for (Page* blk : blocks) {
    pa->account_touched(blk, -1);
    pa->free_pages(blk, 0);
  }
  EXPECT_EQ(pa->zone(0).touched_pages.load(), 0u);
}

TEST(Thp, AutoIgnoresPagesAllocatedButNotTouched) {
  // A heap of blocks nobody said it wrote (large blocks: a program may
  // write two words of each, alloc-test's pattern) is full, not dense: a
  // huge page over it would make every page of it resident.
  PageAllocator* pa = make_heap("auto", recording_os());
  ASSERT_NE(pa, nullptr);
  const std::size_t per_section = pa->arena().section_pages() >> kMaxOrder;
  std::vector<Page*> blocks;
  while (blocks.size() < 2 * per_section + 1) blocks.push_back(pa->alloc_pages(0, kMaxOrder));
  for (Page* b : blocks) ASSERT_NE(b, nullptr);
  EXPECT_EQ(pa->arena().node(0).sections_online, 3u);
  EXPECT_TRUE(g_advised.empty());
  EXPECT_FALSE(pa->zone(0).dense());
  // Touched pages at thp_dense (75%) of the heap make it dense: the next
  // section is advised.
  const std::size_t present = pa->zone(0).present_pages;
  pa->account_touched(blocks[0], static_cast<std::ptrdiff_t>(present * 3 / 4 - 1));
  EXPECT_FALSE(pa->zone(0).dense());
  pa->account_touched(blocks[0], 1);
  EXPECT_TRUE(pa->zone(0).dense());
  while (blocks.size() < 3 * per_section + 1) blocks.push_back(pa->alloc_pages(0, kMaxOrder));
  for (Page* b : blocks) ASSERT_NE(b, nullptr);
  ASSERT_EQ(g_advised.size(), 1u);
  EXPECT_EQ(g_advised[0].addr, pa->arena().node(0).base + 48 * MiB);
  pa->account_touched(blocks[0], -static_cast<std::ptrdiff_t>(present * 3 / 4));
  for (Page* b : blocks) pa->free_pages(b, kMaxOrder);
}

TEST(Thp, RefusedAdviceIsHarmless) {
  g_advise_result = 22;  // EINVAL: a kernel without THP
  PageAllocator* pa = make_heap("always", recording_os());
  ASSERT_NE(pa, nullptr);
  Page* p = pa->alloc_pages(0, 3);
  g_advise_result = 0;
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(g_advised.size(), 1u);
  EXPECT_EQ(pa->zone(0).stats.thp_advise_fail, 1u);
  EXPECT_FALSE(pa->zone(0).range_huge(0));
  std::memset(pa->page_address(p), 1, 8 * kPageSize);
  pa->free_pages(p, 3);
}

TEST(Thp, FreeTwoMiBBlockIsReleasedInOneCall) {
  PageAllocator* pa = make_heap("always", recording_os());
  ASSERT_NE(pa, nullptr);
  // Two buddies of order 9: free one, so a lone dirty 2 MiB block is free.
  Page* a = pa->alloc_pages(0, kHugeOrder);
  Page* b = pa->alloc_pages(0, kHugeOrder);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(zpfn(pa, a) ^ zpfn(pa, b), kHugePages);
  std::memset(pa->page_address(a), 1, 2 * MiB);
  pa->free_pages(a, kHugeOrder);
  g_released.clear();
  std::size_t n = release_cold_pages(pa, 0, ~std::size_t{0}, ~0ULL);
  EXPECT_EQ(n, kHugePages);
  std::vector<Call> rel = heap_releases(pa);
  ASSERT_EQ(rel.size(), 1u);
  EXPECT_EQ(rel[0].addr, reinterpret_cast<std::uintptr_t>(pa->page_address(a)));
  EXPECT_EQ(rel[0].len, 2 * MiB);
  // A whole range went: nothing split, the range stays marked.
  EXPECT_TRUE(pa->zone(0).range_huge(zpfn(pa, a)));
  EXPECT_EQ(pa->zone(0).stats.thp_split, 0u);
  pa->free_pages(b, kHugeOrder);
}

TEST(Thp, ReclaimKeepsDenseHugeRangeWholeUnlessUnderPressure) {
  PageAllocator* pa = make_heap("always", recording_os());
  ASSERT_NE(pa, nullptr);
  Zone& z = pa->zone(0);
  Page* r = pa->alloc_pages(0, kHugeOrder);  // one whole 2 MiB range
  ASSERT_NE(r, nullptr);
  std::memset(pa->page_address(r), 1, 2 * MiB);
  // Give back 8 of its 512 pages: the range stays 98% in use.
  pa->free_pages(r + 8, 3);
  EXPECT_EQ(z.range_free(zpfn(pa, r)), 8u);
  g_released.clear();
  std::uint64_t avoided = z.stats.thp_split_avoided;
  EXPECT_EQ(release_cold_pages(pa, 0, ~std::size_t{0}, ~0ULL), 0u);
  EXPECT_TRUE(heap_releases(pa).empty());
  EXPECT_GT(z.stats.thp_split_avoided, avoided);
  EXPECT_TRUE(z.range_huge(zpfn(pa, r)));
  {
    LockGuard<Mutex> g(z.lock);
    EXPECT_EQ(z.thp_kept_pages, 8u);
    EXPECT_EQ(z.oldest_dirty_stamp_locked(), ~0ULL) << "a kept block never comes due";
  }
  // Under pressure it goes, and the range is split from then on.
  EXPECT_EQ(release_cold_pages(pa, 0, ~std::size_t{0}, ~0ULL, HugeSplit::kAll), 8u);
  std::vector<Call> rel = heap_releases(pa);
  ASSERT_EQ(rel.size(), 1u);
  EXPECT_EQ(rel[0].len, 8 * kPageSize);
  EXPECT_FALSE(z.range_huge(zpfn(pa, r)));
  EXPECT_EQ(z.stats.thp_split, 1u);
  // The rest of the block back: the range merges and is whole again.
  for (std::size_t i = 0; i < kHugePages; i += 8)
    if (i != 8) pa->free_pages(r + i, 3);
  EXPECT_EQ(z.range_free(zpfn(pa, r)), kHugePages);
}

TEST(Thp, ReclaimSplitsARangeThatIsNoLongerDense) {
  PageAllocator* pa = make_heap("always", recording_os());
  ASSERT_NE(pa, nullptr);
  Zone& z = pa->zone(0);
  Page* r = pa->alloc_pages(0, kHugeOrder);
  ASSERT_NE(r, nullptr);
  std::memset(pa->page_address(r), 1, 2 * MiB);
  // Free 3/4 of it (orders 7 and 8): 25% in use, below thp_dense (75%).
  pa->free_pages(r + 128, 7);
  pa->free_pages(r + 256, 8);
  g_released.clear();
  // A burst (kNone) keeps them: the range may yet be freed whole.
  EXPECT_EQ(release_cold_pages(pa, 0, ~std::size_t{0}, ~0ULL, HugeSplit::kNone), 0u);
  EXPECT_TRUE(heap_releases(pa).empty());
  EXPECT_TRUE(z.range_huge(zpfn(pa, r)));
  // Decay (kSparse) releases them: the range is no longer dense.
  EXPECT_EQ(release_cold_pages(pa, 0, ~std::size_t{0}, ~0ULL), 384u);
  EXPECT_EQ(heap_releases(pa).size(), 2u);
  EXPECT_FALSE(z.range_huge(zpfn(pa, r)));
  EXPECT_EQ(z.stats.thp_split, 1u);
  pa->free_pages(r, 7);
}

TEST(Thp, SmallBlocksFillTheFullestHugeRangeFirst) {
  PageAllocator* pa = make_heap("always", recording_os());
  ASSERT_NE(pa, nullptr);
  Zone& z = pa->zone(0);
  Page* x = pa->alloc_pages(0, kHugeOrder);
  Page* y = pa->alloc_pages(0, kHugeOrder);
  ASSERT_NE(x, nullptr);
  ASSERT_NE(y, nullptr);
  // x's range: one free page (fullest); y's range: 257. y's order-0 page
  // is freed last, so it is the hot one at the head of the order-0 list.
  pa->free_pages(y + 256, 8);
  pa->free_pages(x + 5, 0);
  pa->free_pages(y + 7, 0);
  Page* p = pa->alloc_pages(0, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p, x + 5);
  EXPECT_EQ(z.range_free(zpfn(pa, x)), 0u);
  EXPECT_EQ(z.range_free(zpfn(pa, y)), 257u);
  pa->free_pages(p, 0);
}

// A heap under thp=auto with its first section on base pages and its second
// advised (the first filled with order-10 blocks, then one more), every
// block of both still allocated; `blocks` gets them.
PageAllocator* two_section_auto_heap(std::vector<Page*>* blocks) {
  PageAllocator* pa = make_heap("auto", recording_os());
  if (!pa) return nullptr;
  const std::size_t per_section = pa->arena().section_pages() >> kMaxOrder;
  while (blocks->size() < 2 * per_section) blocks->push_back(alloc_touched(pa, kMaxOrder));
  for (Page* b : *blocks)
    if (!b) return nullptr;
  EXPECT_EQ(g_advised.size(), 1u);
  return pa;
}

// Frees a block of `order` that alloc_touched counted as written.
void free_touched(PageAllocator* pa, Page* p, unsigned order) {
  pa->account_touched(p, -(std::ptrdiff_t{1} << order));
  pa->free_pages(p, order);
}

TEST(Thp, SparseBlocksStayOutOfHugeRanges) {
  std::vector<Page*> blocks;
  PageAllocator* pa = two_section_auto_heap(&blocks);
  ASSERT_NE(pa, nullptr);
  Zone& z = pa->zone(0);
  const std::size_t sp = pa->arena().section_pages();
  ASSERT_FALSE(z.range_huge(0));
  ASSERT_TRUE(z.range_huge(sp));
  // One free 4 MiB block in each section; the marked one is freed last, so
  // it heads the list: a dense block takes it, and the pieces its split
  // leaves in the huge range head the lower orders' lists; a sparse block
  // of the same order passes them by and splits the other 4 MiB block.
  Page* base_blk = blocks[0];
  Page* huge_blk = blocks[blocks.size() - 1];
  ASSERT_LT(zpfn(pa, base_blk), sp);
  ASSERT_GE(zpfn(pa, huge_blk), sp);
  free_touched(pa, base_blk, kMaxOrder);
  free_touched(pa, huge_blk, kMaxOrder);
  Page* d = pa->alloc_pages(0, 4);
  ASSERT_NE(d, nullptr);
  EXPECT_GE(zpfn(pa, d), sp) << "a dense block should fill the huge range";
  Page* s = pa->alloc_pages(0, 4, kGfpSparse);
  ASSERT_NE(s, nullptr);
  EXPECT_LT(zpfn(pa, s), sp) << "a sparse block went into an advised range";
  EXPECT_EQ(z.stats.thp_sparse_fallback, 0u);
  pa->free_pages(s, 4);
  pa->free_pages(d, 4);
  for (std::size_t i = 1; i + 1 < blocks.size(); ++i) free_touched(pa, blocks[i], kMaxOrder);
}

// Slabs of the classes above 32 KiB are placed as the large blocks they
// were (kGfpSparse, slab.cpp): out of huge ranges, where a slab of a dense
// class goes in.
TEST(Thp, SlabsOfTheBigClassesStayOutOfHugeRanges) {
  std::vector<Page*> blocks;
  PageAllocator* pa = two_section_auto_heap(&blocks);
  ASSERT_NE(pa, nullptr);
  Zone& z = pa->zone(0);
  const std::size_t sp = pa->arena().section_pages();
  ASSERT_TRUE(z.range_huge(sp));
  free_touched(pa, blocks[0], kMaxOrder);
  free_touched(pa, blocks[blocks.size() - 1], kMaxOrder);  // the marked one heads the list
  static KmemCache dense, big;  // their slabs stay: the heap is kept until exit
  ASSERT_TRUE(dense.init(size_to_class(kMaxDenseClassSize), pa, 1));
  ASSERT_TRUE(big.init(size_to_class(kMaxSmallSize), pa, 2));
  ASSERT_GE(big.order, dense.order);
  void* d = nullptr;
  void* b = nullptr;
  ASSERT_EQ(dense.fill(0, &d, 1), 1u);
  ASSERT_EQ(big.fill(0, &b, 1), 1u);
  EXPECT_GE(zpfn(pa, pa->virt_to_page(d)), sp) << "a dense class's slab should fill the huge range";
  EXPECT_LT(zpfn(pa, pa->virt_to_page(b)), sp) << "a big class's slab went into an advised range";
  EXPECT_EQ(z.stats.thp_sparse_fallback, 0u);
}

TEST(Thp, SparseBlockGrowsTheZoneOnBasePages) {
  std::vector<Page*> blocks;
  PageAllocator* pa = two_section_auto_heap(&blocks);
  ASSERT_NE(pa, nullptr);
  Zone& z = pa->zone(0);
  const std::size_t sp = pa->arena().section_pages();
  // Only the advised section has free memory, and the zone is dense: a
  // dense block would be served there; a sparse one brings a third
  // section online, without advice.
  Page* huge_blk = blocks.back();
  blocks.pop_back();
  free_touched(pa, huge_blk, kMaxOrder);
  ASSERT_TRUE(z.dense());
  Page* s = pa->alloc_pages(0, 2, kGfpSparse);
  ASSERT_NE(s, nullptr);
  EXPECT_GE(zpfn(pa, s), 2 * sp);
  EXPECT_EQ(pa->arena().node(0).sections_online, 3u);
  EXPECT_EQ(g_advised.size(), 1u) << "the sparse block's section was advised";
  EXPECT_FALSE(z.range_huge(2 * sp));
  EXPECT_EQ(z.stats.thp_sparse_fallback, 0u);
  pa->free_pages(s, 2);
  for (Page* b : blocks) free_touched(pa, b, kMaxOrder);
}

TEST(Thp, SparseBlockTakesAHugeRangeOnlyWhenNothingElseFits) {
  // thp=always: every section is advised, so a sparse block has nowhere
  // else to go; it is served all the same, and counted.
  PageAllocator* pa = make_heap("always", recording_os());
  ASSERT_NE(pa, nullptr);
  Page* s = pa->alloc_pages(0, 3, kGfpSparse);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(pa->zone(0).range_huge(zpfn(pa, s)));
  EXPECT_EQ(pa->zone(0).stats.thp_sparse_fallback, 1u);
  pa->free_pages(s, 3);
}

// Where the kernel has THP, a section advised huge and touched is mapped
// with huge pages, and one of a thp=never heap (in the kernel's "madvise"
// mode) is not. Read from /proc/self/smaps for the mapping holding it.
std::string thp_mode() {
  char buf[256] = {};
  FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (!f) return "";
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  std::string s(buf, n);
  std::size_t a = s.find('['), b = s.find(']');
  return a == std::string::npos || b == std::string::npos ? "" : s.substr(a + 1, b - a - 1);
}

// AnonHugePages (KiB) of the mapping that contains addr, or -1.
long anon_huge_kib_at(const void* addr) {
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  char line[512];
  bool in = false;
  long kib = -1;
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  while (std::fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    char perms[8];
    // A mapping's header ("lo-hi perms ..."); field lines ("Name: value")
    // never match all three.
    if (std::sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) {
      in = a >= lo && a < hi;
      continue;
    }
    if (in && std::strncmp(line, "AnonHugePages:", 14) == 0) {
      kib = std::strtol(line + 14, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kib;
}

TEST(ThpKernel, AdvisedSectionIsMappedHuge) {
  std::string mode = thp_mode();
  if (mode.empty() || mode == "never")
    GTEST_SKIP() << "transparent huge pages are off here (mode '" << mode << "')";
  PageAllocator* pa = make_heap("always", os_mem_linux());
  ASSERT_NE(pa, nullptr);
  std::vector<Page*> blocks;
  for (int i = 0; i < 4; ++i) blocks.push_back(pa->alloc_pages(0, kMaxOrder));
  for (Page* b : blocks) {
    ASSERT_NE(b, nullptr);
    std::memset(pa->page_address(b), 1, kMaxBlockSize);
  }
  long kib = anon_huge_kib_at(pa->page_address(blocks[0]));
  EXPECT_GE(kib, 2048) << "16 MiB advised and touched, no huge page (kernel mode " << mode
                       << "; memory too fragmented?)";
  for (Page* b : blocks) pa->free_pages(b, kMaxOrder);

  if (mode != "madvise") return;  // "always": the kernel maps huge unasked
  PageAllocator* never = make_heap("never", os_mem_linux());
  ASSERT_NE(never, nullptr);
  blocks.clear();
  for (int i = 0; i < 4; ++i) blocks.push_back(never->alloc_pages(0, kMaxOrder));
  for (Page* b : blocks) {
    ASSERT_NE(b, nullptr);
    std::memset(never->page_address(b), 1, kMaxBlockSize);
  }
  EXPECT_EQ(anon_huge_kib_at(never->page_address(blocks[0])), 0);
  for (Page* b : blocks) never->free_pages(b, kMaxOrder);
}

}  // namespace
}  // namespace numaslub
