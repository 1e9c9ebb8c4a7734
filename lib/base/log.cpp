#include "lib/base/log.h"

#include <cstdarg>

#include "lib/base/format.h"
#include "lib/base/lock.h"
#include "lib/base/syscall.h"

namespace numaslub {

void write_all(int fd, const char* buf, unsigned long n) {
  while (n > 0) {
    long r = sys::write(fd, buf, n);
    if (r == -4 /*EINTR*/) continue;
    if (r <= 0) return;
    buf += r;
    n -= static_cast<unsigned long>(r);
  }
}

namespace {
void vlog(const char* fmt, std::va_list ap) {
  char buf[512];
  BufWriter w(buf, sizeof buf - 1);
  w.put("numaslub: ");
  w.vprintf(fmt, ap);
  buf[w.size()] = '\n';
  write_all(2, buf, w.size() + 1);
}
}  // namespace

void log_msg(const char* fmt, ...) {
  std::va_list ap;
  va_start(ap, fmt);
  vlog(fmt, ap);
  va_end(ap);
}

void fatal(const char* fmt, ...) {
  std::va_list ap;
  va_start(ap, fmt);
  vlog(fmt, ap);
  va_end(ap);
  sys::abort_now();
}

void mutex_self_deadlock(const void* lock) {
  fatal(
      "self-deadlock: thread %u waits for allocator lock %p that it holds itself (a signal "
      "handler interrupted the allocator?)",
      this_thread_id(), lock);
}

}  // namespace numaslub
