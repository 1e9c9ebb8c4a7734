// The views of a published snapshot, as text in the same layouts as the
// in-process views (lib/buddy/views.cpp, lib/slub/slabinfo.cpp, the
// NUMASLUB_STATS report), and as JSON. A test checks that a quiescent
// process's published views and its in-process views are the same text.
#pragma once

#include <cstddef>

#include "lib/base/base.h"
#include "lib/views/snapshot.h"

namespace numaslub::pub {

enum View : unsigned {
  kBuddyinfo = 1,
  kZoneinfo = 2,
  kSlabinfo = 4,
  kVmstat = 8,
  kAllViews = 15,
};

// Parses a view name (buddyinfo, zoneinfo, slabinfo, vmstat, all); 0 if unknown.
unsigned view_from_name(const char* name);

void render_buddyinfo(const Snapshot& s, BufWriter& w);
void render_zoneinfo(const Snapshot& s, BufWriter& w);
void render_slabinfo(const Snapshot& s, BufWriter& w);
void render_vmstat(const Snapshot& s, BufWriter& w);

// One view as its text alone; several as the NUMASLUB_STATS report does,
// each under a "== name ==" line.
void render_views(const Snapshot& s, unsigned views, BufWriter& w);

// The views as one JSON object, with the process and snapshot identity
// (pid, comm, cmdline, seq, age_ms, ...).
void render_json(const Snapshot& s, unsigned views, BufWriter& w);

// Heap totals of a snapshot, in bytes.
struct HeapSummary {
  std::uint64_t present = 0;   // onlined heap
  std::uint64_t used = 0;      // allocated: present - free - per-CPU lists
  std::uint64_t cached = 0;    // free and resident (buddy dirty free + per-CPU lists)
  std::uint64_t released = 0;  // free and given back (clean, or lazily freed)
  std::uint64_t resident = 0;  // used + cached + direct mappings
  std::uint64_t vmalloc = 0;
};
HeapSummary heap_summary(const Snapshot& s);

}  // namespace numaslub::pub
