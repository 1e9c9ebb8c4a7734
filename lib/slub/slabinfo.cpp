// /proc/slabinfo (version 2.1 layout) for the kmalloc caches. The
// "tunables" columns show the sheaf capacity (limit and batchcount) and the
// barn's full-sheaf limit (sharedfactor). Also the caches' figures for other
// layers (cache_stats.h), heap_totals, vmstat and kmem_trim.
#include "lib/base/base.h"
#include "lib/slub/cache_stats.h"
#include "lib/slub/debug.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/reentry.h"
#include "lib/slub/slub_internal.h"
#include "lib/slub/vmalloc.h"

namespace numaslub {

std::size_t slabinfo(char* buf, std::size_t cap) {
  BufWriter w(buf, cap);
  w.put("slabinfo - version: 2.1\n");
  w.put(
      "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
      " : tunables <limit> <batchcount> <sharedfactor>"
      " : slabdata <active_slabs> <num_slabs> <sharedavail>\n");
  // slub_init, not a test of g_kmem.pa: pa is set before the caches are,
  // so a reader racing with the first allocation would walk half-made caches.
  if (!slub_init()) return w.size();
  for (unsigned cls = kNrClasses; cls-- > 0;) {
    KmemCache& c = g_kmem.caches[cls];
    std::size_t inuse = 0, slabs = 0, partial = 0, full_sheaves = 0;
    CacheNodeCounts k;
    for (unsigned nid = 0; kmem_cache_node_counts(cls, nid, &k); ++nid) {
      inuse += k.inuse;
      slabs += k.slabs;
      partial += k.partial;
      full_sheaves += k.full_sheaves;
    }
    w.printf("%-17s %6zu %6zu %6u %4u %4u : tunables %4u %4u %4u : slabdata %6zu %6zu %6zu\n",
             c.name, inuse, slabs * c.objects, c.size, c.objects, 1u << c.order, c.sheaf_capacity,
             c.sheaf_capacity, c.barn_max_full, slabs - partial, slabs, full_sheaves);
  }
  std::size_t n, bytes;
  vmalloc_stats(&n, &bytes);
  w.printf("# vmalloc mappings: %zu, %zu KiB\n", n, bytes >> 10);
  return w.size();
}

}  // namespace numaslub

