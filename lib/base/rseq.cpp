#include "lib/base/rseq.h"

#include <atomic>
#include <cstddef>

#include "lib/base/syscall.h"
#include "lib/base/sysfs.h"
#include "lib/base/vdso.h"

// glibc >= 2.35 exports these; weak so older libcs and static links work.
extern "C" {
extern const std::ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));
}

namespace numaslub {
namespace {

constinit std::atomic<RseqOwner> g_owner{RseqOwner::kNone};
constinit std::atomic<bool> g_owner_decided{false};

// Our own area, used only when glibc registered none. cpu_id ==
// kRseqCpuUninit marks "not yet registered in this thread", -2
// "registration failed". cpu_id_start starts at kMaxCpus, an index whose
// per-CPU sheaves are never set up, so a fast path run before registration
// always falls into the slow path (which registers).
thread_local RseqAbi t_own_area NS_TLS_IE = {kMaxCpus, kRseqCpuUninit, 0, 0, 0, 0, 0};

RseqOwner decide_owner() {
  if (g_owner_decided.load(std::memory_order_acquire))
    return g_owner.load(std::memory_order_relaxed);
  RseqOwner o = RseqOwner::kOwn;
  if (&__rseq_size != nullptr && &__rseq_offset != nullptr && __rseq_size != 0)
    o = RseqOwner::kGlibc;
  g_owner.store(o, std::memory_order_relaxed);
  g_owner_decided.store(true, std::memory_order_release);
  return o;
}

RseqAbi* glibc_area() {
  return reinterpret_cast<RseqAbi*>(static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset);
}

}  // namespace

RseqOwner rseq_owner() {
  return decide_owner();
}

std::ptrdiff_t rseq_offset() {
  if (decide_owner() == RseqOwner::kGlibc) return __rseq_offset;
  // Initial-exec TLS sits at the same offset from every thread's pointer.
  return reinterpret_cast<char*>(&t_own_area) - static_cast<char*>(__builtin_thread_pointer());
}

RseqAbi* rseq_area() {
  if (decide_owner() == RseqOwner::kGlibc) {
    RseqAbi* a = glibc_area();
    return static_cast<std::int32_t>(a->cpu_id) >= 0 ? a : nullptr;
  }
  RseqAbi* a = &t_own_area;
  if (NS_UNLIKELY(a->cpu_id == kRseqCpuUninit)) {
    long r = sys::call(SYS_rseq, a, sizeof(RseqAbi), 0, kRseqSignal);
    // EBUSY: something else registered for this thread after we decided
    // (cannot be glibc); treat as unavailable rather than guess its area.
    if (r != 0) a->cpu_id = static_cast<std::uint32_t>(-2);
  }
  return static_cast<std::int32_t>(a->cpu_id) >= 0 ? a : nullptr;
}

void rseq_mark_unregistered(void* tp) {
  auto* a = reinterpret_cast<RseqAbi*>(static_cast<char*>(tp) + rseq_offset());
  a->cpu_id_start = kMaxCpus;
  a->cpu_id = static_cast<std::uint32_t>(-2);
}

int current_cpu() {
  if (NS_LIKELY(g_owner.load(std::memory_order_relaxed) == RseqOwner::kGlibc)) {
    auto cpu = static_cast<std::int32_t>(glibc_area()->cpu_id);
    if (NS_LIKELY(cpu >= 0)) return cpu;
  } else if (RseqAbi* a = rseq_area()) {
    return static_cast<int>(a->cpu_id);
  }
  return cpu_without_rseq();
}

int cpu_without_rseq() {
  unsigned cpu = 0;
  if (VdsoGetcpuFn f = vdso_getcpu(); f && f(&cpu, nullptr, nullptr) == 0)
    return static_cast<int>(cpu);
  if (sys::getcpu(&cpu, nullptr) != 0) return 0;
  return static_cast<int>(cpu);
}

unsigned possible_cpus() {
  static std::atomic<unsigned> cached{0};
  unsigned n = cached.load(std::memory_order_relaxed);
  if (n) return n;
  char buf[256];
  CpuMask m;
  if (read_text_file("/sys/devices/system/cpu/possible", buf, sizeof buf) > 0 &&
      parse_list(buf, &m) && !m.empty()) {
    for (unsigned i = 0; i < kMaxCpus; ++i)
      if (m.test(i)) n = i + 1;
  } else {
    n = kernel_cpus();
  }
  cached.store(n, std::memory_order_relaxed);
  return n;
}

unsigned kernel_cpus() {
  unsigned long mask[kMaxCpus / 64] = {};
  unsigned n = 1;
  // Returns the bytes written (the kernel's mask size, at most ours), or
  // -EINVAL when the kernel has more than kMaxCpus CPU ids.
  long r = sys::call(SYS_sched_getaffinity, 0, sizeof mask, mask);
  if (r == -22) return kMaxCpus;
  for (unsigned i = 0; r > 0 && i < kMaxCpus; ++i)
    if (mask[i / 64] >> (i % 64) & 1) n = i + 1;
  unsigned cpu = 0;
  if (sys::getcpu(&cpu, nullptr) == 0 && cpu >= n) n = cpu < kMaxCpus ? cpu + 1 : kMaxCpus;
  return n;
}

}  // namespace numaslub
