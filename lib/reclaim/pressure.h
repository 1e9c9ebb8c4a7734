// Memory pressure, as the kernel reports it: PSI (/proc/pressure/memory,
// "some avg10") and, inside a cgroup v2, memory.current against
// memory.high / memory.max. Reclaim asks this on each pass; tests replace
// the source with their own.
#pragma once

#include <cstdint>

namespace numaslub {

using PressureFn = bool (*)();

// True when the system or our cgroup is short of memory: PSI some avg10
// above `psi_threshold` percent, or cgroup usage above 90% of its limit.
bool pressure_from_kernel();

// Parsers, exposed for tests. Return false when the text is not understood.
bool parse_psi_some_avg10(const char* text, double* avg10);
bool parse_cgroup_v2_path(const char* proc_self_cgroup, char* out, unsigned cap);

// The source reclaim uses (default: pressure_from_kernel).
void reclaim_set_pressure_source(PressureFn fn);
PressureFn reclaim_pressure_source();

}  // namespace numaslub
