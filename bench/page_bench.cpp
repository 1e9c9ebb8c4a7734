// Page allocator micro-benchmarks: one alloc_pages + free_pages pair per
// iteration, so the reported time is nanoseconds per alloc+free pair.
//
//   Pcp/<order>   the process-wide page_allocator(), orders 0 and 3: the
//                 per-CPU list hit path (a free followed by an alloc on the
//                 same CPU pops what was just pushed).
//   Zone/<order>  a second allocator built with pcp=false: every pair takes
//                 the zone lock, splits on alloc and merges on free.
//   Max/10        the process-wide allocator, order 10 (4 MiB), which
//                 always bypasses the per-CPU lists.
//
// Each runs on 1 and 2 threads; with threads, the time is per pair and per
// thread (wall clock). Run: build/bench/page_bench
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "lib/base/config.h"
#include "lib/buddy/page_alloc.h"
#include "lib/numa/os_mem.h"
#include "lib/numa/topology.h"

namespace numaslub {
namespace {

PageAllocator* global_pa() {
  PageAllocator* pa = page_allocator();
  if (!pa) std::abort();
  return pa;
}

// The zone path: same topology and config as the process, no per-CPU lists.
PageAllocator* zone_pa() {
  static PageAllocator* pa = [] {
    static PageAllocator a;
    Config cfg = config();
    cfg.pcp = false;
    if (a.init(cfg, topology(), os_mem_linux()) != 0) std::abort();
    return &a;
  }();
  return pa;
}

void alloc_free(benchmark::State& state, PageAllocator* pa) {
  const auto order = static_cast<unsigned>(state.range(0));
  for (auto _ : state) {
    Page* p = pa->alloc_pages(kNumaNoNode, order);
    benchmark::DoNotOptimize(p);
    if (!p) {
      state.SkipWithError("out of memory");
      break;
    }
    pa->free_pages(p, order);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Pcp(benchmark::State& state) {
  alloc_free(state, global_pa());
}
void BM_Zone(benchmark::State& state) {
  alloc_free(state, zone_pa());
}
void BM_Max(benchmark::State& state) {
  alloc_free(state, global_pa());
}

BENCHMARK(BM_Pcp)->Name("Pcp")->Arg(0)->Arg(3)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Zone)->Name("Zone")->Arg(0)->Arg(3)->Arg(10)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_Max)->Name("Max")->Arg(10)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace numaslub

BENCHMARK_MAIN();
