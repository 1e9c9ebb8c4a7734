// Heap profiles in gperftools' legacy text format, which google-pprof reads
// (prof.h); and what prof=1 / leak_check=1 do at exit.
//
//   heap profile:  IN: IN_BYTES [ ALLOC: ALLOC_BYTES] @ heapprofile
//        N:    BYTES [     N:    BYTES] @ 0xPC 0xPC ...
//   ...
//
//   MAPPED_LIBRARIES:
//   <the target's /proc/PID/maps>
//
// Each live sample is one line (pprof adds up lines with the same stack),
// its count and bytes scaled by 1 / (1 - exp(-size / prof_sample)), the
// inverse of its probability of being sampled, so the figures estimate all
// live memory. "heapprofile" tells pprof they need no scaling of its own.
// Only live memory is known, so the allocated pair repeats the live one.
// The first frame is a return address like the others: it is written
// minus one, so that every frame points into its call instruction (pprof
// subtracts one from the other frames itself).
#include <fcntl.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstdarg>

#include "lib/base/base.h"
#include "lib/slub/leak.h"
#include "lib/slub/prof.h"

namespace numaslub {

namespace {

// 1 - exp(-x) for x >= 0, without libm: the series where x is small (no
// cancellation), else exp(-x) by x = k ln2 + r, |r| <= ln2 / 2.
double one_minus_exp_neg(double x) {
  if (x < 0.25) {
    double term = x, sum = 0;
    for (int k = 1; k < 12; ++k) {
      sum += term;
      term *= -x / (k + 1);
    }
    return sum;
  }
  if (x > 700) return 1;
  double k = static_cast<double>(static_cast<long>(x / 0.6931471805599453 + 0.5));
  double r = x - k * 0.6931471805599453;  // exp(-x) = 2^-k * exp(-r)
  double term = 1, e = 0;
  for (int i = 1; i < 16; ++i) {
    e += term;
    term *= -r / i;
  }
  for (long i = 0; i < static_cast<long>(k); ++i) e *= 0.5;
  return 1 - e;
}

// A buffered writer over a file descriptor.
class FdOut {
 public:
  explicit FdOut(int fd) : fd_(fd) {}
  ~FdOut() { flush(); }
  FdOut(const FdOut&) = delete;
  FdOut& operator=(const FdOut&) = delete;
  __attribute__((format(printf, 2, 3))) void printf(const char* fmt, ...) {
    if (kCap - len_ < 512) flush();
    BufWriter w(buf_ + len_, kCap - len_);
    std::va_list ap;
    va_start(ap, fmt);
    w.vprintf(fmt, ap);
    va_end(ap);
    len_ += w.size();
  }
  void write(const char* p, std::size_t n) {
    flush();
    write_all(fd_, p, n);
  }
  void flush() {
    if (len_) write_all(fd_, buf_, len_);
    len_ = 0;
  }

 private:
  static constexpr std::size_t kCap = 8192;
  int fd_;
  std::size_t len_ = 0;
  char buf_[kCap];
};

std::uint64_t round_u64(double v) {
  return static_cast<std::uint64_t>(v + 0.5);
}

}  // namespace

double prof_scale(std::uint64_t size, std::uint64_t interval) {
  double s = size ? static_cast<double>(size) : 1;
  return 1 / one_minus_exp_neg(s / static_cast<double>(interval ? interval : 1));
}

int prof_write_profile(int out_fd, const ProfFileHeader* h, std::size_t bytes, int maps_fd) {
  if (h->magic != kProfMagic || h->version != kProfVersion ||
      h->record_size != sizeof(ProfRecord) || h->header_size < sizeof(ProfFileHeader) ||
      bytes < h->header_size)
    return 71;  // EPROTO
  std::uint64_t n = __atomic_load_n(&h->hwm, __ATOMIC_ACQUIRE);
  std::uint64_t fit = (bytes - h->header_size) / sizeof(ProfRecord);
  if (n > fit) n = fit;
  std::uint64_t interval = h->interval;
  ProfRecord r;
  std::uint64_t objs = 0, total = 0;
  for (std::uint64_t i = 0; i < n; ++i)
    if (prof_read_record(h, i, &r)) {
      double s = prof_scale(r.size, interval);
      objs += round_u64(s);
      total += round_u64(s * static_cast<double>(r.size));
    }
  FdOut out(out_fd);
  out.printf("heap profile: %6lu: %8lu [%6lu: %8lu] @ heapprofile\n",
             static_cast<unsigned long>(objs), static_cast<unsigned long>(total),
             static_cast<unsigned long>(objs), static_cast<unsigned long>(total));
  for (std::uint64_t i = 0; i < n; ++i) {
    if (!prof_read_record(h, i, &r)) continue;
    double s = prof_scale(r.size, interval);
    unsigned long c = round_u64(s), b = round_u64(s * static_cast<double>(r.size));
    out.printf("%6lu: %8lu [%6lu: %8lu] @", c, b, c, b);
    for (unsigned k = 0; k < r.nframes; ++k)
      out.printf(" 0x%lx", static_cast<unsigned long>(k == 0 ? r.frames[k] - 1 : r.frames[k]));
    out.printf("\n");
  }
  out.printf("\nMAPPED_LIBRARIES:\n");
  char buf[4096];
  long got;
  while (maps_fd >= 0 && (got = sys::read(maps_fd, buf, sizeof buf)) > 0)
    out.write(buf, static_cast<std::size_t>(got));
  return 0;
}

int prof_exit() {
  if (!g_prof_on) return 0;
  const Config& cfg = config();
  std::size_t bytes;
  const ProfFileHeader* h = prof_region(&bytes);
  if (cfg.prof_final[0]) {
    // "%p" in the path is the pid (a fork child writes its own).
    char path[160];
    if (!format_pid_path(path, sizeof path, cfg.prof_final, sys::getpid())) path[0] = '\0';
    long fd = path[0] ? sys::call(SYS_openat, AT_FDCWD, path,
                                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                      : -ENAMETOOLONG;
    if (fd < 0) {
      log_msg("prof_final: cannot open %s (errno %ld)", cfg.prof_final, -fd);
    } else {
      long maps = sys::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
      if (h) {
        prof_write_profile(static_cast<int>(fd), h, bytes, static_cast<int>(maps));
      } else {  // nothing sampled: an empty profile pprof still reads
        ProfFileHeader empty{};
        empty.magic = kProfMagic;
        empty.version = kProfVersion;
        empty.record_size = sizeof(ProfRecord);
        empty.header_size = sizeof(ProfFileHeader);
        empty.interval = cfg.prof_sample;
        prof_write_profile(static_cast<int>(fd), &empty, sizeof empty, static_cast<int>(maps));
      }
      if (maps >= 0) sys::close(static_cast<int>(maps));
      sys::close(static_cast<int>(fd));
    }
  }
  if (cfg.leak_check && leak_check_report(2) != 0 && cfg.leak_exitcode)
    return static_cast<int>(cfg.leak_exitcode);
  return 0;
}

}  // namespace numaslub
