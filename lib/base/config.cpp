#include "lib/base/config.h"

#include <atomic>
#include <cstring>

#include "lib/base/format.h"
#include "lib/base/lock.h"
#include "lib/base/log.h"
#include "lib/base/syscall.h"

extern char** environ;

namespace numaslub {
namespace {

enum class Type { kBool, kUint, kSize, kChoice, kSlubDebug, kPath };

struct Option {
  const char* name;
  Type type;
  std::size_t offset;
  const char* def;
  const char* help;
  const char* choices = nullptr;  // kChoice: config.h's list
  std::size_t arg_offset = 0;     // kChoice: the field a choice's ":N" or ":LIST" goes to,
  std::size_t arg_size = 0;       // 4 or 8 bytes (0: no choice takes one)
};

#define NS_OPT(field, type, def, help) \
  { #field, type, offsetof(Config, field), def, help }
#define NS_CHOICE(field, choices, def, help) \
  { #field, Type::kChoice, offsetof(Config, field), def, help, choices }
#define NS_CHOICE_ARG(field, choices, arg_field, def, help)             \
  {                                                                     \
#field, Type::kChoice, offsetof(Config, field), def, help, choices, \
        offsetof(Config, arg_field), sizeof(Config::arg_field)          \
  }
// The one table of options. Keep defaults in sync with Config's initializers
// (a test checks that parsing every default reproduces Config{}).
constexpr Option kOptions[] = {
    NS_OPT(fake_numa, Type::kUint, "0",
           "split the CPUs of the machine into N fake NUMA nodes (0: use the real topology)"),
    NS_OPT(arena_size, Type::kSize, "64G",
           "address space reserved per node; shrunk to fit RLIMIT_AS"),
    NS_OPT(reserve_steps, Type::kBool, "1",
           "reserve each node's range as its heap grows (0: all of arena_size at start-up)"),
    NS_OPT(section_size, Type::kSize, "16M",
           "granule in which a node's range is onlined (power of two, >= 4M)"),
    NS_OPT(mbind, Type::kBool, "1", "bind each onlined section to its node with mbind"),
    NS_OPT(pcp, Type::kBool, "1", "per-CPU page lists for orders 0..3 in front of the zone lock"),
    NS_OPT(pcp_high, Type::kUint, "64", "blocks a per-CPU page list holds before draining"),
    NS_OPT(pcp_batch, Type::kUint, "16", "blocks moved between a per-CPU list and its zone"),
    NS_OPT(pcp_runs, Type::kSize, "2M",
           "bytes of freed large blocks (36 KiB .. 1 MiB) a per-CPU page list keeps for reuse "
           "without the zone lock, within the CPU's share of the heap (0: none)"),
    NS_OPT(watermark_scale, Type::kUint, "1000",
           "gap between the min/low/high marks of cached free pages, in 1/10000 of the zone "
           "(1000: reclaim starts above 30% of the zone)"),
    NS_CHOICE(percpu, kPercpuChoices, "auto", "per-CPU caches: auto, rseq or thread"),
    NS_CHOICE_ARG(mmap_policy, kMmapPolicyChoices, mmap_node, "default",
                  "NUMA policy the mmap() wrapper gives anonymous mappings: default, local, "
                  "interleave or bind:N"),
    NS_CHOICE_ARG(numa, kNumaChoices, numa_nodes, "local",
                  "heap placement: local (each node's memory on it), interleave[:LIST], bind:LIST "
                  "(only those nodes), preferred:N (node N first); LIST like 0-1,3. A policy set "
                  "with numactl wins"),
    NS_OPT(reclaim, Type::kBool, "1",
           "background reclaim (ns-kswapd<N> threads); 0 keeps every free page cached"),
    NS_OPT(reclaim_start, Type::kSize, "32M",
           "free resident memory of a node at which its reclaim thread starts; below it the "
           "process stays single-threaded (0: at the first free)"),
    NS_OPT(decay_ms, Type::kUint, "500",
           "free resident pages not reused for this long are released to the OS"),
    NS_OPT(idle_drain_ms, Type::kUint, "1000",
           "per-CPU object caches of CPUs idle this long are drained back to the slabs"),
    NS_OPT(reclaim_hold_ms, Type::kUint, "0",
           "tests only: a reclaim pass holds the blocks it isolated this long before "
           "releasing them (to fork while a pass is open)"),
    NS_OPT(madv_free, Type::kBool, "0",
           "release with MADV_FREE (lazy, cheaper) instead of MADV_DONTNEED (zeroes pages)"),
    NS_CHOICE(thp, kThpChoices, "auto",
              "2 MiB pages (MADV_HUGEPAGE): auto (new sections once thp_dense % of the node's "
              "heap is slab pages known written; new mappings once thp_dense % of freed ones' "
              "pages were), always, never"),
    NS_OPT(thp_dense, Type::kUint, "75",
           "percent of a node's heap known written that makes it dense enough for thp=auto, "
           "and percent in use of a 2 MiB range that makes reclaim keep it whole unless under "
           "pressure"),
    NS_OPT(psi_threshold, Type::kUint, "10",
           "memory pressure (PSI some avg10, percent) above which all cached memory is released"),
    NS_OPT(publish, Type::kBool, "1",
           "publish the heap's views in $TMPDIR/numaslub-<uid>/<pid> (created lazily, removed "
           "at exit) for numaslub-info --pid and numaslub-top; 0: no file"),
    NS_OPT(publish_ms, Type::kUint, "50",
           "how often the published views are updated, at most, in ms (from the allocator's slow "
           "paths and kswapd; a reader can ask for a fresh one); the file appears at the first "
           "slow path 1 s after start (or publish_ms, if longer)"),
    NS_OPT(slab_random, Type::kBool, "1",
           "new slabs hand out their objects in a random order (the kernel's "
           "SLAB_FREELIST_RANDOM: neighbours of an object are hard to predict), a 128-byte line "
           "pair's objects to one CPU; 0 hands them out in address order, which "
           "hardware prefetchers follow (faster where objects go from thread to thread)"),
    NS_OPT(debug, Type::kBool, "0",
           "check every sized free (free_sized, sized delete) against the block's size and "
           "abort naming the address on a mismatch"),
    NS_OPT(slub_debug, Type::kSlubDebug, "-",
           "kernel's debug letters: F sanity checks, Z red zones, P poison, U owner stacks; FZPU "
           "for every cache (bare: FZPU), FZ:kmalloc-64:kmalloc-128 for some, ';' between "
           "blocks. F turns debug on"),
    NS_OPT(debug_continue, Type::kBool, "0",
           "a slub_debug report does not abort: the damage is repaired where it can be (red "
           "zones and poison restored, a double free skipped) and the program goes on"),
    NS_OPT(debug_log, Type::kPath, "-", "file slub_debug reports are appended to (-: stderr)"),
    NS_OPT(quarantine, Type::kSize, "0",
           "bytes of freed objects of debug caches held back from reuse (FIFO), so writes after "
           "free are caught before the memory is handed out again"),
    NS_OPT(prof, Type::kBool, "0",
           "sampled heap profile: records the call stack of allocations sampled every "
           "prof_sample bytes on average; read with numaslub-info --pid PID --heap-profile FILE, "
           "or written at exit to prof_final (google-pprof reads both)"),
    NS_OPT(prof_sample, Type::kSize, "512K",
           "mean bytes allocated between two samples (exponential intervals); 1 samples every "
           "allocation"),
    NS_OPT(prof_max, Type::kUint, "65536",
           "live sampled allocations recorded at most (256 bytes each); samples beyond are "
           "dropped and counted"),
    NS_OPT(prof_final, Type::kPath, "-",
           "file the heap profile of live sampled memory is written to at exit, %p in it "
           "standing for the pid (-: none)"),
    NS_OPT(leak_check, Type::kBool, "0",
           "at exit, report sampled allocations (all, with prof_sample=1) that no live memory "
           "points to, grouped by allocation stack (turns prof on)"),
    NS_OPT(leak_exitcode, Type::kUint, "0",
           "exit status of a process whose leak check found leaks (0: the status is unchanged)"),
    NS_OPT(verbose, Type::kBool, "0", "log topology and arena decisions at start-up"),
};
#undef NS_OPT

bool parse_uint(const char* s, std::size_t n, std::uint64_t* out, bool allow_suffix) {
  if (n == 0) return false;
  std::uint64_t v = 0;
  std::size_t i = 0;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (v > (~0ULL - 9) / 10) return false;
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  if (i == 0) return false;
  if (i < n) {
    if (!allow_suffix || i + 1 != n) return false;
    unsigned shift;
    switch (s[i] | 0x20) {
      case 'k':
        shift = 10;
        break;
      case 'm':
        shift = 20;
        break;
      case 'g':
        shift = 30;
        break;
      case 't':
        shift = 40;
        break;
      default:
        return false;
    }
    if (v > (~0ULL >> shift)) return false;
    v <<= shift;
  }
  *out = v;
  return true;
}

bool eq(const char* s, std::size_t n, const char* lit) {
  return std::strlen(lit) == n && std::memcmp(s, lit, n) == 0;
}

// A node list in the kernel's cpulist syntax ("0-1,3") into a bit per node.
bool parse_node_list(const char* s, std::size_t n, std::uint64_t* out) {
  std::uint64_t mask = 0;
  std::size_t i = 0;
  while (i < n) {
    std::size_t j = i;
    while (j < n && s[j] != ',' && s[j] != '-') ++j;
    std::uint64_t lo, hi;
    if (!parse_uint(s + i, j - i, &lo, false)) return false;
    hi = lo;
    if (j < n && s[j] == '-') {
      std::size_t k = ++j;
      while (j < n && s[j] != ',') ++j;
      if (!parse_uint(s + k, j - k, &hi, false)) return false;
    }
    if (lo > hi || hi >= 64) return false;
    for (std::uint64_t b = lo; b <= hi; ++b) mask |= 1ULL << b;
    if (j < n && ++j == n) return false;  // a trailing comma
    i = j;
  }
  if (!mask) return false;
  *out = mask;
  return true;
}

// slub_debug's syntax: blocks separated by ';', each FLAGS[:NAME]... with
// FLAGS letters of FZPU (either case) or '-' (off). Names are checked
// against the caches by lib/slub, which knows them.
bool valid_slub_debug(const char* v, std::size_t n) {
  std::size_t i = 0;
  while (i <= n) {
    std::size_t j = i;
    while (j < n && v[j] != ';') ++j;
    std::size_t k = i;  // the flags
    while (k < j && v[k] != ':') ++k;
    if (k == i) return false;
    for (std::size_t f = i; f < k; ++f)
      if (!std::strchr("FZPUfzpu", v[f]) && !(v[f] == '-' && k == i + 1)) return false;
    while (k < j) {  // the names
      std::size_t e = ++k;
      while (e < j && v[e] != ':') ++e;
      if (e == k) return false;
      for (std::size_t f = k; f < e; ++f)
        if (!((v[f] >= 'a' && v[f] <= 'z') || (v[f] >= '0' && v[f] <= '9') || v[f] == '-'))
          return false;
      k = e;
    }
    i = j + 1;
  }
  return true;
}

bool apply_text(char* field, std::size_t cap, const char* v, std::size_t n) {
  if (n >= cap) return false;
  if (n == 1 && v[0] == '-') n = 0;  // the default: off / stderr
  std::memcpy(field, v, n);
  field[n] = '\0';
  return true;
}

// An enumerated option: NAME or NAME:ARG, NAME one of o.choices, ARG as its
// spec there says (none, ":N", ":LIST" or "[:LIST]"). Stores the choice's
// index, and its argument (0 when it has none) at o.arg_offset.
bool apply_choice(Config* c, const Option& o, const char* v, std::size_t n) {
  std::size_t k = 0;
  while (k < n && v[k] != ':') ++k;
  bool has_arg = k < n;
  const char* cur = o.choices;
  Choice ch{};
  for (unsigned index = 0; next_choice(&cur, &ch); ++index) {
    if (ch.name_len != k || std::memcmp(v, ch.name, k) != 0) continue;
    const char* spec = ch.spec;
    std::size_t spec_len = ch.spec_len;
    bool optional = spec_len && spec[0] == '[';
    bool list = spec_len >= 5 && std::memcmp(spec + (optional ? 2 : 1), "LIST", 4) == 0;
    if (spec_len == 0 ? has_arg : !optional && !has_arg) return false;
    if (has_arg && !o.arg_size) return false;
    std::uint64_t arg = 0;
    if (has_arg) {
      const char* a = v + k + 1;
      std::size_t an = n - k - 1;
      if (list ? !parse_node_list(a, an, &arg) : !parse_uint(a, an, &arg, false) || arg >= 1024)
        return false;
    }
    char* field = reinterpret_cast<char*>(c) + o.offset;
    char* arg_field = reinterpret_cast<char*>(c) + o.arg_offset;
    *reinterpret_cast<std::uint8_t*>(field) = static_cast<std::uint8_t>(index);
    if (o.arg_size == 8)
      *reinterpret_cast<std::uint64_t*>(arg_field) = arg;
    else if (o.arg_size == 4)
      *reinterpret_cast<std::uint32_t*>(arg_field) = static_cast<std::uint32_t>(arg);
    return true;
  }
  return false;
}

bool apply(Config* c, const Option& o, const char* v, std::size_t n) {
  char* field = reinterpret_cast<char*>(c) + o.offset;
  std::uint64_t u;
  switch (o.type) {
    case Type::kBool:
      if (eq(v, n, "1") || eq(v, n, "on") || eq(v, n, "true") || eq(v, n, "yes")) {
        *reinterpret_cast<bool*>(field) = true;
        return true;
      }
      if (eq(v, n, "0") || eq(v, n, "off") || eq(v, n, "false") || eq(v, n, "no")) {
        *reinterpret_cast<bool*>(field) = false;
        return true;
      }
      return false;
    case Type::kUint:
      if (!parse_uint(v, n, &u, false) || u > 0xffffffffu) return false;
      *reinterpret_cast<std::uint32_t*>(field) = static_cast<std::uint32_t>(u);
      return true;
    case Type::kSize:
      if (!parse_uint(v, n, &u, true)) return false;
      *reinterpret_cast<std::uint64_t*>(field) = u;
      return true;
    case Type::kChoice:
      return apply_choice(c, o, v, n);
    case Type::kSlubDebug:
      if (!valid_slub_debug(v, n) || !apply_text(c->slub_debug, sizeof c->slub_debug, v, n))
        return false;
      // F's sanity checks include the sized-free check of `debug`.
      for (std::size_t i = 0, names = 0; i < n; ++i) {
        if (v[i] == ';') names = 0;
        if (v[i] == ':') names = 1;
        if (!names && (v[i] == 'F' || v[i] == 'f')) c->debug = true;
      }
      return true;
    case Type::kPath:
      return apply_text(field, sizeof c->debug_log, v, n);
  }
  return false;
}

constinit Config g_config;
constinit std::atomic<bool> g_config_ready{false};
constinit Mutex g_config_lock;

// Big enough for a large environment; lives in .bss, so it costs no memory
// unless the early path has to read /proc/self/environ.
char g_environ_buf[64 << 10];

}  // namespace

int Config::parse(const char* text, bool warn) {
  int bad = 0;
  const char* p = text;
  while (p && *p) {
    // An entry ends at a comma, except one followed by a digit: that one
    // continues a node list ("numa=bind:0-1,3"); no option name starts with one.
    const char* end = p;
    while (*end && !(*end == ',' && !(end[1] >= '0' && end[1] <= '9'))) ++end;
    const char* eqp = p;
    while (eqp < end && *eqp != '=') ++eqp;
    std::size_t klen = static_cast<std::size_t>(eqp - p);
    const char* v = eqp < end ? eqp + 1 : end;
    std::size_t vlen = static_cast<std::size_t>(end - v);
    if (klen > 0) {
      const Option* hit = nullptr;
      for (const Option& o : kOptions)
        if (eq(p, klen, o.name)) hit = &o;
      // A bare boolean key ("verbose") means "on"; a bare slub_debug, every
      // check (as the kernel's).
      bool ok = hit && (eqp < end                       ? apply(this, *hit, v, vlen)
                        : hit->type == Type::kBool      ? apply(this, *hit, "1", 1)
                        : hit->type == Type::kSlubDebug ? apply(this, *hit, "FZPU", 4)
                                                        : false);
      if (!ok) {
        ++bad;
        if (warn) {
          char key[64] = {};
          std::memcpy(key, p, klen < 63 ? klen : 63);
          log_msg(hit ? "NUMASLUB_CONF: bad value for '%s' (ignored)"
                      : "NUMASLUB_CONF: unknown option '%s' (ignored)",
                  key);
        }
      }
    }
    p = *end ? end + 1 : end;
  }
  return bad;
}

const char* env_lookup(const char* name) {
  std::size_t n = std::strlen(name);
  if (environ) {
    for (char** e = environ; *e; ++e)
      if (std::strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
    return nullptr;
  }
  // Called before libc set environ up (a malloc from the dynamic loader).
  static std::size_t len = 0;
  if (len == 0) {
    long fd = sys::open("/proc/self/environ", 0 /*O_RDONLY*/);
    if (fd < 0) return nullptr;
    long r;
    while (len < sizeof g_environ_buf - 1 &&
           (r = sys::read(static_cast<int>(fd), g_environ_buf + len,
                          sizeof g_environ_buf - 1 - len)) > 0)
      len += static_cast<std::size_t>(r);
    sys::close(static_cast<int>(fd));
    g_environ_buf[len] = '\0';
  }
  for (std::size_t i = 0; i < len; i += std::strlen(g_environ_buf + i) + 1)
    if (std::strncmp(g_environ_buf + i, name, n) == 0 && g_environ_buf[i + n] == '=')
      return g_environ_buf + i + n + 1;
  return nullptr;
}

const Config& config() {
  if (NS_LIKELY(g_config_ready.load(std::memory_order_acquire))) return g_config;
  LockGuard<Mutex> g(g_config_lock);
  if (!g_config_ready.load(std::memory_order_relaxed)) {
    if (const char* s = env_lookup("NUMASLUB_CONF")) g_config.parse(s);
    g_config_ready.store(true, std::memory_order_release);
  }
  return g_config;
}

Mutex& config_lock() {
  return g_config_lock;
}

void config_set_for_test(const Config& c) {
  g_config = c;
  g_config_ready.store(true, std::memory_order_release);
}

void config_print_help(int fd) {
  for (const Option& o : kOptions) {
    char line[256];
    const char* type = o.type == Type::kBool        ? "bool"
                       : o.type == Type::kSize      ? "size"
                       : o.type == Type::kUint      ? "uint"
                       : o.type == Type::kPath      ? "path"
                       : o.type == Type::kSlubDebug ? "text"
                                                    : "enum";
    // The help text is written as it is: through the line buffer, a long
    // one would lose its end and its newline (and run into the next option).
    std::size_t n = format(line, sizeof line, "%-16s %-5s %-6s ", o.name, type, o.def);
    write_all(fd, line, n);
    write_all(fd, o.help, std::strlen(o.help));
    write_all(fd, "\n", 1);
  }
}

// Used by the test that keeps the table's defaults and Config{} in sync.
int config_parse_defaults(Config* c) {
  int bad = 0;
  for (const Option& o : kOptions) bad += apply(c, o, o.def, std::strlen(o.def)) ? 0 : 1;
  return bad;
}

}  // namespace numaslub