namespace numaslub {

std::size_t kmem_validate() {
  return debug_validate();
}

std::size_t kmem_trim() {
  std::size_t freed = kmem_shrink_all() + vmalloc_cache_release(~0ULL);
  if (!g_kmem.pa) return freed;
  return freed + g_kmem.pa->release_free();
}

bool kmem_cache_info(unsigned cls, CacheInfo* out) {
  if (!slub_ready() || cls >= kNrClasses) return false;
  const KmemCache& c = g_kmem.caches[cls];
  out->name = c.name;
  out->size = c.size;
  out->objects = c.objects;
  out->order = c.order;
  out->sheaf_capacity = c.sheaf_capacity;
  out->barn_max_full = c.barn_max_full;
  out->min_partial = c.min_partial;
  out->refills = g_kmem.stats[cls].refills;
  out->flushes = g_kmem.stats[cls].flushes;
  return true;
}

bool kmem_cache_node_counts(unsigned cls, unsigned nid, CacheNodeCounts* out) {
  // slub_ready, not g_kmem.pa: pa is set before the caches are.
  if (!slub_ready() || cls >= kNrClasses || nid >= g_kmem.pa->nr_nodes()) return false;
  KmemCacheNode& n = g_kmem.caches[cls].node[nid];
  {
    LockGuard<Mutex> g(n.list_lock);
    out->inuse = n.inuse;
    out->slabs = n.nr_slabs;
    out->partial = n.nr_partial;
    out->slabs_allocated = n.slabs_allocated;
    out->slabs_freed = n.slabs_freed;
  }
  out->remote_frees = n.remote_frees.load(std::memory_order_relaxed);
  LockGuard<Mutex> g(n.barn.lock);  // never together with list_lock (slab.h)
  out->full_sheaves = n.barn.nr_full;
  return true;
}

HeapTotals heap_totals() {
  HeapTotals t;
  vmalloc_stats(&t.vmalloc_count, &t.vmalloc_bytes);
  PageAllocator* pa = g_kmem.pa;
  if (!pa) return t;
  for (unsigned n = 0; n < pa->nr_nodes(); ++n) {
    Zone& z = pa->zone(n);
    LockGuard<Mutex> g(z.lock);
    t.heap_bytes += z.present_pages << kPageShift;
    t.free_bytes += z.free_pages << kPageShift;
    for (const FreeArea& a : z.free_area) t.free_blocks += a.nr_free;
  }
  for (unsigned c = 0; c < pa->nr_cpus(); ++c)
    for (unsigned n = 0; n < pa->nr_nodes(); ++n)
      if (PerCpuPages* p = pa->pcp(c, n)) t.free_bytes += p->pages() << kPageShift;
  return t;
}

std::size_t vmstat(char* buf, std::size_t cap) {
  BufWriter w(buf, cap);
  PageAllocator* pa = g_kmem.pa;
  if (!pa) return w.size();
  std::uint64_t alloc[kNrOrders] = {}, hit = 0, miss = 0, fail = 0, released = 0;
  std::uint64_t thp[6] = {};  // backed, advised, advise_fail, split, split_avoided, sparse_fallback
  std::uint64_t traded = 0, fit_runs = 0;
  for (unsigned n = 0; n < pa->nr_nodes(); ++n) {
    Zone& z = pa->zone(n);
    {
      LockGuard<Mutex> g(z.lock);
      for (unsigned o = 0; o < kNrOrders; ++o) alloc[o] += z.stats.alloc[o];
      released += z.stats.released;
      traded += z.stats.traded;
      fit_runs += z.stats.fit_runs;
      thp[0] += z.stats.thp_backed;
      thp[1] += z.stats.thp_advised;
      thp[2] += z.stats.thp_advise_fail;
      thp[3] += z.stats.thp_split;
      thp[4] += z.stats.thp_split_avoided;
      thp[5] += z.stats.thp_sparse_fallback;
    }
    hit += pa->node_stats(n).alloc_local;
    miss += pa->node_stats(n).alloc_fallback;
    fail += pa->node_stats(n).alloc_fail;
  }
  for (unsigned o = 0; o < kNrOrders; ++o)
    w.printf("pgalloc_order_%u %lu\n", o, static_cast<unsigned long>(alloc[o]));
  w.printf("numa_hit %lu\nnuma_miss %lu\nnuma_fail %lu\npgreleased %lu\n",
           static_cast<unsigned long>(hit), static_cast<unsigned long>(miss),
           static_cast<unsigned long>(fail), static_cast<unsigned long>(released));
  // 2 MiB ranges advised huge (still whole / ever), refused advice, releases
  // that split a range, blocks kept so as not to, and sparse blocks that
  // had to go into a huge range (lib/buddy/zone.h).
  w.printf("thp_backed %lu\nthp_advised %lu\nthp_advise_fail %lu\nthp_split %lu\n",
           static_cast<unsigned long>(thp[0]), static_cast<unsigned long>(thp[1]),
           static_cast<unsigned long>(thp[2]), static_cast<unsigned long>(thp[3]));
  w.printf("thp_split_avoided %lu\nthp_sparse_fallback %lu\n", static_cast<unsigned long>(thp[4]),
           static_cast<unsigned long>(thp[5]));
  // Resident free pages released as clean ones were taken (zone.h:
  // release_debt); pgreleased counts them too.
  w.printf("pgreleased_traded %lu\n", static_cast<unsigned long>(traded));
  // Large blocks served over adjacent resident pieces (Zone::fit_run_locked).
  w.printf("pgalloc_fit_runs %lu\n", static_cast<unsigned long>(fit_runs));
  std::uint64_t slabs_alloc = 0, slabs_freed = 0, remote = 0, refills = 0, flushes = 0;
  std::uint64_t barn[4] = {};  // hits, misses, overflows, grows
  for (unsigned cls = 0; cls < kNrClasses; ++cls) {
    KmemCache& c = g_kmem.caches[cls];
    refills += g_kmem.stats[cls].refills;
    flushes += g_kmem.stats[cls].flushes;
    for (unsigned n = 0; n < pa->nr_nodes(); ++n) {
      KmemCacheNode& kn = c.node[n];
      {
        LockGuard<Mutex> g(kn.list_lock);
        slabs_alloc += kn.slabs_allocated;
        slabs_freed += kn.slabs_freed;
        remote += kn.remote_frees.load(std::memory_order_relaxed);
      }
      LockGuard<Mutex> g(kn.barn.lock);  // never together with list_lock (slab.h)
      barn[0] += kn.barn.hits;
      barn[1] += kn.barn.misses;
      barn[2] += kn.barn.overflows;
      barn[3] += kn.barn.grows;
    }
  }
  w.printf("slabs_allocated %lu\nslabs_freed %lu\nslab_remote_free %lu\n",
           static_cast<unsigned long>(slabs_alloc), static_cast<unsigned long>(slabs_freed),
           static_cast<unsigned long>(remote));
  w.printf("sheaf_refill %lu\nsheaf_flush %lu\n", static_cast<unsigned long>(refills),
           static_cast<unsigned long>(flushes));
  w.printf("barn_hit %lu\nbarn_miss %lu\nbarn_overflow %lu\nbarn_grow %lu\n",
           static_cast<unsigned long>(barn[0]), static_cast<unsigned long>(barn[1]),
           static_cast<unsigned long>(barn[2]), static_cast<unsigned long>(barn[3]));
  w.printf("direct_reclaim %lu\n",
           static_cast<unsigned long>(g_kmem.direct_reclaims.load(std::memory_order_relaxed)));
  w.printf("fork_orphaned_locks %lu\n",
           static_cast<unsigned long>(g_fork_orphaned_locks.load(std::memory_order_relaxed)));
  ReentryStats rs = reentry_stats();
  w.printf("nested_alloc_mappings %lu\nnested_alloc_live %lu\nnested_free_deferred %lu\n",
           rs.blocks, rs.live, rs.deferred);
  std::size_t hc, hb;
  vmalloc_stats(&hc, &hb);
  w.printf("vmalloc_mappings %zu\nvmalloc_bytes %zu\nvmalloc_cached_bytes %zu\n", hc, hb,
           vmalloc_cache_bytes());
  std::uint64_t thp_maps;
  unsigned written;
  vmalloc_thp_stats(&thp_maps, &written);
  w.printf("vmalloc_thp %lu\nvmalloc_written_pct %u\n", static_cast<unsigned long>(thp_maps),
           written);
  return w.size();
}

}  // namespace numaslub
