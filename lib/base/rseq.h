// Restartable sequences: where this thread's rseq area is and which CPU it
// runs on.
//
// Invariants (DESIGN rule 4):
// - glibc >= 2.35 registers an rseq area for every thread; a second
//   registration fails with EBUSY. We adopt glibc's area: thread pointer +
//   __rseq_offset, when __rseq_size != 0.
// - Where glibc did not register (old glibc, tunable glibc.pthread.rseq=0, a
//   static binary whose libc lacks rseq), each thread registers our own
//   32-byte area on first use, kept in initial-exec TLS.
// - Only fields of the original ABI (cpu_id_start, cpu_id, rseq_cs) are read.
//   cpu_id is negative while unregistered (-1) or after a failed
//   registration (-2): callers then fall back to getcpu.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/base/compiler.h"

namespace numaslub {

struct alignas(32) RseqAbi {
  std::uint32_t cpu_id_start;
  std::uint32_t cpu_id;
  std::uint64_t rseq_cs;
  std::uint32_t flags;
  std::uint32_t node_id;  // only where the registered size covers it (Linux 6.3+)
  std::uint32_t mm_cid;
  std::uint32_t pad;
};

inline constexpr std::uint32_t kRseqSignal = 0x53053053;
inline constexpr std::uint32_t kRseqCpuUninit = static_cast<std::uint32_t>(-1);

enum class RseqOwner : std::uint8_t { kNone, kGlibc, kOwn };

// Which area the process uses; decided once, on first call.
RseqOwner rseq_owner();

// Offset of every thread's rseq area from its thread pointer.
std::ptrdiff_t rseq_offset();

// This thread's registered area, registering our own first if needed; null
// where rseq is unavailable (old kernel, valgrind).
RseqAbi* rseq_area();

// For a thread started without the C library (raw_thread.h): writes "not
// registered" (cpu_id_start kMaxCpus, cpu_id -2) into the rseq area at the
// process's offset from the thread pointer tp, so rseq_area() there is null.
// The bytes [tp + rseq_offset(), +32) must be writable.
void rseq_mark_unregistered(void* tp);

// CPU the calling thread runs on (a hint: it may migrate right after).
// Reads the rseq area where there is one, else cpu_without_rseq().
int current_cpu();
// The same from the vDSO's getcpu (no system call), else the getcpu
// system call (valgrind hides the vDSO; arm64's has no getcpu).
int cpu_without_rseq();

// Number of possible CPUs (/sys/devices/system/cpu/possible), capped at
// kMaxCpus; where sysfs cannot be read (chroot, minimal container, a tmpfs
// over /sys), kernel_cpus().
unsigned possible_cpus();

// What the kernel itself says without sysfs: one past the highest CPU in
// the calling thread's affinity mask or the CPU it runs on, capped at
// kMaxCpus. A lower bound only (a thread may widen its affinity later, and
// CPU ids may exceed kMaxCpus): size tables with it that grow on demand or
// send ids beyond them to a shared slow path, never bound a CPU id with it.
unsigned kernel_cpus();

}  // namespace numaslub
