// Huge pages for direct mappings (thp=): see vmalloc_thp.h.
#include "lib/slub/vmalloc_thp.h"

#include <atomic>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"
#include "lib/slub/vmalloc.h"

namespace numaslub {

// A mapping is a block the program asked for whole, but whether it writes
// all of it is the program's business: a huge page over a sparse one makes
// all of it resident (the guide's rule: MADV_HUGEPAGE only where memory is
// densely used). So thp=auto measures: a mapping made without advice is
// sampled at its free (mincore: the pages the program wrote). Once
// thp_dense % of the sampled pages (at least kSampleMinPages of them) were
// written, new mappings start on a 2 MiB boundary and are advised
// MADV_HUGEPAGE before any page is touched, except one in kProbeEvery,
// made plain so that the measure goes on (an advised mapping's pages are
// resident in 2 MiB units and tell nothing). The sample decays: it is
// halved past kSampleMaxPages. thp=always advises every mapping, thp=never
// none. Measured on `large` (blocks of 64 KiB..16 MiB, every page
// written): 80k page faults down to 10k, 0.26 s down to 0.085 s (jemalloc,
// no huge pages: 0.235 s), peak RSS the same.

namespace {

constexpr unsigned kProbeEvery = 8;
constexpr std::size_t kSampleMinPages = std::size_t{16} << (20 - kPageShift);  // 16 MiB
constexpr std::size_t kSampleMaxPages = std::size_t{256} << (20 - kPageShift);
// A measure, not an account: updated without a lock, so concurrent frees
// may lose part of a sample or of a halving; relaxed atomics, since
// nothing else is published through them (and a fork child has no lock
// to find held).
constinit std::atomic<std::size_t> g_sampled{0};  // pages of plain mappings measured
constinit std::atomic<std::size_t> g_written{0};  // of those, pages the program wrote
constinit std::atomic<unsigned> g_made_dense{0};  // mappings made while dense, probes counted
constinit std::atomic<std::uint64_t> g_thp_advised{0};
constexpr auto kRelaxed = std::memory_order_relaxed;

ThpMode thp_mode() {
  PageAllocator* pa = page_allocator_if_ready();
  return pa ? pa->thp() : ThpMode::kNever;  // kNever also where advice is impossible
}

bool dense() {
  std::size_t sampled = g_sampled.load(kRelaxed);
  return sampled >= kSampleMinPages &&
         g_written.load(kRelaxed) * 100 >= sampled * config().thp_dense;
}

}  // namespace

bool vmalloc_want_huge(std::size_t len) {
  if (len < kHugeMappingBytes) return false;
  switch (thp_mode()) {
    case ThpMode::kAlways:
      return true;
    case ThpMode::kNever:
      return false;
    case ThpMode::kAuto:
      break;
  }
  return dense() && (g_made_dense.fetch_add(1, kRelaxed) + 1) % kProbeEvery != 0;
}

// mincore, a vector on the stack at a time.
void vmalloc_sample_density(void* p, std::size_t len) {
  if (thp_mode() != ThpMode::kAuto) return;
  unsigned char vec[1024];
  std::size_t pages = len >> kPageShift, written = 0;
  for (std::size_t done = 0; done < pages;) {
    std::size_t n = pages - done < sizeof vec ? pages - done : sizeof vec;
    if (sys::call(SYS_mincore, static_cast<char*>(p) + (done << kPageShift), n << kPageShift,
                  vec) != 0)
      return;
    for (std::size_t i = 0; i < n; ++i) written += vec[i] & 1;
    done += n;
  }
  std::size_t sampled = g_sampled.fetch_add(pages, kRelaxed) + pages;
  g_written.fetch_add(written, kRelaxed);
  if (sampled > kSampleMaxPages) {
    g_sampled.store(sampled / 2, kRelaxed);
    g_written.store(g_written.load(kRelaxed) / 2, kRelaxed);
  }
}

void vmalloc_count_advised() {
  g_thp_advised.fetch_add(1, kRelaxed);
}

void vmalloc_thp_stats(std::uint64_t* advised, unsigned* written_pct) {
  *advised = g_thp_advised.load(kRelaxed);
  std::size_t sampled = g_sampled.load(kRelaxed), written = g_written.load(kRelaxed);
  *written_pct = sampled ? static_cast<unsigned>(written * 100 / sampled) : 0;
}

void vmalloc_thp_reset_for_test() {
  g_sampled.store(0, kRelaxed);
  g_written.store(0, kRelaxed);
  g_made_dense.store(0, kRelaxed);
}

}  // namespace numaslub
