// numaslub-top: a live view of another process's heap, in the manner of
// slabtop and top, from the views it publishes (lib/views/reader.h).
//
//   numaslub-top [-d SECS] [-n N] [-b] [-s bytes|objs|delta|name] [--dir DIR] PID
//
// Every SECS (default 1) it asks the target for a fresh snapshot and shows:
// the heap's totals; kswapd's activity and the remote frees, with their
// change since the last refresh; per node, the pages present, used, cached
// free, released, on per-CPU lists, and the node's NUMA counters; then the
// caches, sorted by active bytes, with the change since the last refresh.
// On a terminal it redraws the screen with ANSI escapes ('q' quits, space
// refreshes now); otherwise, or with -b, it prints plain frames one after
// the other. -n N stops after N frames. It exits 0 when the target exits.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "lib/views/views.h"

using namespace numaslub;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: numaslub-top [-d SECS] [-n N] [-b] [-s bytes|objs|delta|name] [--dir DIR] "
               "PID\n");
  return 2;
}

std::string human(double bytes, bool sign = false) {
  static const char* const units[] = {"B", "K", "M", "G", "T"};
  double v = std::fabs(bytes);
  unsigned u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char s[32];
  const char* sg = !sign ? "" : bytes > 0 ? "+" : bytes < 0 ? "-" : "";
  if (sign && bytes == 0) return "0";
  std::snprintf(s, sizeof s, u ? "%s%.1f%s" : "%s%.0f%s", bytes < 0 && !sign ? "-" : sg, v,
                units[u]);
  return s;
}

std::string delta(std::uint64_t now, std::uint64_t before, bool have) {
  if (!have) return "";
  char s[32];
  long long d = static_cast<long long>(now - before);
  std::snprintf(s, sizeof s, " (%+lld)", d);
  return s;
}

struct Frame {
  std::vector<char> buf;
  pub::Snapshot s;
};

enum class SortBy { kBytes, kObjs, kDelta, kName };

struct Options {
  double delay = 1.0;
  long frames = -1;  // -1: until quit
  bool batch = false;
  SortBy sort = SortBy::kBytes;
  int rows = 0;  // terminal rows (0: no limit)
};

