// numaslub's malloc/free against jemalloc's, side by side in one process.
//
// The binary links libjemalloc, whose unprefixed malloc/free serve the
// process (main() checks that through mallctl and prints its version), and
// opens libnumaslub.so with dlopen(RTLD_LOCAL), so that its exported
// malloc/free do not replace the process's. Both allocators are called the
// same way: through pointers to their exported malloc and free (dlsym), the
// code each allocator ships with its fast path, called indirectly from the
// same loop (no inlining into the benchmark, no PLT for one and not the
// other). The library is the build's (NS_LIBNUMASLUB) or $NUMASLUB_LIB.
//
// Benchmarks, each registered once per allocator ("<bench>/<allocator>/<arg>";
// allocators: numaslub, jemalloc):
//   pair/<A>/<size>     one malloc + free of `size` bytes per iteration
//                       (time per pair)
//   batch/<A>/<size>    allocate 10000 objects of `size` bytes (0: mixed
//                       16..1024), then free them in a shuffled order
//                       (time per batch)
//   prodcons/<A>/<size> two threads: the benchmark thread allocates, a
//                       consumer thread frees, pointers passed through a
//                       bounded lock-free ring; 20000 objects per iteration,
//                       wall time until the consumer has freed them all
//
// After the run a table gives numaslub's time / jemalloc's time for every
// pair of runs, from the fastest repetition of each (single-threaded
// benchmarks: CPU time; prodcons: real time), with the targets of the issue:
// pair 16..1024 B <= 0.8, batch and prodcons <= 1.0.
//
// Run (about 35 s):
//   build/bench/slub_bench --benchmark_min_time=0.1 --benchmark_repetitions=3
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <jemalloc/jemalloc.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

// ------------------------------------------------------------ allocators

// Each allocator's exported malloc and free, found at run time: the
// benchmark loops call both through these pointers.
struct Api {
  void* (*malloc)(std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
};
Api g_numaslub, g_jemalloc;

struct Numaslub {
  static constexpr const char* kName = "numaslub";
  static void* alloc(std::size_t n) { return g_numaslub.malloc(n); }
  static void release(void* p) { g_numaslub.free(p); }
};

struct Jemalloc {
  static constexpr const char* kName = "jemalloc";
  static void* alloc(std::size_t n) { return g_jemalloc.malloc(n); }
  static void release(void* p) { g_jemalloc.free(p); }
};

// ------------------------------------------------------------ pair

template <typename A>
void pair(benchmark::State& state, std::size_t size) {
  for (auto _ : state) {
    void* p = A::alloc(size);
    benchmark::DoNotOptimize(p);
    A::release(p);
  }
  state.SetItemsProcessed(state.iterations());
}

// ------------------------------------------------------------ batch

constexpr std::size_t kBatch = 10000;

template <typename A>
void batch(benchmark::State& state, std::size_t size) {
  std::mt19937_64 rng(12345);
  std::vector<std::size_t> sizes(kBatch);
  for (auto& s : sizes) s = size ? size : 16 + rng() % (1024 - 15);
  std::vector<std::uint32_t> order(kBatch);
  for (std::uint32_t i = 0; i < kBatch; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<void*> ptrs(kBatch);
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) ptrs[i] = A::alloc(sizes[i]);
    benchmark::DoNotOptimize(ptrs.data());
    for (std::size_t i = 0; i < kBatch; ++i) A::release(ptrs[order[i]]);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kBatch));
}

// ------------------------------------------------------------ producer/consumer

// Single-producer single-consumer bounded ring of pointers.
class Ring {
 public:
  void push(void* p) {
    std::size_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_cache_ == kCap) {
      for (unsigned spins = 0;; ++spins) {
        head_cache_ = head_.load(std::memory_order_acquire);
        if (t - head_cache_ < kCap) break;
        wait(spins);
      }
    }
    slot_[t % kCap] = p;
    tail_.store(t + 1, std::memory_order_release);
  }
  void* pop() {
    std::size_t h = head_.load(std::memory_order_relaxed);
    if (h == tail_cache_) {
      for (unsigned spins = 0;; ++spins) {
        tail_cache_ = tail_.load(std::memory_order_acquire);
        if (h != tail_cache_) break;
        wait(spins);
      }
    }
    void* p = slot_[h % kCap];
    head_.store(h + 1, std::memory_order_release);
    return p;
  }

 private:
  static void wait(unsigned spins) {
    if (spins < 64)
      __builtin_ia32_pause();
    else
      sched_yield();  // the other side may share our core
  }
  static constexpr std::size_t kCap = 1024;
  alignas(64) std::atomic<std::size_t> head_{0};
  std::size_t tail_cache_ = 0;  // consumer's
  alignas(64) std::atomic<std::size_t> tail_{0};
  std::size_t head_cache_ = 0;  // producer's
  alignas(64) void* slot_[kCap];
};

