// printf-style formatting into a caller's buffer, with no allocation and no
// locale: the allocator's logs and its /proc-style views use this, since
// libc's stdio may allocate (DESIGN rule 1).
//
// Supported: %s %c %d %i %u %x %p %%, length modifiers l, ll, z, a field width
// (with '-' for left alignment and '0' for zero padding).
#pragma once

#include <cstdarg>
#include <cstddef>

namespace numaslub {

// Appends formatted text to a fixed buffer; output past the end is dropped,
// and the buffer is always NUL-terminated.
class BufWriter {
 public:
  BufWriter(char* buf, std::size_t cap) : buf_(buf), cap_(cap) {
    if (cap_) buf_[0] = '\0';
  }
  void printf(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  void vprintf(const char* fmt, std::va_list ap);
  void put(const char* s);
  void putc(char c);

  std::size_t size() const { return len_; }
  const char* data() const { return buf_; }
  bool truncated() const { return truncated_; }

 private:
  void put_num(unsigned long long v, bool neg, unsigned base, int width, bool left, bool zero);
  void put_padded(const char* s, std::size_t n, int width, bool left, char pad);

  char* buf_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool truncated_ = false;
};

// A file name from a pattern where "%p" stands for `pid` (so that a fork
// child, or another process under the same environment, writes a file of
// its own): prof_final, NUMASLUB_STATS. Returns the length, or 0 when the
// name does not fit `cap` (no truncated name is ever used).
std::size_t format_pid_path(char* buf, std::size_t cap, const char* pattern, long pid);

// snprintf equivalent; returns the length written (excluding the NUL).
std::size_t format(char* buf, std::size_t cap, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

}  // namespace numaslub
