// Raw file-system calls for the published views (both the publisher inside
// the allocator and the readers): like lib/base/syscall.h they return the
// kernel's result (-errno on failure), never touch errno and never allocate.
// statx and renameat2 rather than stat and rename: one layout and one call
// on every architecture.
#pragma once

#include <fcntl.h>
#include <linux/stat.h>
#include <sys/syscall.h>

#include <cstddef>
#include <cstdint>

#include "lib/base/base.h"

namespace numaslub::sysf {

inline constexpr int kAtFdcwd = -100;

inline long openat(int dfd, const char* path, int flags, unsigned mode = 0) {
  return sys::call(SYS_openat, dfd, path, flags, mode);
}
inline long mkdirat(int dfd, const char* path, unsigned mode) {
  return sys::call(SYS_mkdirat, dfd, path, mode);
}
inline long unlinkat(int dfd, const char* path, int flags = 0) {
  return sys::call(SYS_unlinkat, dfd, path, flags);
}
inline long renameat(int olddfd, const char* oldpath, int newdfd, const char* newpath) {
  return sys::call(SYS_renameat2, olddfd, oldpath, newdfd, newpath, 0);
}
inline long fallocate(int fd, long off, long len) {
  return sys::call(SYS_fallocate, fd, 0, off, len);
}
// statx of dfd/path; path "" with AT_EMPTY_PATH: of dfd itself.
inline long statx(int dfd, const char* path, int flags, struct statx* out) {
  return sys::call(SYS_statx, dfd, path, flags | AT_STATX_SYNC_AS_STAT,
                   STATX_TYPE | STATX_MODE | STATX_UID | STATX_INO | STATX_SIZE, out);
}
inline long getdents64(int fd, void* buf, std::size_t n) {
  return sys::call(SYS_getdents64, fd, buf, n);
}
inline long kill(int pid, int sig) {
  return sys::call(SYS_kill, pid, sig);
}
inline std::uint32_t geteuid() {
  return static_cast<std::uint32_t>(sys::call(SYS_geteuid));
}

// The kernel's record in a getdents64 buffer.
struct Dirent64 {
  std::uint64_t ino;
  std::int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[1];
};

// Reads up to cap - 1 bytes of a small file (/proc) into buf, NUL-terminated.
// Returns the length, or -errno.
inline long read_file(int dfd, const char* path, char* buf, std::size_t cap) {
  long fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  std::size_t len = 0;
  while (len + 1 < cap) {
    long r = sys::read(static_cast<int>(fd), buf + len, cap - 1 - len);
    if (r <= 0) break;
    len += static_cast<std::size_t>(r);
  }
  sys::close(static_cast<int>(fd));
  buf[len] = '\0';
  return static_cast<long>(len);
}

// Field 22 of a /proc/<pid>/stat text (the start time in clock ticks after
// boot), or 0. The command (field 2) may hold spaces and parentheses: the
// fields are counted from its last ')'.
inline std::uint64_t stat_start_time(const char* text) {
  const char* p = nullptr;
  for (const char* s = text; *s; ++s)
    if (*s == ')') p = s;
  if (!p) return 0;
  ++p;
  for (int field = 3; field < 22; ++field) {  // skip fields 3..21
    while (*p == ' ') ++p;
    while (*p && *p != ' ') ++p;
    if (!*p) return 0;
  }
  while (*p == ' ') ++p;
  std::uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; ++p) v = v * 10 + static_cast<unsigned>(*p - '0');
  return v;
}

}  // namespace numaslub::sysf