constexpr std::size_t kPerIteration = 20000;
// Sentinel: not an allocation; tells the consumer to stop.
void* const kStop = reinterpret_cast<void*>(1);

template <typename A>
void prodcons(benchmark::State& state, std::size_t size) {
  auto* ring = new Ring;
  alignas(64) std::atomic<std::size_t> freed{0};
  std::thread consumer([&] {
    std::size_t n = 0;
    for (;;) {
      void* p = ring->pop();
      if (p == kStop) break;
      A::release(p);
      freed.store(++n, std::memory_order_release);
    }
  });
  std::mt19937_64 rng(777);
  std::vector<std::size_t> sizes(4096);
  for (auto& s : sizes) s = size ? size : 16 + rng() % (1024 - 15);
  std::size_t produced = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kPerIteration; ++i) {
      void* p = A::alloc(sizes[i % sizes.size()]);
      benchmark::DoNotOptimize(p);
      ring->push(p);
    }
    produced += kPerIteration;
    for (unsigned spins = 0; freed.load(std::memory_order_acquire) != produced; ++spins)
      if (spins > 64) sched_yield();
  }
  ring->push(kStop);
  consumer.join();
  delete ring;
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kPerIteration));
}

// ------------------------------------------------------------ registration

const std::size_t kPairSizes[] = {16, 32, 64, 128, 256, 512, 1024, 4096, 32768};
const std::size_t kBatchSizes[] = {64, 512, 0};
const std::size_t kProdConsSizes[] = {64, 0};

template <typename A>
void register_one(const char* bench, std::size_t size) {
  std::string name = std::string(bench) + "/" + A::kName + "/" + std::to_string(size);
  benchmark::internal::Benchmark* b;
  if (!std::strcmp(bench, "pair")) {
    b = benchmark::RegisterBenchmark(name.c_str(), pair<A>, size);
    b->Unit(benchmark::kNanosecond);
  } else if (!std::strcmp(bench, "batch")) {
    b = benchmark::RegisterBenchmark(name.c_str(), batch<A>, size);
    b->Unit(benchmark::kMicrosecond);
  } else {
    b = benchmark::RegisterBenchmark(name.c_str(), prodcons<A>, size);
    b->Unit(benchmark::kMicrosecond)->UseRealTime();
  }
}

// numaslub and jemalloc next to each other, so each pair runs under the
// same machine conditions.
void register_all() {
  for (std::size_t s : kPairSizes) {
    register_one<Numaslub>("pair", s);
    register_one<Jemalloc>("pair", s);
  }
  for (std::size_t s : kBatchSizes) {
    register_one<Numaslub>("batch", s);
    register_one<Jemalloc>("batch", s);
  }
  for (std::size_t s : kProdConsSizes) {
    register_one<Numaslub>("prodcons", s);
    register_one<Jemalloc>("prodcons", s);
  }
}

// ------------------------------------------------------------ ratio table

