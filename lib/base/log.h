// Logging over write(2). Safe on every path, including inside malloc and in a
// fork child: it formats into a stack buffer and makes one system call.
#pragma once

#include "lib/base/compiler.h"

namespace numaslub {

// Writes "numaslub: <message>\n" to stderr.
void log_msg(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Writes the message and aborts. Used for detected heap corruption and
// broken internal invariants; the message names the address involved.
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2))) NS_COLD;

// Writes all of buf to fd, retrying on short writes; errno is preserved.
void write_all(int fd, const char* buf, unsigned long n);

}  // namespace numaslub

#define NS_CHECK(cond, ...)                                   \
  do {                                                        \
    if (NS_UNLIKELY(!(cond))) ::numaslub::fatal(__VA_ARGS__); \
  } while (0)
