// The slub layer's half of a fork child's repair (DESIGN rule 5).
//
// fork takes no allocator lock (lib/base/lock.h says why), so the child
// finds every lock as it was at the fork. A lock the child's own thread
// held (a signal handler forked while its frame was inside the allocator)
// stays held: that frame finishes its update and releases it after the
// handler returns. A lock held by a thread that did not survive the fork is
// freed, and what it guarded is made consistent again, losing at most the
// objects that thread had in flight (they stay allocated: a leak in the
// child, never an object handed out twice):
// - a CPU's sheaf set: `spare` may be mid-flush or the same sheaf as main
//   (main is committed first by rseq): every spare is dropped;
// - a barn: its lists are valid after any prefix of a push or pop (one link
//   store, one head store), only the counts may be off: recounted;
// - a node's partial list and its slabs' freelists: rebuilt from the page
//   descriptors (KmemCache::fork_reset_node / fork_adopt_slab);
// - the set-up and thread-pool locks: the pool list is valid after any
//   prefix, and a half-done set-up was never published (g_ready).
// The free tags (kmalloc.h) stay valid: they are descriptor addresses, the
// same in the child. Each cache draws a new freelist secret for the slabs
// the child cuts from now on (KmemCache::renew_secret), so a secret leaked
// by the parent, or by a sibling, does not open the child's new slabs. The
// parent's slabs keep theirs: every free object's next pointer is encoded
// with it, and re-encoding would copy-on-write the heap's free memory into
// the child. (After 15 generations of forks, new slabs keep the last one.)
#include "lib/base/base.h"
#include "lib/slub/debug.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/slab.h"
#include "lib/slub/slub_internal.h"

namespace numaslub {

namespace {

void recount_barn(Barn& b) {
  b.nr_full = b.nr_empty = 0;
  for (Sheaf* s = b.full; s; s = s->next) ++b.nr_full;
  for (Sheaf* s = b.empty; s; s = s->next) ++b.nr_empty;
}

// Walks node nid's online pages and hands every slab of a marked cache to
// its fork_adopt_slab.
void rebuild_partial_lists(unsigned nid, const bool* marked) {
  const Arena& a = g_kmem.pa->arena();
  const NodeRange& r = a.node(nid);
  std::size_t end = r.pfn_start + r.online_pages.load(std::memory_order_acquire);
  for (std::size_t pfn = r.pfn_start; pfn < end;) {
    Page* p = a.pfn_to_page(pfn);
    if ((p->flags & (PG_head | PG_slab)) == (PG_head | PG_slab) && p->slab_class > 0 &&
        p->slab_class <= kNrClasses && marked[p->slab_class - 1]) {
      KmemCache& c = g_kmem.caches[p->slab_class - 1];
      c.fork_adopt_slab(nid, reinterpret_cast<Slab*>(p));
      pfn += std::size_t{1} << c.order;
    } else {
      ++pfn;
    }
  }
}

}  // namespace

void slub_fork_child(std::uint32_t self) {
  slub_init_lock().reset_if_orphaned(self);
  slub_thread_pool_lock().reset_if_orphaned(self);
  if (!slub_ready()) return;
  debug_fork_child(self);
  if (g_fastpath.mode == CacheMode::kRseq)
    for (unsigned cpu = 0, n = __atomic_load_n(&g_fastpath.nr_cpu_sheaves, __ATOMIC_ACQUIRE);
         cpu < n; ++cpu) {
      PercpuSheaves* cs = cpu_sheaves(cpu);
      if (cs->lock.reset_if_orphaned(self))
        for (SheafSlot& sl : cs->slots) sl.spare = nullptr;
    }
  // Only this thread runs here: no slab is being cut while the generation
  // moves. One getrandom per fork, not one per cache: the caches' secrets
  // are a splitmix64 sequence from it (independent enough, and none tells
  // the seed or a sibling cache's secret without inverting the mixer).
  std::uint64_t seed = random_secret();
  for (KmemCache& c : g_kmem.caches) {
    std::uint64_t z = (seed += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    c.renew_secret((z ^ (z >> 31)) | 1);
  }
  unsigned nodes = g_kmem.pa->nr_nodes();
  for (unsigned nid = 0; nid < nodes; ++nid) {
    bool marked[kNrClasses] = {};
    bool any = false;
    for (unsigned cls = 0; cls < kNrClasses; ++cls) {
      KmemCacheNode& nd = g_kmem.caches[cls].node[nid];
      if (nd.barn.lock.reset_if_orphaned(self)) recount_barn(nd.barn);
      if (nd.list_lock.reset_if_orphaned(self)) {
        g_kmem.caches[cls].fork_reset_node(nid);
        marked[cls] = any = true;
      }
    }
    if (any) rebuild_partial_lists(nid, marked);
  }
}

}  // namespace numaslub