// Passes everything to the console reporter and keeps, per benchmark name,
// the fastest repetition.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  struct Best {
    double real = 0, cpu = 0;
    std::string unit;
  };

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred || r.run_type != Run::RT_Iteration) continue;
      std::string name = r.run_name.function_name;  // without "/repeats:" etc.
      auto [it, fresh] = best_.try_emplace(name);
      double real = r.GetAdjustedRealTime(), cpu = r.GetAdjustedCPUTime();
      if (fresh || real < it->second.real) it->second.real = real;
      if (fresh || cpu < it->second.cpu) it->second.cpu = cpu;
      it->second.unit = benchmark::GetTimeUnitString(r.time_unit);
    }
    ConsoleReporter::ReportRuns(runs);
  }

  // Returns the number of comparisons that miss their target.
  int print_table() const {
    std::printf(
        "\nnumaslub / jemalloc, fastest repetition of each (< 1: numaslub is faster).\n"
        "Both called alike: through pointers to their exported malloc/free.\n");
    std::printf("%-16s %14s %14s %8s %8s %-4s\n", "benchmark", "numaslub", "jemalloc", "ratio",
                "target", "");
    int misses = 0;
    for (const char* bench : {"pair", "batch", "prodcons"}) {
      const bool real_time = !std::strcmp(bench, "prodcons");
      // By size, "mixed" (0) last.
      std::vector<std::pair<std::size_t, std::string>> args;
      std::string prefix = std::string(bench) + "/numaslub/";
      for (const auto& kv : best_) {
        if (kv.first.compare(0, prefix.size(), prefix) != 0) continue;
        std::string arg = kv.first.substr(prefix.size());
        std::size_t size = std::strtoull(arg.c_str(), nullptr, 10);
        args.emplace_back(size ? size : SIZE_MAX, arg);
      }
      std::sort(args.begin(), args.end());
      for (const auto& [key, arg] : args) {
        const Best& ns = best_.at(prefix + arg);
        auto je = best_.find(std::string(bench) + "/jemalloc/" + arg);
        if (je == best_.end()) continue;
        double a = real_time ? ns.real : ns.cpu, b = real_time ? je->second.real : je->second.cpu;
        double ratio = b > 0 ? a / b : 0;
        std::size_t size = std::strtoull(arg.c_str(), nullptr, 10);
        double target = 0;
        if (!std::strcmp(bench, "pair")) {
          if (size <= 1024) target = 0.8;
        } else {
          target = 1.0;
        }
        const char* verdict = target == 0 ? "" : ratio <= target ? "ok" : "MISS";
        misses += target != 0 && ratio > target;
        std::string label = std::string(bench) + "/" + (size ? arg : "mixed");
        char tgt[16] = "-";
        if (target != 0) std::snprintf(tgt, sizeof tgt, "<= %.1f", target);
        std::printf("%-16s %11.2f %-2s %11.2f %-2s %8.3f %8s %-4s\n", label.c_str(), a,
                    ns.unit.c_str(), b, je->second.unit.c_str(), ratio, tgt, verdict);
      }
    }
    return misses;
  }

 private:
  std::map<std::string, Best> best_;
};

// Checks that malloc in this process is jemalloc's and prints its version.
bool check_jemalloc() {
  const char* version = nullptr;
  std::size_t len = sizeof version;
  if (mallctl("version", &version, &len, nullptr, 0) != 0 || !version) {
    std::fprintf(stderr, "slub_bench: mallctl(\"version\") failed: jemalloc is not linked\n");
    return false;
  }
  // thread.allocated counts the bytes this thread got from jemalloc's
  // malloc: if it moves, malloc is jemalloc's and not glibc's.
  std::uint64_t before = 0, after = 0;
  len = sizeof before;
  if (mallctl("thread.allocated", &before, &len, nullptr, 0) != 0) {
    std::fprintf(stderr, "slub_bench: mallctl(\"thread.allocated\") failed\n");
    return false;
  }
  void* volatile p = std::malloc(4000);
  len = sizeof after;
  mallctl("thread.allocated", &after, &len, nullptr, 0);
  std::free(p);
  if (after - before < 4000) {
    std::fprintf(stderr, "slub_bench: malloc is not served by jemalloc\n");
    return false;
  }
  std::printf("jemalloc %s is the process malloc (malloc(4000) counted by thread.allocated)\n",
              version);
  g_jemalloc.malloc = reinterpret_cast<void* (*)(std::size_t)>(dlsym(RTLD_DEFAULT, "malloc"));
  g_jemalloc.free = reinterpret_cast<void (*)(void*)>(dlsym(RTLD_DEFAULT, "free"));
  return g_jemalloc.malloc && g_jemalloc.free;
}

// Opens libnumaslub.so beside jemalloc: RTLD_LOCAL, so its malloc serves
// only the calls made through g_numaslub.
bool open_numaslub() {
  const char* path = std::getenv("NUMASLUB_LIB");
  if (!path || !*path) path = NS_LIBNUMASLUB;
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "slub_bench: %s\n", dlerror());
    return false;
  }
  g_numaslub.malloc = reinterpret_cast<void* (*)(std::size_t)>(dlsym(h, "malloc"));
  g_numaslub.free = reinterpret_cast<void (*)(void*)>(dlsym(h, "free"));
  auto nodes = reinterpret_cast<int (*)()>(dlsym(h, "numaslub_nr_nodes"));
  if (!g_numaslub.malloc || !g_numaslub.free || !nodes || g_numaslub.malloc == g_jemalloc.malloc) {
    std::fprintf(stderr, "slub_bench: %s does not export numaslub's malloc/free\n", path);
    return false;
  }
  g_numaslub.free(g_numaslub.malloc(16));  // set numaslub up outside the timings
  std::printf(
      "numaslub: %s (%d node(s)); both allocators called through pointers to their\n"
      "exported malloc/free\n",
      path, nodes());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (!check_jemalloc() || !open_numaslub()) return 1;
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::fflush(stdout);
  reporter.print_table();
  benchmark::Shutdown();
  return 0;
}
