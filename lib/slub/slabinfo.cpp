// /proc/slabinfo (version 2.1 layout) for the kmalloc caches. The
// "tunables" columns show the sheaf capacity (limit and batchcount) and the
// barn's full-sheaf limit (sharedfactor).
#include "lib/base/format.h"
#include "lib/slub/huge.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/slub_internal.h"

namespace numaslub {

std::size_t slabinfo(char* buf, std::size_t cap) {
  BufWriter w(buf, cap);
  w.put("slabinfo - version: 2.1\n");
  w.put(
      "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
      " : tunables <limit> <batchcount> <sharedfactor>"
      " : slabdata <active_slabs> <num_slabs> <sharedavail>\n");
  if (!g_state.pa) return w.size();
  for (unsigned cls = kNrClasses; cls-- > 0;) {
    KmemCache& c = g_state.caches[cls];
    std::size_t inuse = 0, slabs = 0, partial = 0, full_sheaves = 0;
    for (unsigned nid = 0; nid < g_state.pa->nr_nodes(); ++nid) {
      KmemCacheNode& n = c.node[nid];
      {
        LockGuard<Mutex> g(n.list_lock);
        inuse += n.inuse;
        slabs += n.nr_slabs;
        partial += n.nr_partial;
      }
      LockGuard<Mutex> g(n.barn.lock);
      full_sheaves += n.barn.nr_full;
    }
    w.printf("%-17s %6zu %6zu %6u %4u %4u : tunables %4u %4u %4u : slabdata %6zu %6zu %6zu\n",
             c.name, inuse, slabs * c.objects, c.size, c.objects, 1u << c.order, c.sheaf_capacity,
             c.sheaf_capacity, c.barn_max_full, slabs - partial, slabs, full_sheaves);
  }
  std::size_t n, bytes;
  huge_stats(&n, &bytes);
  w.printf("# huge mappings: %zu, %zu KiB\n", n, bytes >> 10);
  return w.size();
}

}  // namespace numaslub
