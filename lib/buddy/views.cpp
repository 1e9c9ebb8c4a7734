// /proc/buddyinfo and /proc/zoneinfo for the process's heap, in the kernel's
// column layout, so the kernel's tools and habits carry over.
#include "lib/base/base.h"
#include "lib/buddy/page_alloc.h"

namespace numaslub {

std::size_t PageAllocator::buddyinfo(char* buf, std::size_t cap) {
  BufWriter w(buf, cap);
  for (unsigned n = 0; n < nr_nodes(); ++n) {
    Zone& z = zones_[n];
    std::size_t counts[kNrOrders];
    {
      LockGuard<Mutex> g(z.lock);
      for (unsigned o = 0; o < kNrOrders; ++o) counts[o] = z.free_area[o].nr_free;
    }
    w.printf("Node %u, zone %8s ", n, "Normal");
    for (unsigned o = 0; o < kNrOrders; ++o) w.printf("%6zu ", counts[o]);
    w.putc('\n');
  }
  return w.size();
}

std::size_t PageAllocator::zoneinfo(char* buf, std::size_t cap) {
  BufWriter w(buf, cap);
  for (unsigned n = 0; n < nr_nodes(); ++n) {
    Zone& z = zones_[n];
    const NodeRange& r = arena_.node(n);
    std::size_t free, clean, isolated, present, spanned, wmin, wlow, whigh, nr_clean[kNrOrders];
    ZoneStats st;
    {
      LockGuard<Mutex> g(z.lock);
      free = z.free_pages;
      clean = z.clean_pages;
      isolated = z.isolated_pages;
      present = z.present_pages;
      spanned = z.spanned_pages;
      wmin = z.wmark_min;
      wlow = z.wmark_low;
      whigh = z.wmark_high;
      st = z.stats;
      for (unsigned o = 0; o < kNrOrders; ++o) nr_clean[o] = z.free_area[o].nr_clean;
    }
    std::size_t pcp_pages = 0;
    for (unsigned c = 0; pcp_ && c < nr_cpus_; ++c) pcp_pages += pcp(c, n)->pages();
    w.printf("Node %u, zone %8s\n", n, "Normal");
    w.printf("  per-node stats\n");
    w.printf("      numa_hit       %lu\n", static_cast<unsigned long>(node_stats_[n].alloc_local));
    w.printf("      numa_miss      %lu\n",
             static_cast<unsigned long>(node_stats_[n].alloc_fallback));
    w.printf("      numa_fail      %lu\n", static_cast<unsigned long>(node_stats_[n].alloc_fail));
    w.printf(
        "      numa_remote_free %lu\n",
        static_cast<unsigned long>(node_stats_[n].remote_free.load(std::memory_order_relaxed)));
    w.printf("  pages free     %zu\n", free);
    w.printf("        min      %zu\n", wmin);
    w.printf("        low      %zu\n", wlow);
    w.printf("        high     %zu\n", whigh);
    w.printf("        spanned  %zu\n", spanned);
    w.printf("        present  %zu\n", present);
    w.printf("        managed  %zu\n", present);
    w.printf("      nr_free_dirty  %zu\n", free - clean);
    w.printf("      nr_free_clean  %zu\n", clean);
    w.printf("      nr_free_pcp    %zu\n", pcp_pages);
    w.printf("      nr_isolated    %zu\n", isolated);
    w.printf("      nr_splits      %lu\n", static_cast<unsigned long>(st.splits));
    w.printf("      nr_merges      %lu\n", static_cast<unsigned long>(st.merges));
    w.printf("      nr_sections    %lu\n", static_cast<unsigned long>(r.sections_online));
    w.printf("      nr_grow_fail   %lu\n", static_cast<unsigned long>(st.grow_fail));
    w.printf("      nr_released    %lu\n", static_cast<unsigned long>(st.released));
    w.printf("      alloc_order   ");
    for (unsigned o = 0; o < kNrOrders; ++o)
      w.printf(" %lu", static_cast<unsigned long>(st.alloc[o]));
    w.printf("\n      free_order    ");
    for (unsigned o = 0; o < kNrOrders; ++o)
      w.printf(" %lu", static_cast<unsigned long>(st.free[o]));
    w.printf("\n      clean_blocks  ");
    for (unsigned o = 0; o < kNrOrders; ++o) w.printf(" %zu", nr_clean[o]);
    w.printf("\n  pagesets\n");
    for (unsigned c = 0; pcp_ && c < nr_cpus_; ++c) {
      PerCpuPages* p = pcp(c, n);
      w.printf("    cpu: %u\n", c);
      w.printf("              count: %zu\n", p->pages());
      w.printf("              high:  %u\n", p->high);
      w.printf("              batch: %u\n", p->batch);
      w.printf("              hits:  %lu\n", static_cast<unsigned long>(p->hits));
    }
    w.printf("  node_phys:           %u\n", r.phys_node);
    char pol[96];
    arena_.policy().describe(pol, sizeof pol);
    w.printf("  mempolicy:           %s%s\n", pol, arena_.policy().allows(n) ? "" : " (excluded)");
    w.printf("  start_pfn:           %zu\n", static_cast<std::size_t>(r.base >> kPageShift));
  }
  return w.size();
}

}  // namespace numaslub