std::string render_frame(const Frame& cur, const Frame* prev, const Options& o) {
  const pub::Snapshot& s = cur.s;
  const pub::FileHeader& f = *s.file;
  bool hp = prev != nullptr;
  const pub::Snapshot* p = hp ? &prev->s : nullptr;
  std::string out;
  char line[512];
  std::time_t now = std::time(nullptr);
  char clock[16];
  std::strftime(clock, sizeof clock, "%H:%M:%S", std::localtime(&now));
  std::snprintf(line, sizeof line,
                "numaslub-top - pid %d (%.16s)  %s  snapshot #%lu, %.2f s old, taken in %lu us\n",
                f.pid, f.comm, clock, static_cast<unsigned long>(s.head->seq),
                static_cast<double>(s.age_ns) / 1e9,
                static_cast<unsigned long>(s.head->collect_ns / 1000));
  out += line;
  pub::HeapSummary h = pub::heap_summary(s);
  char policy[pub::kPolicyLen + 1] = {};
  std::memcpy(policy, s.head->policy, pub::kPolicyLen);
  std::snprintf(line, sizeof line,
                "Heap: %s present, %s used, %s cached free, %s released; vmalloc %lu (%s); "
                "%s; policy %s\n",
                human(h.present).c_str(), human(h.used).c_str(), human(h.cached).c_str(),
                human(h.released).c_str(), static_cast<unsigned long>(s.head->vmalloc_count),
                human(static_cast<double>(s.head->vmalloc_bytes)).c_str(),
                (s.head->flags & pub::kSnapRseq) ? "per-CPU sheaves" : "per-thread sheaves",
                policy);
  out += line;
  auto st = [&](const char* name) { return s.stat(name); };
  auto dt = [&](const char* name) { return delta(s.stat(name), hp ? p->stat(name) : 0, hp); };
  std::string running;
  for (unsigned n = 0; n < f.nr_nodes; ++n)
    if (s.zones[n].kswapd_running) {
      if (!running.empty()) running += ',';
      running += std::to_string(n);
    }
  std::snprintf(line, sizeof line,
                "kswapd: running on node(s) %s; wakeups %lu%s, passes %lu%s, released %lu "
                "pages%s, idle drains %lu%s, pressure %lu%s, direct reclaim %lu%s\n",
                running.empty() ? "none" : running.c_str(),
                static_cast<unsigned long>(st("kswapd_wakeups")), dt("kswapd_wakeups").c_str(),
                static_cast<unsigned long>(st("kswapd_passes")), dt("kswapd_passes").c_str(),
                static_cast<unsigned long>(st("kswapd_released")), dt("kswapd_released").c_str(),
                static_cast<unsigned long>(st("sheaf_idle_drains")),
                dt("sheaf_idle_drains").c_str(), static_cast<unsigned long>(st("pressure_events")),
                dt("pressure_events").c_str(), static_cast<unsigned long>(st("direct_reclaim")),
                dt("direct_reclaim").c_str());
  out += line;
  std::uint64_t pages_remote = 0, pages_remote_prev = 0;
  for (unsigned n = 0; n < f.nr_nodes; ++n) {
    pages_remote += s.zones[n].remote_free;
    if (hp) pages_remote_prev += p->zones[n].remote_free;
  }
  std::snprintf(line, sizeof line,
                "Remote frees: slab objects %lu%s, pages %lu%s; sheaf refills %lu%s, flushes "
                "%lu%s\n\n",
                static_cast<unsigned long>(st("slab_remote_free")), dt("slab_remote_free").c_str(),
                static_cast<unsigned long>(pages_remote),
                delta(pages_remote, pages_remote_prev, hp).c_str(),
                static_cast<unsigned long>(st("sheaf_refill")), dt("sheaf_refill").c_str(),
                static_cast<unsigned long>(st("sheaf_flush")), dt("sheaf_flush").c_str());
  out += line;
  std::snprintf(line, sizeof line, "%4s %10s %10s %10s %10s %8s %8s %10s %10s %12s\n", "NODE",
                "PRESENT", "USED", "FREE", "RELEASED", "PCP", "ISOLATED", "NUMA_HIT", "NUMA_MISS",
                "REMOTE_FREE");
  out += line;
  for (unsigned n = 0; n < f.nr_nodes; ++n) {
    const pub::ZoneSnap& z = s.zones[n];
    std::uint64_t released = z.clean_pages + z.lazy_pages;
    std::uint64_t free = z.free_pages > released ? z.free_pages - released : 0;
    std::uint64_t used = z.present_pages - std::min(z.present_pages, z.free_pages + z.pcp_pages);
    std::snprintf(line, sizeof line, "%4u %10lu %10lu %10lu %10lu %8lu %8lu %10lu %10lu %12lu\n", n,
                  static_cast<unsigned long>(z.present_pages), static_cast<unsigned long>(used),
                  static_cast<unsigned long>(free), static_cast<unsigned long>(released),
                  static_cast<unsigned long>(z.pcp_pages),
                  static_cast<unsigned long>(z.isolated_pages),
                  static_cast<unsigned long>(z.numa_hit), static_cast<unsigned long>(z.numa_miss),
                  static_cast<unsigned long>(z.remote_free));
    out += line;
  }
  out += "(pages of 4 KiB; FREE: cached and resident, RELEASED: free and given back)\n\n";

  struct Row {
    unsigned cls;
    std::uint64_t objs, bytes;
    long long dbytes;
  };
  std::vector<Row> rows;
  for (unsigned c = 0; (s.head->flags & pub::kSnapSlubReady) && c < f.nr_classes; ++c) {
    const pub::CacheSnap& cs = s.caches[c];
    if (cs.total.slabs == 0 && cs.total.inuse == 0) continue;
    std::uint64_t bytes = cs.total.inuse * cs.size;
    long long d = 0;
    if (hp && c < p->file->nr_classes)
      d = static_cast<long long>(bytes) -
          static_cast<long long>(p->caches[c].total.inuse * p->caches[c].size);
    rows.push_back({c, cs.total.inuse, bytes, d});
  }
  std::stable_sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
    switch (o.sort) {
      case SortBy::kObjs:
        return a.objs > b.objs;
      case SortBy::kDelta:
        return std::llabs(a.dbytes) > std::llabs(b.dbytes);
      case SortBy::kName:
        return std::strcmp(s.caches[a.cls].name, s.caches[b.cls].name) < 0;
      case SortBy::kBytes:
        break;
    }
    return a.bytes > b.bytes;
  });
  std::snprintf(line, sizeof line, "%-14s %11s %11s %8s %11s %10s %7s %7s %7s %9s\n", "CACHE",
                "ACTIVE_OBJS", "OBJS", "OBJSIZE", "ACTIVE", "CHANGE", "SLABS", "PARTIAL", "SHEAVES",
                "REMOTE");
  out += line;
  int budget = o.rows > 0 ? o.rows - 1 - static_cast<int>(std::count(out.begin(), out.end(), '\n'))
                          : 1 << 30;
  int shown = 0;
  for (const Row& r : rows) {
    if (shown >= budget) break;
    const pub::CacheSnap& cs = s.caches[r.cls];
    std::string change = hp ? human(static_cast<double>(r.dbytes), true) : "";
    std::snprintf(
        line, sizeof line, "%-14.24s %11lu %11lu %8u %11s %10s %7lu %7lu %7lu %9lu\n", cs.name,
        static_cast<unsigned long>(r.objs), static_cast<unsigned long>(cs.total.slabs * cs.objects),
        cs.size, human(static_cast<double>(r.bytes)).c_str(), change.c_str(),
        static_cast<unsigned long>(cs.total.slabs), static_cast<unsigned long>(cs.total.partial),
        static_cast<unsigned long>(cs.total.full_sheaves),
        static_cast<unsigned long>(cs.total.remote_frees));
    out += line;
    ++shown;
  }
  if (shown < static_cast<int>(rows.size())) {
    std::snprintf(line, sizeof line, "... %zu more caches\n", rows.size() - shown);
    out += line;
  }
  return out;
}

