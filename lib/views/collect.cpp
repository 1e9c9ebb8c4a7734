// A snapshot of the live allocator in the published format: the numbers
// behind buddyinfo and zoneinfo (lib/buddy/views.cpp), slabinfo
// (lib/slub/slabinfo.cpp) and the vmstat lines, read under the same locks
// as those views take, one lock at a time.
//
// The caches' figures come through lib/slub's accessors (cache_stats.h),
// which take those locks.
#include "lib/views/collect.h"

#include <cstring>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"
#include "lib/reclaim/reclaim.h"
#include "lib/slub/slub.h"

namespace numaslub {

static_assert(kNrOrders == pub::kOrders, "the file format's order count");

bool snapshot_shape(std::uint32_t* nr_nodes, std::uint32_t* nr_cpus, std::uint32_t* nr_classes) {
  PageAllocator* pa = page_allocator_if_ready();
  if (!pa) return false;
  *nr_nodes = pa->nr_nodes();
  *nr_cpus = pa->pcp(0, 0) ? pa->nr_cpus() : 0;
  *nr_classes = kNrClasses;
  return true;
}

unsigned parse_vmstat_lines(const char* text, pub::StatSnap* out, unsigned max) {
  unsigned n = 0;
  for (const char* p = text; *p && n < max;) {
    const char* eol = std::strchr(p, '\n');
    if (!eol) eol = p + std::strlen(p);
    const char* sp = p;
    while (sp < eol && *sp != ' ') ++sp;
    std::size_t klen = static_cast<std::size_t>(sp - p);
    bool ok = klen > 0 && klen < pub::kStatNameLen && sp + 1 < eol;
    std::uint64_t v = 0;
    for (const char* d = sp + 1; ok && d < eol; ++d) {
      if (*d < '0' || *d > '9') ok = false;
      v = v * 10 + static_cast<unsigned>(*d - '0');
    }
    if (ok) {
      std::memset(out[n].name, 0, sizeof out[n].name);
      std::memcpy(out[n].name, p, klen);
      out[n].value = v;
      ++n;
    }
    p = *eol ? eol + 1 : eol;
  }
  return n;
}

namespace {

std::size_t default_vmstat_text(char* buf, std::size_t cap) {
  std::size_t n = vmstat(buf, cap);
  return n + reclaim_vmstat(buf + n, cap - n);
}

void collect_zone(PageAllocator* pa, unsigned n, std::uint32_t nr_cpus, pub::ZoneSnap* zs,
                  pub::PcpSnap* pcp) {
  Zone& z = pa->zone(n);
  {
    LockGuard<Mutex> g(z.lock);
    for (unsigned o = 0; o < kNrOrders; ++o) {
      zs->nr_free[o] = z.free_area[o].nr_free;
      zs->nr_clean[o] = z.free_area[o].nr_clean;
      zs->alloc[o] = z.stats.alloc[o];
      zs->freed[o] = z.stats.free[o];
    }
    zs->free_pages = z.free_pages;
    zs->clean_pages = z.clean_pages;
    zs->lazy_pages = z.lazy_pages;
    zs->isolated_pages = z.isolated_pages;
    zs->present_pages = z.present_pages;
    zs->spanned_pages = z.spanned_pages;
    zs->wmark_min = z.wmark_min;
    zs->wmark_low = z.wmark_low;
    zs->wmark_high = z.wmark_high;
    zs->splits = z.stats.splits;
    zs->merges = z.stats.merges;
    zs->grow = z.stats.grow;
    zs->grow_fail = z.stats.grow_fail;
    zs->released = z.stats.released;
  }
  NodeStats& ns = pa->node_stats(n);
  zs->numa_hit = ns.alloc_local;
  zs->numa_miss = ns.alloc_fallback;
  zs->numa_fail = ns.alloc_fail;
  zs->remote_free = ns.remote_free.load(std::memory_order_relaxed);
  const NodeRange& r = pa->arena().node(n);
  zs->sections_online = r.sections_online;
  zs->start_pfn = r.base >> kPageShift;
  zs->phys_node = r.phys_node;
  zs->allowed = pa->arena().policy().allows(n) ? 1 : 0;
  zs->kswapd_running = kswapd_running(n) ? 1 : 0;
  // Each list under its own lock: its count, high, batch and hits agree.
  for (unsigned c = 0; c < nr_cpus; ++c) {
    PerCpuPages* p = pa->pcp(c, n);
    pub::PcpSnap& s = pcp[c * pa->nr_nodes() + n];
    LockGuard<Mutex> g(p->lock);
    s.count = static_cast<std::uint32_t>(p->pages());
    s.high = p->high;
    s.batch = p->batch;
    s.hits = p->hits;
    zs->pcp_pages += s.count;
  }
}

void collect_cache(unsigned cls, unsigned nr_nodes, pub::CacheSnap* cs, pub::CacheNodeSnap* parts) {
  CacheInfo c;
  if (!kmem_cache_info(cls, &c)) return;
  // collect_snapshot zeroed the copy: the name stays terminated.
  std::memcpy(cs->name, c.name, strnlen(c.name, sizeof cs->name - 1));
  cs->size = c.size;
  cs->objects = c.objects;
  cs->order = c.order;
  cs->sheaf_capacity = c.sheaf_capacity;
  cs->barn_max_full = c.barn_max_full;
  cs->min_partial = c.min_partial;
  cs->refills = c.refills;
  cs->flushes = c.flushes;
  pub::CacheNodeSnap& t = cs->total;
  CacheNodeCounts k;
  for (unsigned nid = 0; nid < nr_nodes && kmem_cache_node_counts(cls, nid, &k); ++nid) {
    pub::CacheNodeSnap& s = parts[nid];
    s.inuse = k.inuse;
    s.slabs = k.slabs;
    s.partial = k.partial;
    s.slabs_allocated = k.slabs_allocated;
    s.slabs_freed = k.slabs_freed;
    s.remote_frees = k.remote_frees;
    s.full_sheaves = k.full_sheaves;
    // The totals are the sums of the parts written here: a reader that
    // finds otherwise has read a torn copy.
    pub::add_part(t, s);
  }
}

}  // namespace

void collect_snapshot(void* copy, const pub::Layout& l, std::uint32_t nr_nodes,
                      std::uint32_t nr_cpus, std::uint32_t nr_classes, char* text,
                      std::size_t text_cap, VmstatTextFn vmstat_text) {
  auto* base = static_cast<char*>(copy);
  std::memset(base, 0, l.size);
  auto* sh = reinterpret_cast<pub::SnapHeader*>(base);
  auto* zones = reinterpret_cast<pub::ZoneSnap*>(base + l.zones);
  auto* pcp = reinterpret_cast<pub::PcpSnap*>(base + l.pcp);
  auto* caches = reinterpret_cast<pub::CacheSnap*>(base + l.caches);
  auto* parts = reinterpret_cast<pub::CacheNodeSnap*>(base + l.cache_nodes);
  auto* stats = reinterpret_cast<pub::StatSnap*>(base + l.vmstat);
  std::uint64_t t0 = now_ns();
  PageAllocator* pa = page_allocator_if_ready();
  if (pa && pa->nr_nodes() == nr_nodes) {
    for (unsigned n = 0; n < nr_nodes; ++n) collect_zone(pa, n, nr_cpus, &zones[n], pcp);
    pa->arena().policy().describe(sh->policy, sizeof sh->policy);
  }
  if (slub_ready() && nr_classes == kNrClasses) {
    sh->flags |= pub::kSnapSlubReady;
    if (cache_mode() == CacheMode::kRseq) sh->flags |= pub::kSnapRseq;
    for (unsigned cls = 0; cls < nr_classes; ++cls)
      collect_cache(cls, nr_nodes, &caches[cls], &parts[cls * nr_nodes]);
  }
  std::size_t hc, hb;
  vmalloc_stats(&hc, &hb);
  sh->vmalloc_count = hc;
  sh->vmalloc_bytes = hb;
  std::size_t n = (vmstat_text ? vmstat_text : default_vmstat_text)(text, text_cap);
  text[n < text_cap ? n : text_cap - 1] = '\0';
  sh->nr_vmstat = parse_vmstat_lines(text, stats, pub::kVmstatMax);
  std::uint64_t t1 = now_ns();
  sh->mono_ns = t1;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  sh->real_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
                static_cast<std::uint64_t>(ts.tv_nsec);
  sh->collect_ns = t1 - t0;
}

}  // namespace numaslub
