// Taking a snapshot of the live allocator into the published format.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/views/publish.h"
#include "lib/views/snapshot.h"

namespace numaslub {

// The counts a file's layout is built from, for this process (nr_cpus is 0
// without per-CPU page lists). False when the heap is not set up.
bool snapshot_shape(std::uint32_t* nr_nodes, std::uint32_t* nr_cpus, std::uint32_t* nr_classes);

// Fills the snapshot copy `copy` (layout l, for the counts snapshot_shape
// gave) from the allocator, taking its locks one at a time as the
// in-process views do. `text` is scratch space for the vmstat lines
// (vmstat_text, or the default when null). Sets every SnapHeader field but
// seq and checksum. Never allocates; the caller holds no allocator lock.
void collect_snapshot(void* copy, const pub::Layout& l, std::uint32_t nr_nodes,
                      std::uint32_t nr_cpus, std::uint32_t nr_classes, char* text,
                      std::size_t text_cap, VmstatTextFn vmstat_text);

// Parses "name value" lines into at most max counters; other lines are
// skipped. Returns how many were stored.
unsigned parse_vmstat_lines(const char* text, pub::StatSnap* out, unsigned max);

}  // namespace numaslub
