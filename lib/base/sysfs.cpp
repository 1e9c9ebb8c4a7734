#include "lib/base/sysfs.h"

#include <cstring>

#include "lib/base/syscall.h"

namespace numaslub {

long read_text_file(const char* path, char* buf, std::size_t cap) {
  long fd = sys::open(path, 0 /*O_RDONLY*/ | 02000000 /*O_CLOEXEC*/);
  if (fd < 0) return -1;
  std::size_t len = 0;
  while (len + 1 < cap) {
    long r = sys::read(static_cast<int>(fd), buf + len, cap - 1 - len);
    if (r == -4 /*EINTR*/) continue;
    if (r <= 0) break;
    len += static_cast<std::size_t>(r);
  }
  sys::close(static_cast<int>(fd));
  buf[len] = '\0';
  return static_cast<long>(len);
}

namespace {
bool read_uint(const char*& p, unsigned* v) {
  if (*p < '0' || *p > '9') return false;
  unsigned x = 0;
  while (*p >= '0' && *p <= '9') x = x * 10 + static_cast<unsigned>(*p++ - '0');
  *v = x;
  return true;
}
}  // namespace

template <unsigned N>
bool parse_list(const char* p, Bitmap<N>* mask) {
  *mask = Bitmap<N>{};
  while (*p == ' ' || *p == '\t') ++p;
  while (*p && *p != '\n') {
    unsigned a, b;
    if (!read_uint(p, &a)) return false;
    b = a;
    if (*p == '-') {
      ++p;
      if (!read_uint(p, &b) || b < a) return false;
    }
    for (unsigned i = a; i <= b && i < N; ++i) mask->set(i);
    if (*p == ',') {
      ++p;
      continue;
    }
    if (*p && *p != '\n') return false;
  }
  return true;
}
template bool parse_list<kMaxCpus>(const char*, CpuMask*);
template bool parse_list<kMaxNodes>(const char*, NodeMask*);

unsigned parse_numbers(const char* p, std::uint32_t* out, unsigned max) {
  unsigned n = 0;
  while (n < max) {
    while (*p == ' ' || *p == '\t' || *p == '\n') ++p;
    unsigned v;
    if (!read_uint(p, &v)) break;
    out[n++] = v;
  }
  return n;
}

bool find_kb_field(const char* text, const char* key, std::uint64_t* kb) {
  std::size_t klen = std::strlen(key);
  for (const char* line = text; *line;) {
    if (std::strncmp(line, key, klen) == 0 && line[klen] == ':') {
      const char* p = line + klen + 1;
      while (*p == ' ' || *p == '\t') ++p;
      std::uint64_t v = 0;
      if (*p < '0' || *p > '9') return false;
      while (*p >= '0' && *p <= '9') v = v * 10 + static_cast<unsigned>(*p++ - '0');
      *kb = v;
      return true;
    }
    const char* nl = std::strchr(line, '\n');
    if (!nl) break;
    line = nl + 1;
  }
  return false;
}

}  // namespace numaslub
