// Where published views live: one directory per user (publish.h).
#include <cstring>

#include "lib/base/base.h"
#include "lib/views/publish.h"

namespace numaslub {

std::size_t publish_dir(char* buf, std::size_t cap, std::uint32_t euid) {
  const char* tmp = env_lookup("TMPDIR");
  if (!tmp || tmp[0] != '/' || std::strlen(tmp) > 150) tmp = "/tmp";
  std::size_t n = std::strlen(tmp);
  while (n > 1 && tmp[n - 1] == '/') --n;  // "/tmp/" -> "/tmp"
  BufWriter w(buf, cap);
  for (std::size_t i = 0; i < n; ++i) w.putc(tmp[i]);
  w.printf("/numaslub-%u", euid);
  return w.truncated() ? 0 : w.size();
}

}  // namespace numaslub
