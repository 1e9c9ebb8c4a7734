// Memory pressure, as the kernel reports it: the host's PSI
// (/proc/pressure/memory, "some avg10") and the process's memory cgroup and
// its ancestors (where a container's limit is often set): in cgroup v2 its
// own PSI (memory.pressure) and memory.current against memory.high /
// memory.max; in cgroup v1 memory.usage_in_bytes against
// memory.limit_in_bytes. So a process in a memory-limited container returns
// its cached memory before the cgroup's OOM killer picks it. Reclaim asks
// this on each pass; tests replace the source with their own.
#pragma once

#include <cstdint>

namespace numaslub {

using PressureFn = bool (*)();

// True when the system or our cgroup is short of memory: PSI some avg10
// (host or cgroup v2) above `psi_threshold` percent, or a cgroup's usage
// above 90% of its limit.
bool pressure_from_kernel();

// Parsers, exposed for tests. Return false when the text is not understood.
bool parse_psi_some_avg10(const char* text, double* avg10);
bool parse_cgroup_v2_path(const char* proc_self_cgroup, char* out, unsigned cap);
bool parse_cgroup_v1_memory_path(const char* proc_self_cgroup, char* out, unsigned cap);

// The source reclaim uses (default: pressure_from_kernel).
void reclaim_set_pressure_source(PressureFn fn);
PressureFn reclaim_pressure_source();

}  // namespace numaslub
