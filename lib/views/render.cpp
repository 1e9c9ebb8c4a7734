// Text and JSON views of a published snapshot (render.h). The text layouts
// are those of lib/buddy/views.cpp, lib/slub/slabinfo.cpp and the
// NUMASLUB_STATS report, line for line: a change there is a change here
// (tests/views_test.cpp compares them).
#include "lib/views/render.h"

#include <cstring>

namespace numaslub::pub {

namespace {

using U = unsigned long;

void json_string(BufWriter& w, const char* s, std::size_t max) {
  w.putc('"');
  for (std::size_t i = 0; i < max && s[i]; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      w.putc('\\');
      w.putc(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      w.printf("\\u%04x", c);
    } else {
      w.putc(static_cast<char>(c));
    }
  }
  w.putc('"');
}

void json_array(BufWriter& w, const char* key, const std::uint64_t* v, unsigned n) {
  w.printf("\"%s\":[", key);
  for (unsigned i = 0; i < n; ++i) w.printf("%s%lu", i ? "," : "", static_cast<U>(v[i]));
  w.putc(']');
}

}  // namespace

unsigned view_from_name(const char* name) {
  if (std::strcmp(name, "buddyinfo") == 0) return kBuddyinfo;
  if (std::strcmp(name, "zoneinfo") == 0) return kZoneinfo;
  if (std::strcmp(name, "slabinfo") == 0) return kSlabinfo;
  if (std::strcmp(name, "vmstat") == 0) return kVmstat;
  if (std::strcmp(name, "all") == 0) return kAllViews;
  return 0;
}

void render_buddyinfo(const Snapshot& s, BufWriter& w) {
  for (unsigned n = 0; n < s.file->nr_nodes; ++n) {
    w.printf("Node %u, zone %8s ", n, "Normal");
    for (unsigned o = 0; o < kOrders; ++o)
      w.printf("%6zu ", static_cast<std::size_t>(s.zones[n].nr_free[o]));
    w.putc('\n');
  }
}

void render_zoneinfo(const Snapshot& s, BufWriter& w) {
  for (unsigned n = 0; n < s.file->nr_nodes; ++n) {
    const ZoneSnap& z = s.zones[n];
    w.printf("Node %u, zone %8s\n", n, "Normal");
    w.printf("  per-node stats\n");
    w.printf("      numa_hit       %lu\n", static_cast<U>(z.numa_hit));
    w.printf("      numa_miss      %lu\n", static_cast<U>(z.numa_miss));
    w.printf("      numa_fail      %lu\n", static_cast<U>(z.numa_fail));
    w.printf("      numa_remote_free %lu\n", static_cast<U>(z.remote_free));
    w.printf("  pages free     %lu\n", static_cast<U>(z.free_pages));
    w.printf("        min      %lu\n", static_cast<U>(z.wmark_min));
    w.printf("        low      %lu\n", static_cast<U>(z.wmark_low));
    w.printf("        high     %lu\n", static_cast<U>(z.wmark_high));
    w.printf("        spanned  %lu\n", static_cast<U>(z.spanned_pages));
    w.printf("        present  %lu\n", static_cast<U>(z.present_pages));
    w.printf("        managed  %lu\n", static_cast<U>(z.present_pages));
    w.printf("      nr_free_dirty  %lu\n", static_cast<U>(z.free_pages - z.clean_pages));
    w.printf("      nr_free_clean  %lu\n", static_cast<U>(z.clean_pages));
    w.printf("      nr_free_pcp    %lu\n", static_cast<U>(z.pcp_pages));
    w.printf("      nr_isolated    %lu\n", static_cast<U>(z.isolated_pages));
    w.printf("      nr_splits      %lu\n", static_cast<U>(z.splits));
    w.printf("      nr_merges      %lu\n", static_cast<U>(z.merges));
    w.printf("      nr_sections    %lu\n", static_cast<U>(z.sections_online));
    w.printf("      nr_grow_fail   %lu\n", static_cast<U>(z.grow_fail));
    w.printf("      nr_released    %lu\n", static_cast<U>(z.released));
    w.printf("      alloc_order   ");
    for (unsigned o = 0; o < kOrders; ++o) w.printf(" %lu", static_cast<U>(z.alloc[o]));
    w.printf("\n      free_order    ");
    for (unsigned o = 0; o < kOrders; ++o) w.printf(" %lu", static_cast<U>(z.freed[o]));
    w.printf("\n      clean_blocks  ");
    for (unsigned o = 0; o < kOrders; ++o) w.printf(" %lu", static_cast<U>(z.nr_clean[o]));
    w.printf("\n  pagesets\n");
    for (unsigned c = 0; c < s.file->nr_cpus; ++c) {
      const PcpSnap& p = s.pcp_of(c, n);
      w.printf("    cpu: %u\n", c);
      w.printf("              count: %u\n", p.count);
      w.printf("              high:  %u\n", p.high);
      w.printf("              batch: %u\n", p.batch);
      w.printf("              hits:  %lu\n", static_cast<U>(p.hits));
    }
    w.printf("  node_phys:           %u\n", z.phys_node);
    char pol[kPolicyLen + 1];
    std::memcpy(pol, s.head->policy, kPolicyLen);
    pol[kPolicyLen] = '\0';
    w.printf("  mempolicy:           %s%s\n", pol, z.allowed ? "" : " (excluded)");
    w.printf("  start_pfn:           %lu\n", static_cast<U>(z.start_pfn));
  }
}

void render_slabinfo(const Snapshot& s, BufWriter& w) {
  w.put("slabinfo - version: 2.1\n");
  w.put(
      "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
      " : tunables <limit> <batchcount> <sharedfactor>"
      " : slabdata <active_slabs> <num_slabs> <sharedavail>\n");
  if (!(s.head->flags & kSnapSlubReady)) return;
  for (unsigned cls = s.file->nr_classes; cls-- > 0;) {
    const CacheSnap& c = s.caches[cls];
    const CacheNodeSnap& t = c.total;
    char name[sizeof c.name + 1];
    std::memcpy(name, c.name, sizeof c.name);
    name[sizeof c.name] = '\0';
    w.printf("%-17s %6lu %6lu %6u %4u %4u : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu\n", name,
             static_cast<U>(t.inuse), static_cast<U>(t.slabs * c.objects), c.size, c.objects,
             1u << c.order, c.sheaf_capacity, c.sheaf_capacity, c.barn_max_full,
             static_cast<U>(t.slabs - t.partial), static_cast<U>(t.slabs),
             static_cast<U>(t.full_sheaves));
  }
  w.printf("# vmalloc mappings: %lu, %lu KiB\n", static_cast<U>(s.head->vmalloc_count),
           static_cast<U>(s.head->vmalloc_bytes >> 10));
}

void render_vmstat(const Snapshot& s, BufWriter& w) {
  for (unsigned i = 0; i < s.head->nr_vmstat; ++i) {
    char name[kStatNameLen + 1];
    std::memcpy(name, s.vmstat[i].name, kStatNameLen);
    name[kStatNameLen] = '\0';
    w.printf("%s %lu\n", name, static_cast<U>(s.vmstat[i].value));
  }
}

void render_views(const Snapshot& s, unsigned views, BufWriter& w) {
  struct {
    unsigned bit;
    const char* title;
    void (*fn)(const Snapshot&, BufWriter&);
  } const all[] = {{kBuddyinfo, "buddyinfo", render_buddyinfo},
                   {kZoneinfo, "zoneinfo", render_zoneinfo},
                   {kSlabinfo, "slabinfo", render_slabinfo},
                   {kVmstat, "vmstat", render_vmstat}};
  bool several = (views & (views - 1)) != 0;
  for (const auto& v : all) {
    if (!(views & v.bit)) continue;
    if (several) w.printf("== %s ==\n", v.title);
    v.fn(s, w);
  }
}

HeapSummary heap_summary(const Snapshot& s) {
  HeapSummary h;
  for (unsigned n = 0; n < s.file->nr_nodes; ++n) {
    const ZoneSnap& z = s.zones[n];
    std::uint64_t free = z.free_pages + z.pcp_pages;
    std::uint64_t released = z.clean_pages + z.lazy_pages;
    h.present += z.present_pages << 12;
    h.used += (z.present_pages > free ? z.present_pages - free : 0) << 12;
    h.released += released << 12;
    h.cached += (free > released ? free - released : 0) << 12;
  }
  h.vmalloc = s.head->vmalloc_bytes;
  h.resident = h.used + h.cached + h.vmalloc;
  return h;
}

void render_json(const Snapshot& s, unsigned views, BufWriter& w) {
  const FileHeader& f = *s.file;
  const SnapHeader& h = *s.head;
  w.printf("{\"pid\":%d,\"uid\":%u,\"comm\":", f.pid, f.uid);
  json_string(w, f.comm, sizeof f.comm);
  w.put(",\"cmdline\":");
  json_string(w, f.cmdline, sizeof f.cmdline);
  w.printf(",\"start_time\":%lu,\"seq\":%lu,\"age_ms\":%lu,\"snapshot_realtime_ns\":%lu",
           static_cast<U>(f.start_time), static_cast<U>(h.seq), static_cast<U>(s.age_ns / 1000000),
           static_cast<U>(h.real_ns));
  w.printf(",\"collect_ns\":%lu,\"publish_ms\":%u,\"nodes\":%u,\"cpus\":%u,\"percpu\":\"%s\"",
           static_cast<U>(h.collect_ns), f.publish_ms, f.nr_nodes, f.nr_cpus,
           (h.flags & kSnapRseq) ? "rseq" : "thread");
  w.put(",\"policy\":");
  json_string(w, h.policy, sizeof h.policy);
  HeapSummary hs = heap_summary(s);
  w.printf(
      ",\"heap\":{\"present_bytes\":%lu,\"used_bytes\":%lu,\"cached_bytes\":%lu,"
      "\"released_bytes\":%lu,\"resident_bytes\":%lu,\"vmalloc_mappings\":%lu,\"vmalloc_bytes\":%lu}",
      static_cast<U>(hs.present), static_cast<U>(hs.used), static_cast<U>(hs.cached),
      static_cast<U>(hs.released), static_cast<U>(hs.resident), static_cast<U>(h.vmalloc_count),
      static_cast<U>(h.vmalloc_bytes));
  if (views & kBuddyinfo) {
    w.put(",\"buddyinfo\":[");
    for (unsigned n = 0; n < f.nr_nodes; ++n) {
      w.printf("%s{\"node\":%u,\"zone\":\"Normal\",", n ? "," : "", n);
      json_array(w, "free", s.zones[n].nr_free, kOrders);
      w.putc('}');
    }
    w.putc(']');
  }
  if (views & kZoneinfo) {
    w.put(",\"zoneinfo\":[");
    for (unsigned n = 0; n < f.nr_nodes; ++n) {
      const ZoneSnap& z = s.zones[n];
      w.printf("%s{\"node\":%u,\"phys_node\":%u,\"allowed\":%s,\"kswapd\":%s", n ? "," : "", n,
               z.phys_node, z.allowed ? "true" : "false", z.kswapd_running ? "true" : "false");
      const struct {
        const char* k;
        std::uint64_t v;
      } f64[] = {{"numa_hit", z.numa_hit},
                 {"numa_miss", z.numa_miss},
                 {"numa_fail", z.numa_fail},
                 {"numa_remote_free", z.remote_free},
                 {"free", z.free_pages},
                 {"min", z.wmark_min},
                 {"low", z.wmark_low},
                 {"high", z.wmark_high},
                 {"spanned", z.spanned_pages},
                 {"present", z.present_pages},
                 {"nr_free_dirty", z.free_pages - z.clean_pages},
                 {"nr_free_clean", z.clean_pages},
                 {"nr_free_lazy", z.lazy_pages},
                 {"nr_free_pcp", z.pcp_pages},
                 {"nr_isolated", z.isolated_pages},
                 {"nr_splits", z.splits},
                 {"nr_merges", z.merges},
                 {"nr_sections", z.sections_online},
                 {"nr_grow", z.grow},
                 {"nr_grow_fail", z.grow_fail},
                 {"nr_released", z.released},
                 {"start_pfn", z.start_pfn}};
      for (const auto& e : f64) w.printf(",\"%s\":%lu", e.k, static_cast<U>(e.v));
      w.putc(',');
      json_array(w, "alloc_order", z.alloc, kOrders);
      w.putc(',');
      json_array(w, "free_order", z.freed, kOrders);
      w.putc(',');
      json_array(w, "clean_blocks", z.nr_clean, kOrders);
      w.put(",\"pagesets\":[");
      for (unsigned c = 0; c < f.nr_cpus; ++c) {
        const PcpSnap& p = s.pcp_of(c, n);
        w.printf("%s{\"cpu\":%u,\"count\":%u,\"high\":%u,\"batch\":%u,\"hits\":%lu}", c ? "," : "",
                 c, p.count, p.high, p.batch, static_cast<U>(p.hits));
      }
      w.put("]}");
    }
    w.putc(']');
  }
  if (views & kSlabinfo) {
    w.put(",\"slabinfo\":[");
    bool first = true;
    for (unsigned cls = 0; (h.flags & kSnapSlubReady) && cls < f.nr_classes; ++cls) {
      const CacheSnap& c = s.caches[cls];
      const CacheNodeSnap& t = c.total;
      w.put(first ? "{\"name\":" : ",{\"name\":");
      first = false;
      json_string(w, c.name, sizeof c.name);
      w.printf(
          ",\"active_objs\":%lu,\"num_objs\":%lu,\"objsize\":%u,\"objperslab\":%u,"
          "\"pagesperslab\":%u,\"limit\":%u,\"batchcount\":%u,\"sharedfactor\":%u,"
          "\"active_slabs\":%lu,\"num_slabs\":%lu,\"sharedavail\":%lu,\"min_partial\":%u",
          static_cast<U>(t.inuse), static_cast<U>(t.slabs * c.objects), c.size, c.objects,
          1u << c.order, c.sheaf_capacity, c.sheaf_capacity, c.barn_max_full,
          static_cast<U>(t.slabs - t.partial), static_cast<U>(t.slabs),
          static_cast<U>(t.full_sheaves), c.min_partial);
      w.printf(
          ",\"sheaf_refills\":%lu,\"sheaf_flushes\":%lu,\"remote_frees\":%lu,"
          "\"slabs_allocated\":%lu,\"slabs_freed\":%lu,\"nodes\":[",
          static_cast<U>(c.refills), static_cast<U>(c.flushes), static_cast<U>(t.remote_frees),
          static_cast<U>(t.slabs_allocated), static_cast<U>(t.slabs_freed));
      for (unsigned n = 0; n < f.nr_nodes; ++n) {
        const CacheNodeSnap& p = s.node_of(cls, n);
        w.printf(
            "%s{\"node\":%u,\"active_objs\":%lu,\"num_slabs\":%lu,\"partial_slabs\":%lu,"
            "\"full_sheaves\":%lu,\"remote_frees\":%lu,\"slabs_allocated\":%lu,"
            "\"slabs_freed\":%lu}",
            n ? "," : "", n, static_cast<U>(p.inuse), static_cast<U>(p.slabs),
            static_cast<U>(p.partial), static_cast<U>(p.full_sheaves),
            static_cast<U>(p.remote_frees), static_cast<U>(p.slabs_allocated),
            static_cast<U>(p.slabs_freed));
      }
      w.put("]}");
    }
    w.put("]");
  }
  if (views & kVmstat) {
    w.put(",\"vmstat\":{");
    for (unsigned i = 0; i < h.nr_vmstat; ++i) {
      w.put(i ? "," : "");
      json_string(w, s.vmstat[i].name, kStatNameLen);
      w.printf(":%lu", static_cast<U>(s.vmstat[i].value));
    }
    w.putc('}');
  }
  w.put("}\n");
}

}  // namespace numaslub::pub
