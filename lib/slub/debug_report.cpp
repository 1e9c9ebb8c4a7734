// slub_debug reports, in the layout of the kernel's (mm/slub.c: slab_bug,
// print_tracking, print_trailer, slab_fix):
//
//   numaslub: BUG kmalloc-64: Right Redzone overwritten
//   -----------------------------------------------------------------------------
//   INFO: 0x7f...50-0x7f...57 @offset=80. First byte 0x41 instead of 0xcc
//   INFO: Allocated in 0x55... (/usr/bin/prog+0x1234) age=3 ms cpu=1 pid=4242
//           0x55... (/usr/bin/prog+0x1234)
//           ...
//   INFO: Freed in ...
//   INFO: Slab 0x7f...000 objects=56 used=3 fp=0x7f...140 node=0
//   INFO: Object 0x7f...040 @offset=64 size=64 asked=64 state=allocated fp=-
//
//   Redzone  0x7f...030: cc cc cc ...  ................
//   Object   0x7f...040: 41 41 41 ...  AAAAAAAAAAAAAAAA
//   Redzone  0x7f...080: 41 41 41 ...  AAAAAAAAAAAAAAAA
//   Padding  0x7f...090: cc cc cc ...  ........
//   CPU: 1 PID: 4242
//   Call Trace:
//           0x55... (/usr/bin/prog+0x1300)
//   FIX kmalloc-64: Restoring Right Redzone 0x7f...080-0x7f...08f=0xcc
//
// The BUG line comes first (tests and scripts look for it), then the
// kernel's dashes. Each report is written under one lock, in pieces of a
// 2 KiB buffer, to stderr or debug_log (opened on the first report).
#include <fcntl.h>
#include <sys/syscall.h>

#include <cstdarg>

#include "lib/base/base.h"
#include "lib/slub/debug_internal.h"

