#include "lib/reclaim/pressure.h"

#include <atomic>
#include <cstring>

#include "lib/base/config.h"
#include "lib/base/format.h"
#include "lib/base/sysfs.h"

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

bool pressure_from_kernel() {
  char buf[512];
  double avg10;
  if (read_text_file("/proc/pressure/memory", buf, sizeof buf) > 0 &&
      parse_psi_some_avg10(buf, &avg10) && avg10 > config().psi_threshold)
    return true;
  char cg[256], path[384];
  if (read_text_file("/proc/self/cgroup", buf, sizeof buf) <= 0 ||
      !parse_cgroup_v2_path(buf, cg, sizeof cg))
    return false;
  std::uint64_t current, high = ~0ULL, max = ~0ULL;
  format(path, sizeof path, "/sys/fs/cgroup%s/memory.current", cg);
  if (!read_u64_or_max(path, &current)) return false;
  format(path, sizeof path, "/sys/fs/cgroup%s/memory.high", cg);
  read_u64_or_max(path, &high);
  format(path, sizeof path, "/sys/fs/cgroup%s/memory.max", cg);
  read_u64_or_max(path, &max);
  std::uint64_t limit = high < max ? high : max;
  return limit != ~0ULL && current > limit / 10 * 9;
}

void reclaim_set_pressure_source(PressureFn fn) {
  g_source.store(fn ? fn : pressure_from_kernel, std::memory_order_release);
}

PressureFn reclaim_pressure_source() {
  return g_source.load(std::memory_order_acquire);
}

}  // namespace numaslub
