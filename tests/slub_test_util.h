// Helpers shared by the lib/slub test files (slub_test, slub_threads_test,
// slub_hardening_test): content patterns that tell every object apart, the
// boundary sizes of the classes, CPU pinning and the slabinfo view parsed.
#pragma once

#include <errno.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lib/buddy/page_alloc.h"
#include "lib/slub/vmalloc.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/obj_index.h"
#include "lib/slub/size_class.h"

namespace numaslub::slubtest {

inline constexpr std::size_t KiB = 1024;
inline constexpr std::size_t MiB = 1024 * 1024;

inline std::string conf_env() {
  const char* e = std::getenv("NUMASLUB_CONF");
  return e ? e : "";
}

inline bool is_pow2(std::size_t n) {
  return n && (n & (n - 1)) == 0;
}

inline std::uintptr_t addr(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

inline std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// The per-object pattern: derived from the pointer and the size, so a block
// handed out twice, or written through a stale pointer, shows up.
inline std::uint64_t seed_of(const void* p, std::size_t n) {
  return mix(addr(p) ^ (n << 1) ^ 1);
}

inline std::uint64_t word_at(std::uint64_t seed, std::size_t i) {
  return seed ^ (i * 0x9E3779B97F4A7C15ULL);
}

inline void fill(void* p, std::size_t n, std::uint64_t seed) {
  auto* b = static_cast<unsigned char*>(p);
  std::size_t words = n / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t w = word_at(seed, i);
    std::memcpy(b + i * 8, &w, 8);
  }
  std::uint64_t last = word_at(seed, words);
  for (std::size_t j = words * 8; j < n; ++j)
    b[j] = static_cast<unsigned char>(last >> (j % 8 * 8));
}

// Index of the first byte that differs from the pattern, or n.
inline std::size_t first_bad(const void* p, std::size_t n, std::uint64_t seed) {
  auto* b = static_cast<const unsigned char*>(p);
  std::size_t words = n / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t w;
    std::memcpy(&w, b + i * 8, 8);
    if (w != word_at(seed, i)) {
      for (std::size_t j = i * 8;; ++j)
        if (b[j] != static_cast<unsigned char>(word_at(seed, i) >> (j % 8 * 8))) return j;
    }
  }
  std::uint64_t last = word_at(seed, words);
  for (std::size_t j = words * 8; j < n; ++j)
    if (b[j] != static_cast<unsigned char>(last >> (j % 8 * 8))) return j;
  return n;
}

inline void fill_obj(void* p, std::size_t n) {
  fill(p, n, seed_of(p, n));
}
inline bool check_obj(const void* p, std::size_t n) {
  return first_bad(p, n, seed_of(p, n)) == n;
}

inline bool all_zero(const void* p, std::size_t n) {
  auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i]) return false;
  return true;
}

struct Slot {
  void* p = nullptr;
  std::size_t n = 0;
};

// Sizes around every class boundary: n-1, n, n+1 (n+1 of the last class is
// a large request).
inline std::vector<std::size_t> boundary_sizes() {
  std::vector<std::size_t> v{0, 1};
  for (std::uint32_t c : kClassSize) {
    v.push_back(c - 1);
    v.push_back(c);
    v.push_back(c + 1);
  }
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// Expected alignment of a kmalloc(n) result.
inline std::size_t expected_align(std::size_t n) {
  if (n > kMaxSmallSize) return 4096;
  if (is_pow2(n) && n >= 16) return n;
  return 16;
}

inline std::size_t online_cpus_in_mask() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return static_cast<std::size_t>(CPU_COUNT(&set));
}

inline bool cpus01_allowed() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return false;
  return CPU_ISSET(0, &set) && CPU_ISSET(1, &set);
}

inline bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

// Restores the thread's CPU affinity when it goes out of scope.
class AffinityGuard {
 public:
  AffinityGuard() {
    CPU_ZERO(&saved_);
    ok_ = sched_getaffinity(0, sizeof saved_, &saved_) == 0;
  }
  ~AffinityGuard() {
    if (ok_) sched_setaffinity(0, sizeof saved_, &saved_);
  }

 private:
  cpu_set_t saved_;
  bool ok_;
};

inline void pin_here() {
  int cpu = sched_getcpu();
  if (cpu >= 0) pin_to(cpu);
}

// slabinfo as a string.
inline std::string slabinfo_text() {
  std::vector<char> buf(64 * KiB);
  std::size_t n = slabinfo(buf.data(), buf.size());
  EXPECT_LT(n, buf.size());
  return std::string(buf.data(), std::min(n, buf.size()));
}

// active_objs of the cache named `name` in a slabinfo text; -1 when absent.
inline long active_objs(const std::string& text, const std::string& name) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.compare(0, name.size(), name) != 0 || line.size() <= name.size() ||
        line[name.size()] != ' ')
      continue;
    long active = -1, total = -1;
    if (std::sscanf(line.c_str() + name.size(), "%ld %ld", &active, &total) != 2) return -1;
    return active;
  }
  return -1;
}

inline long total_active_objs(const std::string& text) {
  long sum = 0;
  for (std::uint32_t c : kClassSize) {
    long a = active_objs(text, "kmalloc-" + std::to_string(c));
    if (a < 0) return -1;
    sum += a;
  }
  return sum;
}

}  // namespace numaslub::slubtest
