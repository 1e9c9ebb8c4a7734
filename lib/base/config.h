// Run-time options: NUMASLUB_CONF="key=value,key=value,...".
//
// One declarative table (config.cpp) gives each option its type, default and
// description; the README's table is generated from the same text by
// `numaslub-info --config-help`. Parsing never allocates: the environment is
// read from `environ` or, before libc has set it up, from /proc/self/environ.
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaslub {

// The enumerated options name their choices here, '|' between them; the
// value stored is the choice's index. The layer that owns an option keeps
// its enum (lib/numa's NumaMode, lib/slub's PercpuMode, the shim's
// MmapPolicy) and ties each enumerator to its name with a static_assert on
// choice_index, so this layer needs no vocabulary of those above it. After
// a name, ":N" means it takes a node number (into mmap_node), ":LIST" a node
// list like 0-1,3 (into numa_nodes), "[:LIST]" an optional one.
inline constexpr char kPercpuChoices[] = "auto|rseq|thread";
inline constexpr char kMmapPolicyChoices[] = "default|local|interleave|bind:N";
inline constexpr char kNumaChoices[] = "local|interleave[:LIST]|bind:LIST|preferred:LIST";
inline constexpr char kThpChoices[] = "auto|always|never";

// One choice of such a list: its name and its argument spec ("", ":N",
// ":LIST" or "[:LIST]").
struct Choice {
  const char* name;
  std::size_t name_len;
  const char* spec;
  std::size_t spec_len;
};

// Reads the choice at *cur into *c and moves *cur past it; false at the end
// of the list.
constexpr bool next_choice(const char** cur, Choice* c) {
  const char* s = *cur;
  if (!*s) return false;
  const char* end = s;
  while (*end && *end != '|') ++end;
  std::size_t n = 0;
  while (s + n < end && s[n] != ':' && s[n] != '[') ++n;
  *c = {s, n, s + n, static_cast<std::size_t>(end - (s + n))};
  *cur = *end ? end + 1 : end;
  return true;
}

// The index of the choice named by name[0..len) in `choices`, or -1.
constexpr int choice_index(const char* choices, const char* name, std::size_t len) {
  Choice c{};
  for (int i = 0; next_choice(&choices, &c); ++i) {
    bool same = c.name_len == len;
    for (std::size_t j = 0; same && j < len; ++j) same = c.name[j] == name[j];
    if (same) return i;
  }
  return -1;
}
constexpr int choice_index(const char* choices, const char* name) {
  std::size_t len = 0;
  while (name[len]) ++len;
  return choice_index(choices, name, len);
}

struct Config {
  std::uint32_t fake_numa = 0;                // split CPUs into N fake nodes (0: off)
  std::uint64_t arena_size = 64ULL << 30;     // address space reserved per node
  bool reserve_steps = true;                  // reserve it as the heap grows
  std::uint64_t section_size = 16ULL << 20;   // unit of onlining ("memory hotplug")
  bool mbind = true;                          // bind onlined sections to their node
  bool pcp = true;                            // per-CPU page lists in front of zones
  std::uint32_t pcp_high = 64;                // blocks kept per CPU per order
  std::uint32_t pcp_batch = 16;               // blocks moved per refill / drain
  std::uint64_t pcp_runs = 2ULL << 20;        // bytes of large blocks a per-CPU list keeps
  std::uint32_t watermark_scale = 1000;       // watermark gap, 1/10000 of the zone
  std::uint8_t percpu = 0;                    // per-CPU cache mode (kPercpuChoices)
  std::uint8_t mmap_policy = 0;               // the mmap wrapper's (kMmapPolicyChoices)
  std::uint32_t mmap_node = 0;                // node of mmap_policy=bind:N
  std::uint8_t numa = 0;                      // heap placement (kNumaChoices)
  std::uint64_t numa_nodes = 0;               // numa= LIST, bit per node (0: every node)
  bool reclaim = true;                        // kswapd threads return memory to the OS
  std::uint64_t reclaim_start = 32ULL << 20;  // free resident bytes that start kswapd
  std::uint32_t decay_ms = 500;               // free pages unused this long are released
  std::uint32_t idle_drain_ms = 1000;         // per-CPU caches idle this long are drained
  std::uint32_t reclaim_hold_ms = 0;          // tests: hold isolated blocks this long
  bool madv_free = false;                     // release with MADV_FREE instead of MADV_DONTNEED
  std::uint8_t thp = 0;                       // transparent huge pages (kThpChoices)
  std::uint32_t thp_dense = 75;               // % of a zone or 2 MiB range in use that is "dense"
  std::uint32_t psi_threshold = 10;           // memory "some avg10" % that counts as pressure
  bool publish = true;                        // views in $TMPDIR/numaslub-<uid>/<pid>
  std::uint32_t publish_ms = 50;              // how often the published views are updated
  bool slab_random = true;                    // new slabs' freelists in random order
  bool debug = false;                         // check sized frees against the block
  // slub_debug: "FLAGS[:cache...][;FLAGS[:cache...]]", kept as text and
  // resolved by lib/slub at set-up ("" = off; FZPU letters as the kernel's).
  char slub_debug[96] = "";
  bool debug_continue = false;            // debug reports do not abort
  char debug_log[128] = "";               // debug reports go here ("" = stderr)
  std::uint64_t quarantine = 0;           // bytes of freed debug objects held back from reuse
  bool prof = false;                      // sampled heap profile (lib/slub/prof.h)
  std::uint64_t prof_sample = 512 << 10;  // mean bytes between samples
  std::uint32_t prof_max = 65536;         // live sample records kept at most
  char prof_final[128] = "";              // heap profile written here at exit ("" = none)
  bool leak_check = false;                // leak report at exit (lib/slub/leak.h)
  std::uint32_t leak_exitcode = 0;        // exit status when leaks are found (0: unchanged)
  bool verbose = false;                   // log decisions at init

  // Applies "key=value,..." on top of the current values. Returns the number
  // of entries that could not be applied (each is logged when `warn`).
  int parse(const char* text, bool warn = true);
};

// The process-wide configuration, parsed from NUMASLUB_CONF on first use.
// Idempotent and thread-safe; never allocates.
const Config& config();

class Mutex;
// The lock that guards first-time parsing (for the fork handlers).
Mutex& config_lock();

// Replace the process-wide configuration (tests, tools). Not thread-safe.
void config_set_for_test(const Config& c);

// Writes "key  type  default  description" lines for every option to fd.
void config_print_help(int fd);

// Finds NAME's value in the process environment without allocating, or null.
const char* env_lookup(const char* name);

}  // namespace numaslub

namespace numaslub {
// Applies every option's documented default to *c; returns how many failed.
int config_parse_defaults(Config* c);
}  // namespace numaslub