// ---- the terminal

termios g_saved_tty;
bool g_tty_raw = false;
volatile sig_atomic_t g_quit = 0;

void restore_tty() {
  if (g_tty_raw) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_tty);
  g_tty_raw = false;
}

void on_signal(int) {
  g_quit = 1;
}

void raw_tty() {
  if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &g_saved_tty) != 0) return;
  termios t = g_saved_tty;
  t.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
  t.c_cc[VMIN] = 0;
  t.c_cc[VTIME] = 0;
  if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
    g_tty_raw = true;
    std::atexit(restore_tty);
  }
}

int term_rows() {
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) return ws.ws_row;
  return 24;
}

// Sleeps up to secs; false when the user asked to quit.
bool pause_for(double secs, bool interactive) {
  int ms = static_cast<int>(secs * 1000);
  if (!interactive) {
    timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_quit) {
    }
    return !g_quit;
  }
  pollfd pf{STDIN_FILENO, POLLIN, 0};
  if (poll(&pf, 1, ms) > 0) {
    char c = 0;
    if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) return false;
  }
  return !g_quit;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  int pid = 0;
  char dir[512] = {};
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (std::strcmp(a, "-d") == 0) {
      const char* v = value();
      char* end;
      o.delay = v ? std::strtod(v, &end) : 0;
      if (!v || *end || !(o.delay >= 0.05) || o.delay > 3600) return usage();
    } else if (std::strcmp(a, "-n") == 0) {
      const char* v = value();
      char* end;
      o.frames = v ? std::strtol(v, &end, 10) : 0;
      if (!v || *end || o.frames < 1) return usage();
    } else if (std::strcmp(a, "-b") == 0) {
      o.batch = true;
    } else if (std::strcmp(a, "-s") == 0) {
      const char* v = value();
      if (!v) return usage();
      if (std::strcmp(v, "bytes") == 0)
        o.sort = SortBy::kBytes;
      else if (std::strcmp(v, "objs") == 0)
        o.sort = SortBy::kObjs;
      else if (std::strcmp(v, "delta") == 0)
        o.sort = SortBy::kDelta;
      else if (std::strcmp(v, "name") == 0)
        o.sort = SortBy::kName;
      else
        return usage();
    } else if (std::strcmp(a, "--dir") == 0) {
      const char* v = value();
      if (!v) return usage();
      std::snprintf(dir, sizeof dir, "%s", v);
    } else if (a[0] >= '1' && a[0] <= '9' && !pid) {
      char* end;
      long v = std::strtol(a, &end, 10);
      if (*end || v > 0x7fffffff) return usage();
      pid = static_cast<int>(v);
    } else {
      return usage();
    }
  }
  if (!pid) return usage();
  if (!dir[0] && !pub::default_dir(dir, sizeof dir)) return 1;
  pub::Target t;
  if (int e = pub::target_open(dir, pid, &t)) {
    std::fprintf(stderr, "numaslub-top: pid %d: %s\n", pid,
                 e == ENOENT ? "publishes no views (not under numaslub, publish=0, or not yet)"
                             : std::strerror(e));
    return 1;
  }
  if (pub::Liveness lv = pub::target_liveness(t); lv != pub::Liveness::kLive) {
    std::fprintf(stderr, "numaslub-top: pid %d: stale views file (%s)\n", pid,
                 pub::liveness_name(lv));
    return 1;
  }
  bool screen = !o.batch && isatty(STDOUT_FILENO);
  if (screen) raw_tty();
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (screen) std::fputs("\033[?25l", stdout);  // hide the cursor

  Frame frames[2];
  Frame* prev = nullptr;
  int rc = 0;
  pub::wait_snapshot(t, pub::request_snapshot(t), 200);
  for (long i = 0; o.frames < 0 || i < o.frames; ++i) {
    Frame& cur = frames[i & 1];
    cur.buf.resize(pub::snapshot_bytes(t));
    int e = pub::read_snapshot(t, cur.buf.data(), cur.buf.size(), &cur.s);
    pub::Liveness lv = pub::target_liveness(t);
    if (lv != pub::Liveness::kLive) {
      std::fprintf(stderr, "numaslub-top: pid %d has exited\n", pid);
      break;
    }
    if (e) {
      std::fprintf(stderr, "numaslub-top: pid %d: cannot read a snapshot: %s\n", pid,
                   std::strerror(e));
      rc = 1;
      break;
    }
    o.rows = screen ? term_rows() : 0;
    std::string text = render_frame(cur, prev, o);
    if (screen) {
      std::fputs("\033[H\033[2J", stdout);
      std::fputs(text.c_str(), stdout);
    } else {
      if (i > 0) std::fputc('\n', stdout);
      std::fputs(text.c_str(), stdout);
    }
    std::fflush(stdout);
    prev = &cur;
    if (o.frames >= 0 && i + 1 >= o.frames) break;
    // Sleep, then ask for a fresh snapshot and give the target a moment to
    // take it (a target that does not answer shows its last one, and its age).
    double settle = o.delay / 4 < 0.05 ? o.delay / 4 : 0.05;
    if (!pause_for(o.delay - settle, screen && g_tty_raw)) break;
    pub::wait_snapshot(t, pub::request_snapshot(t), static_cast<unsigned>(settle * 1000));
  }
  if (screen) std::fputs("\033[?25h\n", stdout);
  restore_tty();
  pub::target_close(&t);
  return rc;
}
