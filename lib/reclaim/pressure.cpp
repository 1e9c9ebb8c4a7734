#include "lib/reclaim/pressure.h"

#include <atomic>
#include <cstring>

#include "lib/base/base.h"

namespace numaslub {

namespace {

constinit std::atomic<PressureFn> g_source{pressure_from_kernel};

bool read_u64_or_max(const char* path, std::uint64_t* v) {
  char buf[64];
  if (read_text_file(path, buf, sizeof buf) <= 0) return false;
  if (std::strncmp(buf, "max", 3) == 0) {
    *v = ~0ULL;
    return true;
  }
  if (buf[0] < '0' || buf[0] > '9') return false;
  std::uint64_t x = 0;
  for (const char* p = buf; *p >= '0' && *p <= '9'; ++p)
    x = x * 10 + static_cast<unsigned>(*p - '0');
  *v = x;
  return true;
}

}  // namespace

bool parse_psi_some_avg10(const char* text, double* avg10) {
  const char* p = std::strstr(text, "some avg10=");
  if (!p) return false;
  p += 11;
  double v = 0;
  bool digits = false;
  while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0'), digits = true;
  if (*p == '.') {
    double scale = 0.1;
    for (++p; *p >= '0' && *p <= '9'; ++p, scale /= 10) v += (*p - '0') * scale, digits = true;
  }
  if (!digits) return false;
  *avg10 = v;
  return true;
}

bool parse_cgroup_v2_path(const char* text, char* out, unsigned cap) {
  // cgroup v2 has exactly one line "0::/path".
  for (const char* line = text; *line;) {
    if (std::strncmp(line, "0::", 3) == 0) {
      const char* p = line + 3;
      unsigned n = 0;
      while (p[n] && p[n] != '\n') ++n;
      if (n == 0 || n + 1 > cap) return false;
      std::memcpy(out, p, n);
      out[n] = '\0';
      return true;
    }
    const char* nl = std::strchr(line, '\n');
    if (!nl) break;
    line = nl + 1;
  }
  return false;
}

bool parse_cgroup_v1_memory_path(const char* text, char* out, unsigned cap) {
  // cgroup v1: "ID:controller,controller:/path", one line per hierarchy.
  for (const char* line = text; *line;) {
    const char* nl = std::strchr(line, '\n');
    const char* end = nl ? nl : line + std::strlen(line);
    const char* c1 = static_cast<const char*>(std::memchr(line, ':', end - line));
    const char* c2 =
        c1 ? static_cast<const char*>(std::memchr(c1 + 1, ':', end - c1 - 1)) : nullptr;
    if (c2) {
      for (const char* ctl = c1 + 1; ctl < c2;) {
        const char* comma = static_cast<const char*>(std::memchr(ctl, ',', c2 - ctl));
        const char* ce = comma ? comma : c2;
        if (ce - ctl == 6 && std::strncmp(ctl, "memory", 6) == 0) {
          unsigned n = static_cast<unsigned>(end - c2 - 1);
          if (n == 0 || n + 1 > cap) return false;
          std::memcpy(out, c2 + 1, n);
          out[n] = '\0';
          return true;
        }
        ctl = ce + 1;
      }
    }
    if (!nl) break;
    line = nl + 1;
  }
  return false;
}

namespace {

// usage > 90% of limit (a limit of "max", or v1's near-2^63 "unlimited", is none).
bool near_limit(std::uint64_t usage, std::uint64_t limit) {
  return limit < (1ULL << 62) && usage > limit / 10 * 9;
}

// Strips the last component of a cgroup path ("/a/b" -> "/a", "/a" -> "").
// False at the root.
bool parent_of(char* cg) {
  char* slash = std::strrchr(cg, '/');
  if (!slash || cg[1] == '\0') return false;
  *slash = '\0';
  return true;
}

// cgroup v2 under `root`: the cgroup and its ancestors (a container's limit
// is often set on a parent) — its own PSI (memory.pressure), and
// memory.current against memory.high / memory.max. False when the files are
// not there (not a v2 hierarchy with the memory controller).
bool v2_pressure(const char* root, const char* cgpath) {
  char cg[256], path[384], buf[256];
  format(cg, sizeof cg, "%s", cgpath);
  for (int depth = 0; depth < 8; ++depth) {
    const char* dir = cg[0] == '/' && cg[1] == '\0' ? "" : cg;
    std::uint64_t current, high = ~0ULL, max = ~0ULL;
    format(path, sizeof path, "%s%s/memory.current", root, dir);
    if (read_u64_or_max(path, &current)) {
      format(path, sizeof path, "%s%s/memory.high", root, dir);
      read_u64_or_max(path, &high);
      format(path, sizeof path, "%s%s/memory.max", root, dir);
      read_u64_or_max(path, &max);
      if (near_limit(current, high < max ? high : max)) return true;
      double avg10;
      format(path, sizeof path, "%s%s/memory.pressure", root, dir);
      if (read_text_file(path, buf, sizeof buf) > 0 && parse_psi_some_avg10(buf, &avg10) &&
          avg10 > config().psi_threshold)
        return true;
    } else if (depth == 0) {
      return false;
    }
    if (!parent_of(cg)) break;
    if (cg[0] == '\0') format(cg, sizeof cg, "/");
  }
  return false;
}

// cgroup v1's memory hierarchy: usage against the hard limit, up the tree.
bool v1_pressure(const char* cgpath) {
  char cg[256], path[384];
  format(cg, sizeof cg, "%s", cgpath);
  for (int depth = 0; depth < 8; ++depth) {
    const char* dir = cg[0] == '/' && cg[1] == '\0' ? "" : cg;
    std::uint64_t usage, limit;
    format(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", dir);
    if (!read_u64_or_max(path, &usage)) return false;
    format(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", dir);
    if (read_u64_or_max(path, &limit) && near_limit(usage, limit)) return true;
    if (!parent_of(cg)) break;
    if (cg[0] == '\0') format(cg, sizeof cg, "/");
  }
  return false;
}

}  // namespace

bool pressure_from_kernel() {
  char buf[2048];
  double avg10;
  if (read_text_file("/proc/pressure/memory", buf, sizeof buf) > 0 &&
      parse_psi_some_avg10(buf, &avg10) && avg10 > config().psi_threshold)
    return true;
  if (read_text_file("/proc/self/cgroup", buf, sizeof buf) <= 0) return false;
  char cg[256];
  // v2: mounted at /sys/fs/cgroup, or at /sys/fs/cgroup/unified beside v1
  // (the "hybrid" layout); v1's memory controller at /sys/fs/cgroup/memory.
  if (parse_cgroup_v2_path(buf, cg, sizeof cg) &&
      (v2_pressure("/sys/fs/cgroup", cg) || v2_pressure("/sys/fs/cgroup/unified", cg)))
    return true;
  return parse_cgroup_v1_memory_path(buf, cg, sizeof cg) && v1_pressure(cg);
}

void reclaim_set_pressure_source(PressureFn fn) {
  g_source.store(fn ? fn : pressure_from_kernel, std::memory_order_release);
}

PressureFn reclaim_pressure_source() {
  return g_source.load(std::memory_order_acquire);
}

}  // namespace numaslub
