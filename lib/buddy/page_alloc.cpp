#include "lib/buddy/page_alloc.h"

#include <atomic>
#include <cstring>
#include <new>

#include "lib/base/base.h"

namespace numaslub {

int PageAllocator::init(const Config& cfg, const Topology& topo, const OsMem& os) {
  topo_ = &topo;
  if (int e = arena_.init(topo, cfg, os)) return e;
  unsigned nodes = arena_.nr_nodes();
  nr_cpus_ = topo.nr_cpus ? topo.nr_cpus : 1;
  const MemPolicy& pol = arena_.policy();
  bool moved = false;
  for (unsigned n = 0; n < topo.nr_nodes; ++n) moved |= pol.home[n] != n;
  if (moved) {
    // The machine seen through the policy: every CPU joins its home node.
    auto* view = static_cast<Topology*>(boot_alloc(sizeof(Topology)));
    if (!view) return 12;
    *view = topo;
    for (unsigned n = 0; n < kMaxNodes; ++n) view->node_cpus[n] = CpuMask{};
    for (unsigned c = 0; c < view->nr_cpus && c < kMaxCpus; ++c) {
      std::uint16_t h = pol.home[topo.cpu_to_node[c]];
      view->cpu_to_node[c] = h;
      view->node_cpus[h].set(c);
    }
    topo_ = view;
  }
  thp_ = static_cast<ThpMode>(cfg.thp);
  if (!os.advise_huge) thp_ = ThpMode::kNever;
  zones_ = static_cast<Zone*>(boot_alloc(sizeof(Zone) * nodes));
  node_stats_ = static_cast<NodeStats*>(boot_alloc(sizeof(NodeStats) * nodes));
  zonelists_ = static_cast<std::uint16_t*>(boot_alloc(sizeof(std::uint16_t) * nodes * nodes));
  if (!zones_ || !node_stats_ || !zonelists_) return 12;
  for (unsigned n = 0; n < nodes; ++n) {
    Zone* z = new (&zones_[n]) Zone();
    NodeRange& r = arena_.node(n);
    z->watermark_scale = cfg.watermark_scale;
    z->init(n, r.base, arena_.pfn_to_page(r.pfn_start), r.pages, grow_zone, this);
    // Without the per-range words (boot_alloc failed) the zone stays on base
    // pages: huge pages are an optimisation, not worth failing the heap for.
    if (thp_ != ThpMode::kNever) z->enable_thp(cfg.thp_dense);
    new (&node_stats_[n]) NodeStats();
    // The zonelist: the allowed nodes by distance from n (n first if allowed).
    std::uint16_t order[kMaxNodes];
    unsigned k = topo.fallback_order(n, order), len = 0;
    for (unsigned i = 0; i < k; ++i)
      if (pol.allows(order[i])) zonelists_[n * nodes + len++] = order[i];
    if (len == 0) zonelists_[n * nodes + len++] = static_cast<std::uint16_t>(n);
    zonelist_len_ = len;  // the same for every node: the allowed set
  }
  if (cfg.pcp && cfg.pcp_high > 0) {
    pcp_ = static_cast<PerCpuPages*>(boot_alloc(sizeof(PerCpuPages) * nr_cpus_ * nodes));
    if (!pcp_) return 12;
    std::uint32_t high = cfg.pcp_high < kPcpCapacity ? cfg.pcp_high : kPcpCapacity - 1;
    std::uint32_t batch = cfg.pcp_batch ? cfg.pcp_batch : 1;
    if (batch > high) batch = high;
    std::uint64_t run_high = cfg.pcp_runs >> kPageShift;
    if (run_high > (1u << 20)) run_high = 1u << 20;
    for (unsigned i = 0; i < nr_cpus_ * nodes; ++i) {
      PerCpuPages* p = new (&pcp_[i]) PerCpuPages();
      p->high = high;
      p->batch = batch;
      p->run_high = static_cast<std::uint32_t>(run_high);
    }
  }
  return 0;
}

bool PageAllocator::grow_zone(void* self, Zone* zone, bool huge_ok) {
  auto* pa = static_cast<PageAllocator*>(self);
  // Decided on the zone as it is before the section joins it. Under auto,
  // a section onlined for a sparse block stays on base pages: the blocks
  // that fill it first are of its kind.
  bool huge = zone->thp_enabled() && (pa->thp_ == ThpMode::kAlways || (huge_ok && zone->dense()));
  std::size_t pfn, n;
  if (pa->arena_.online_section(zone->nid(), &pfn, &n) != 0) return false;
  std::size_t zpfn = pfn - pa->arena_.node(zone->nid()).pfn_start;
  if (huge) {
    // Under the zone lock, as the section's mprotect was: a system call that
    // only sets a flag on the mapping. Nothing has touched the section yet,
    // so its first faults map huge pages. A section is a multiple of 4 MiB
    // and aligned to it, hence of whole 2 MiB ranges.
    if (pa->arena_.os().advise_huge(pa->arena_.pfn_to_virt(pfn), n << kPageShift) == 0)
      zone->mark_huge_locked(zpfn, n);
    else
      ++zone->stats.thp_advise_fail;
  }
  zone->online_locked(zpfn, n);
  // Every CPU's caches of this zone get their share of its new size.
  for (unsigned c = 0; pa->pcp_ && c < pa->nr_cpus_; ++c)
    pa->pcp(c, zone->nid())->set_cap(zone->present_pages, pa->nr_cpus_);
  return true;
}

int PageAllocator::local_node() const {
  return topo_->node_of_cpu(current_cpu());
}

Page* PageAllocator::alloc_from(unsigned nid, int cpu, unsigned order, unsigned gfp) {
  if (pcp_ && order < kPcpOrders && !(gfp & kGfpZero))
    if (Page* p = pcp(static_cast<unsigned>(cpu), nid)->alloc(zones_[nid], order)) return p;
  return zones_[nid].alloc(order, gfp & kGfpZero,
                           (gfp & kGfpSparse) ? Placement::kSparse : Placement::kDense);
}

Page* PageAllocator::alloc_pages(int nid, unsigned order, unsigned gfp) {
  Page* p = alloc_pages_unpaid(nid, order, gfp);
  if (p) pay_release_debt(zones_[page_to_nid(p)]);
  return p;
}

Page* PageAllocator::alloc_pages_unpaid(int nid, unsigned order, unsigned gfp) {
  if (order > kMaxOrder) return nullptr;
  int cpu = current_cpu();
  if (static_cast<unsigned>(cpu) >= nr_cpus_) cpu = 0;
  unsigned want = nid < 0 ? topo_->node_of_cpu(cpu) : static_cast<unsigned>(nid);
  if (want >= arena_.nr_nodes()) return nullptr;
  unsigned nodes = arena_.nr_nodes();
  Page* p = nullptr;
  // A node the policy excludes has an empty zonelist of its own.
  bool this_node = gfp & kGfpThisNode;
  for (int attempt = 0; attempt < 2 && !p && !(this_node && !arena_.policy().allows(want));
       ++attempt) {
    if (attempt == 1 && drain_all_pcp() == 0) break;
    const std::uint16_t* zl = zonelists_ + want * nodes;
    unsigned tries = this_node ? 1 : zonelist_len_;
    for (unsigned i = 0; i < tries && !p; ++i) {
      p = alloc_from(zl[i], cpu, order, gfp);
      if (p) ++(zl[i] == want ? node_stats_[want].alloc_local : node_stats_[want].alloc_fallback);
    }
  }
  if (!p) {
    ++node_stats_[want].alloc_fail;
    return nullptr;
  }
  if ((gfp & kGfpZero) && !(p->flags & PG_clean)) {
    std::memset(arena_.page_to_virt(p), 0, kPageSize << order);
    p->flags |= PG_clean;
  }
  return p;
}

void PageAllocator::pay_release_debt(Zone& z) {
  if (NS_LIKELY(z.release_debt.load(std::memory_order_relaxed) == 0)) return;
  constexpr unsigned kMaxBlocks = 32;
  Page* blocks[kMaxBlocks];
  Page* bad[kMaxBlocks];
  std::size_t want;
  {
    LockGuard<Mutex> g(z.lock);
    want = z.release_debt.load(std::memory_order_relaxed);
    z.release_debt.store(0, std::memory_order_relaxed);
  }
  // In rounds of at most kMaxBlocks blocks: the pieces that made the debt
  // may be many small ones.
  while (want > 0) {
    std::size_t pages = 0;
    unsigned n;
    {
      LockGuard<Mutex> g(z.lock);
      std::size_t dirty = z.dirty_pages(), reserve = z.dirty_reserve();
      if (dirty <= reserve) return;
      if (want > dirty - reserve) want = dirty - reserve;
      std::uint64_t now = now_coarse_ns();
      n = z.isolate_cold_locked(want, now > kYoungBlockNs ? now - kYoungBlockNs : 0, blocks,
                                kMaxBlocks, &pages, HugeSplit::kNone);
    }
    if (n == 0) return;
    unsigned ok = 0, failed = 0;
    for (unsigned i = 0; i < n; ++i) {
      if (arena_.os().release(z.address(blocks[i]), kPageSize << blocks[i]->order) == 0)
        blocks[ok++] = blocks[i];
      else
        bad[failed++] = blocks[i];
    }
    LockGuard<Mutex> g(z.lock);
    z.putback_released_locked(blocks, ok, true);
    for (unsigned i = 0; i < failed; ++i) z.unisolate_locked(bad[i]);
    for (unsigned i = 0; i < ok; ++i) z.stats.traded += std::size_t{1} << blocks[i]->order;
    if (failed) return;
    want = pages < want ? want - pages : 0;
  }
}

unsigned PageAllocator::policy_node(int nid, bool skip_full) {
  unsigned nodes = arena_.nr_nodes();
  unsigned want = nid < 0 ? static_cast<unsigned>(local_node()) : static_cast<unsigned>(nid);
  if (want >= nodes) want = 0;
  const std::uint16_t* zl = zonelists_ + want * nodes;
  for (unsigned i = 0; skip_full && i < zonelist_len_; ++i) {
    const NodeRange& r = arena_.node(zl[i]);
    if (r.online_pages.load(std::memory_order_acquire) + arena_.section_pages() <= r.pages)
      return zl[i];  // can still grow
    LockGuard<Mutex> g(zones_[zl[i]].lock);
    if (zones_[zl[i]].free_pages) return zl[i];
  }
  return zl[0];
}

int PageAllocator::bind_mapping(void* addr, std::size_t len, int nid) {
  unsigned nodes = arena_.nr_nodes();
  unsigned want = nid < 0 ? static_cast<unsigned>(local_node()) : static_cast<unsigned>(nid);
  if (want >= nodes) want = 0;
  const std::uint16_t* zl = zonelists_ + want * nodes;
  int e = 0;
  for (unsigned i = 0; i < zonelist_len_; ++i)
    if ((e = arena_.apply_policy(addr, len, zl[i])) == 0) return 0;
  return e;
}

int PageAllocator::this_cpu() const {
  int cpu = current_cpu();
  return static_cast<unsigned>(cpu) < nr_cpus_ ? cpu : 0;
}

Page* PageAllocator::alloc_pages_exact(int nid, std::size_t pages, unsigned min_order,
                                       unsigned gfp) {
  if (pages == 0 || pages > kMaxBlockPages) return nullptr;
  // Two ways to serve it without a split, both from the zone the request
  // would be served from first: the calling CPU's run list (a run class's
  // page count), then resident pieces fitted together
  // (Zone::fit_run_locked). kFitMinPages is kRunMinPages: every run
  // request may also be fitted.
  if (min_order == 0 && !(gfp & kGfpZero) && pages >= kFitMinPages) {
    int cpu = this_cpu();
    unsigned want = nid < 0 ? topo_->node_of_cpu(cpu) : static_cast<unsigned>(nid);
    if (want < arena_.nr_nodes()) {
      unsigned first = zonelists_[want * arena_.nr_nodes()];
      Page* p = nullptr;
      if (pcp_ && pages <= kRunMaxPages && run_round_pages(pages) == pages)
        p = pcp(static_cast<unsigned>(cpu), first)->alloc_run(run_class(pages));
      if (!p) {
        Zone& z = zones_[first];
        {
          LockGuard<Mutex> g(z.lock);
          p = z.fit_run_locked(pages, gfp & kGfpSparse);
        }
        if (p) pay_release_debt(z);
      }
      if (p) {
        ++(first == want ? node_stats_[want].alloc_local : node_stats_[want].alloc_fallback);
        return p;
      }
    }
  }
  unsigned order = ilog2_ceil(pages);
  if (min_order > order) order = min_order;
  Page* head = alloc_pages_unpaid(nid, order, gfp);
  if (!head) return nullptr;
  Zone& z = zones_[page_to_nid(head)];
  if ((std::size_t{1} << order) == pages) {
    pay_release_debt(z);
    return head;
  }
  std::uint32_t keep = head->flags & PG_clean;  // the kGfpZero answer
  {
    LockGuard<Mutex> g(z.lock);
    // The tail of a clean block stays clean: it was never handed out, and
    // reclaim must not count it as resident (nor madvise it).
    z.free_range_locked(head + pages, (std::size_t{1} << order) - pages, keep != 0);
    // A clean block's tail goes back untouched: no debt for it.
    std::size_t debt = z.release_debt.load(std::memory_order_relaxed);
    std::size_t tail = (std::size_t{1} << order) - pages;
    if (keep && debt)
      z.release_debt.store(debt > tail ? debt - tail : 0, std::memory_order_relaxed);
  }
  head->flags = keep;
  pay_release_debt(z);
  return head;
}

void PageAllocator::free_pages_exact(Page* page, std::size_t pages) {
  unsigned nid = page_to_nid(page);
  int cpu = this_cpu();
  if (static_cast<unsigned>(topo_->node_of_cpu(cpu)) != nid)
    node_stats_[nid].remote_free.fetch_add(1, std::memory_order_relaxed);
  bool wake = false;
  if (pcp_ && pages >= kRunMinPages && pages <= kRunMaxPages && run_round_pages(pages) == pages &&
      pcp(static_cast<unsigned>(cpu), nid)->free_run(zones_[nid], page, run_class(pages), &wake)) {
    // Memory "goes back without the application asking" holds for runs
    // too: the first run a CPU caches after kswapd went to sleep armed
    // wakes it (its idle drain then returns the runs of an idle CPU to the
    // zone, where decay releases them). Later runs find it awake, or
    // looking again while runs are cached (Zone::run_wake_seq): no zone
    // lock for them, where a wake on every run freed into empty lists
    // cost a malloc+free loop of one block the zone lock and the hook on
    // each free.
    if (wake) {
      LockGuard<Mutex> g(zones_[nid].lock);
      zones_[nid].wake_if_armed_locked();
    }
    return;
  }
  LockGuard<Mutex> g(zones_[nid].lock);
  zones_[nid].free_range_locked(page, pages);
}

void PageAllocator::free_pages(Page* page, unsigned order, bool use_pcp) {
  unsigned nid = page_to_nid(page);
  int cpu = this_cpu();
  if (static_cast<unsigned>(topo_->node_of_cpu(cpu)) != nid)
    node_stats_[nid].remote_free.fetch_add(1, std::memory_order_relaxed);
  if (pcp_ && use_pcp && order < kPcpOrders) {
    pcp(static_cast<unsigned>(cpu), nid)->free(zones_[nid], page, order);
    return;
  }
  page->flags &= ~PG_clean;
  zones_[nid].free(page, order, false);
}

std::size_t PageAllocator::drain_all_pcp() {
  if (!pcp_) return 0;
  std::size_t moved = 0;
  for (unsigned c = 0; c < nr_cpus_; ++c)
    for (unsigned n = 0; n < arena_.nr_nodes(); ++n) moved += pcp(c, n)->drain(zones_[n]);
  return moved;
}

std::size_t PageAllocator::release_free(std::size_t max_pages) {
  drain_all_pcp();
  std::size_t done = 0;
  for (unsigned n = 0; n < arena_.nr_nodes() && done < max_pages; ++n) {
    LockGuard<Mutex> g(zones_[n].lock);
    done += zones_[n].release_dirty_locked(arena_.os().release, max_pages - done);
  }
  return done;
}

namespace {
constinit std::atomic<PageAllocator*> g_page_allocator{nullptr};
// A failed set-up is not final: the address space may be there on the next
// call (the program freed some, or raised RLIMIT_AS). The object's memory
// is kept for that retry, and the failure is logged once.
constinit void* g_page_allocator_mem = nullptr;
constinit bool g_page_allocator_logged = false;
constinit Mutex g_init_lock;
constinit const OsMem* g_os_for_test = nullptr;
}  // namespace

void page_allocator_set_os_for_test(const OsMem& os) {
  g_os_for_test = &os;
}

PageAllocator* page_allocator_if_ready() {
  return g_page_allocator.load(std::memory_order_acquire);
}

void PageAllocator::fork_child_repair(std::uint32_t self) {
  unsigned nodes = arena_.nr_nodes();
  for (unsigned i = 0; pcp_ && i < nr_cpus_ * nodes; ++i)
    if (pcp_[i].lock.reset_if_orphaned(self)) {
      for (PcpList& l : pcp_[i].lists) l.count = 0;
      for (RunList& l : pcp_[i].runs) l.count = 0;
      pcp_[i].run_pages = 0;
    }
  for (unsigned n = 0; n < nodes; ++n) zones_[n].fork_child_repair(self);
  for (unsigned n = 0; n < nodes; ++n)
    if (arena_.node(n).hotplug_lock.reset_if_orphaned(self)) arena_.fork_child_repair(n);
}

void page_allocator_fork_child(std::uint32_t self) {
  g_init_lock.reset_if_orphaned(self);
  if (PageAllocator* pa = page_allocator_if_ready()) pa->fork_child_repair(self);
}

PageAllocator* page_allocator() {
  if (PageAllocator* pa = g_page_allocator.load(std::memory_order_acquire)) return pa;
  LockGuard<Mutex> g(g_init_lock);
  if (PageAllocator* pa = g_page_allocator.load(std::memory_order_relaxed)) return pa;
  if (!g_page_allocator_mem && !(g_page_allocator_mem = boot_alloc(sizeof(PageAllocator))))
    return nullptr;
  auto* pa = new (g_page_allocator_mem) PageAllocator();
  if (int e = pa->init(config(), topology(), g_os_for_test ? *g_os_for_test : os_mem_linux())) {
    if (!g_page_allocator_logged || config().verbose)
      log_msg("cannot set up the heap (errno %d); allocations fail until it can be", e);
    g_page_allocator_logged = true;
    return nullptr;
  }
  g_page_allocator.store(pa, std::memory_order_release);
  return pa;
}

}  // namespace numaslub