namespace numaslub {

namespace {

constinit Mutex g_report_lock;
constinit int g_report_fd = -1;
constinit thread_local bool t_validating NS_TLS_IE = false;
const char* const kStates[] = {"free", "allocated", "quarantined"};

int report_fd() {
  if (g_report_fd >= 0) return g_report_fd;
  int fd = 2;
  if (const char* path = config().debug_log; path[0]) {
    long r = sys::call(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (r >= 0)
      fd = static_cast<int>(r);
    else
      log_msg("debug_log: cannot open %s (error %ld): reports go to stderr", path, -r);
  }
  g_report_fd = fd;
  return fd;
}

}  // namespace

bool debug_reports_fatal() {
  return !t_validating && !config().debug_continue;
}

void debug_set_validating(bool on) {
  t_validating = on;
}

void debug_report_fork_child(std::uint32_t self) {
  g_report_lock.reset_if_orphaned(self);
}

DebugReport::DebugReport(const KmemCache& c, const char* fmt, ...) : c_(&c) {
  std::va_list ap;
  va_start(ap, fmt);
  begin(c.name, fmt, ap);
  va_end(ap);
}

DebugReport::DebugReport(const char* what, const char* fmt, ...) : c_(nullptr) {
  std::va_list ap;
  va_start(ap, fmt);
  begin(what, fmt, ap);
  va_end(ap);
}

void DebugReport::begin(const char* name, const char* fmt, std::va_list ap) {
  g_report_lock.lock();
  BufWriter w(buf_, sizeof buf_ - 1);
  w.printf("numaslub: BUG %s: ", name);
  w.vprintf(fmt, ap);
  len_ = w.size();
  buf_[len_++] = '\n';
  line("-----------------------------------------------------------------------------");
}

void DebugReport::flush() {
  write_all(report_fd(), buf_, len_);
  len_ = 0;
}

void DebugReport::line(const char* fmt, ...) {
  if (sizeof buf_ - len_ < 600) flush();
  BufWriter w(buf_ + len_, sizeof buf_ - len_ - 1);
  std::va_list ap;
  va_start(ap, fmt);
  w.vprintf(fmt, ap);
  va_end(ap);
  len_ += w.size();
  buf_[len_++] = '\n';
}

void DebugReport::mismatch(const void* slot, const std::uint8_t* from, const std::uint8_t* to,
                           std::uint8_t want) {
  line("INFO: %p-%p @offset=%zu. First byte 0x%x instead of 0x%x", static_cast<const void*>(from),
       static_cast<const void*>(to - 1),
       static_cast<std::size_t>(from - static_cast<const std::uint8_t*>(slot)), *from, want);
}

void DebugReport::hexdump(const char* label, const void* p, std::size_t n) {
  auto* b = static_cast<const std::uint8_t*>(p);
  for (std::size_t off = 0; off < n; off += 16) {
    char hex[16 * 3 + 1], ascii[17];
    std::size_t k = n - off < 16 ? n - off : 16;
    for (std::size_t i = 0; i < 16; ++i) {
      if (i < k) {
        std::uint8_t v = b[off + i];
        format(hex + 3 * i, 4, "%02x ", v);
        ascii[i] = v >= 0x20 && v < 0x7f ? static_cast<char>(v) : '.';
      } else {
        format(hex + 3 * i, 4, "   ");
        ascii[i] = '\0';
      }
    }
    ascii[k] = '\0';
    line("%-8s %p: %s %s", label, static_cast<const void*>(b + off), hex, ascii);
  }
}

void DebugReport::track(const char* what, const Track& t) {
  if (!t.when_ns) return;
  char where[256] = "?";
  if (t.frames[0]) stack_trace_describe(t.frames[0], where, sizeof where);
  std::uint64_t now = now_ns();
  line("INFO: %s in %s age=%llu ms cpu=%d pid=%u", what, where,
       static_cast<unsigned long long>(now > t.when_ns ? (now - t.when_ns) / 1000000 : 0), t.cpu,
       t.tid);
  for (unsigned i = 0; i < kTrackFrames && t.frames[i]; ++i) {
    stack_trace_describe(t.frames[i], where, sizeof where);
    line("        %s", where);
  }
}

void DebugReport::slab(const Slab* s) {
  line("INFO: Slab %p objects=%u used=%u fp=%p node=%u", SlubDebug::slab_base(*c_, s), s->objects,
       s->inuse, s->freelist, s->nid);
}

void DebugReport::object(const Slab* s, unsigned idx) {
  DebugMeta* m = SlubDebug::meta(s);
  char* obj = SlubDebug::object(*c_, s, idx);
  if (m->tracks) {
    track("Allocated", m->tracks[2 * idx]);
    track("Freed", m->tracks[2 * idx + 1]);
  }
  slab(s);
  void* fp = nullptr;
  if (m->state[idx] == kObjFree) {
    void** w = SlubDebug::fp_word(*c_, obj);
    fp = SlubDebug::decode(*c_, s, *w, w);
  }
  line("INFO: Object %p @offset=%zu size=%u asked=%u state=%s fp=%p", static_cast<void*>(obj),
       static_cast<std::size_t>(obj - lay(*c_).red_left - SlubDebug::slab_base(*c_, s)), c_->size,
       m->orig[idx], kStates[m->state[idx] < 3 ? m->state[idx] : 0], fp);
  line("%s", "");
  if (lay(*c_).red_left) hexdump("Redzone", obj - lay(*c_).red_left, lay(*c_).red_left);
  std::size_t shown = c_->size < 256 ? c_->size : 256;
  hexdump("Object", obj, shown);
  if (shown < c_->size) line("Object   ... %zu more bytes", c_->size - shown);
  if (lay(*c_).red_left) hexdump("Redzone", obj + c_->size, lay(*c_).fp_off - c_->size);
  hexdump("Padding", obj + lay(*c_).fp_off, lay(*c_).stride - lay(*c_).red_left - lay(*c_).fp_off);
}

void DebugReport::done() {
  std::uintptr_t pcs[kTrackFrames];
  unsigned n = debug_user_stack(pcs, kTrackFrames);
  line("CPU: %d PID: %u", current_cpu(), this_thread_id());
  if (n) line("Call Trace:");
  char where[256];
  for (unsigned i = 0; i < n; ++i) {
    stack_trace_describe(pcs[i], where, sizeof where);
    line("        %s", where);
  }
  bool fatal = debug_reports_fatal();
  if (fatal) line("numaslub: aborting (NUMASLUB_CONF=debug_continue=1 reports and goes on)");
  flush();
  if (fatal) sys::abort_now();
  g_report_lock.unlock();
}

}  // namespace numaslub
