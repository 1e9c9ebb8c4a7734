// numaslub-info: prints the heap's views the way the kernel prints its own.
//
//   numaslub-info                 exercise the page allocator a little, then
//                                 print buddyinfo and zoneinfo
//   numaslub-info --config-help   list every NUMASLUB_CONF option
//   numaslub-info --list [--json] the processes of this user running numaslub
//                                 (pid, command, resident heap, nodes); stale
//                                 files of processes that are gone are removed
//   numaslub-info --pid PID [--json] [VIEW...]
//                                 the views another process publishes, VIEW one
//                                 of buddyinfo zoneinfo slabinfo vmstat all
//                                 (default all: the NUMASLUB_STATS report)
//   numaslub-info --pid PID --heap-profile FILE
//                                 the heap profile of live sampled memory of
//                                 a process running with prof=1, in the text
//                                 format google-pprof reads (FILE - : stdout)
//   numaslub-info validate        slub_debug's validation (numaslub_validate)
//                                 of this tool's own heap after a workload
//                                 of every size class; debug caches from
//                                 NUMASLUB_CONF's slub_debug, FZPU if unset.
//                                 Exits with the number of problems (max 255).
// Common options: --dir DIR (default $TMPDIR/numaslub-<uid>, or /tmp/...),
// --no-refresh (do not ask the target for a fresh snapshot), --keep-stale.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"
#include "lib/slub/slub.h"
#include "lib/views/views.h"

using namespace numaslub;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: numaslub-info [--config-help | validate]\n"
               "       numaslub-info --list [--json] [--dir DIR] [--keep-stale]\n"
               "       numaslub-info --pid PID --heap-profile FILE [--dir DIR]\n"
               "       numaslub-info --pid PID [--json] [--dir DIR] [--no-refresh] "
               "[buddyinfo|zoneinfo|slabinfo|vmstat|all]...\n");
  return 2;
}

int validate_action() {
  Config c = config();
  if (!c.slub_debug[0]) c.parse("slub_debug=FZPU");
  config_set_for_test(c);  // before the heap is set up
  // Every class, every second object kept, the rest freed: slabs partly
  // used, some full, freed objects poisoned.
  static void* kept[kNrClasses * 64];
  std::size_t n = 0;
  for (unsigned cls = 0; cls < kNrClasses; ++cls)
    for (unsigned i = 0; i < 128; ++i) {
      void* p = kmalloc(kClassSize[cls] - (i % 16));
      if (i % 2 && p)
        kept[n++] = p;
      else
        kfree(p);
    }
  std::size_t problems = kmem_validate();
  std::printf("validate: slub_debug=%s: %zu problems in %zu objects of %u caches\n",
              config().slub_debug, problems, n, kNrClasses);
  for (std::size_t i = 0; i < n; ++i) kfree(kept[i]);
  return problems > 255 ? 255 : static_cast<int>(problems);
}

int self_test() {
  PageAllocator* pa = page_allocator();
  if (!pa) {
    std::fprintf(stderr, "numaslub-info: no heap could be reserved\n");
    return 1;
  }
  // A small mixed workload so the views have something to show: blocks of
  // every order on every node, half of them freed again.
  Page* held[256];
  unsigned n = 0;
  for (unsigned i = 0; i < 256; ++i) {
    unsigned order = i % kNrOrders;
    held[n] = pa->alloc_pages(static_cast<int>(i % pa->nr_nodes()), order);
    if (held[n]) ++n;
  }
  for (unsigned i = 0; i < n; i += 2) pa->free_pages(held[i], held[i]->order);
  static char buf[1 << 16];
  std::printf("== buddyinfo ==\n");
  pa->buddyinfo(buf, sizeof buf);
  std::fputs(buf, stdout);
  std::printf("== zoneinfo ==\n");
  pa->zoneinfo(buf, sizeof buf);
  std::fputs(buf, stdout);
  for (unsigned i = 1; i < n; i += 2) pa->free_pages(held[i], held[i]->order);
  return 0;
}

// Renders with fn into a buffer that grows until the text fits.
template <typename Fn>
std::string render(Fn fn) {
  std::vector<char> buf(1 << 16);
  for (;;) {
    BufWriter w(buf.data(), buf.size());
    fn(w);
    if (!w.truncated()) return std::string(buf.data(), w.size());
    buf.resize(buf.size() * 4);
  }
}

std::string human(std::uint64_t bytes) {
  static const char* const units[] = {"B", "K", "M", "G", "T"};
  double v = static_cast<double>(bytes);
  unsigned u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char s[32];
  std::snprintf(s, sizeof s, u ? "%.1f%s" : "%.0f%s", v, units[u]);
  return s;
}

// s (at most max bytes) as a JSON string.
std::string json_str(const char* s, std::size_t max) {
  std::string out = "\"";
  for (std::size_t i = 0; i < max && s[i]; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char e[8];
      std::snprintf(e, sizeof e, "\\u%04x", c);
      out += e;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The process's resident set from /proc (kB), or 0.
std::uint64_t vm_rss_kb(int pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char line[256];
  std::uint64_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmRSS: %lu", &kb) == 1) break;
  std::fclose(f);
  return kb;
}

// Reads a consistent snapshot of t, fresh when the target answers within
// 200 ms (unless no_refresh). Returns 0 or an errno, with the snapshot's
// buffer in buf.
int read_fresh(const pub::Target& t, bool no_refresh, std::vector<char>* buf, pub::Snapshot* s) {
  if (!no_refresh) pub::wait_snapshot(t, pub::request_snapshot(t), 200);
  buf->resize(pub::snapshot_bytes(t));
  int e = pub::read_snapshot(t, buf->data(), buf->size(), s);
  if (e == ENODATA) {  // made but not published yet: one more wait
    pub::wait_snapshot(t, 0, 1000);
    e = pub::read_snapshot(t, buf->data(), buf->size(), s);
  }
  return e;
}

struct ListCtx {
  bool json, no_refresh;
  std::vector<std::string> rows;
};

void list_one(pub::Target& t, void* arg) {
  auto* ctx = static_cast<ListCtx*>(arg);
  std::vector<char> buf;
  pub::Snapshot s;
  if (read_fresh(t, ctx->no_refresh, &buf, &s) != 0) return;
  pub::HeapSummary h = pub::heap_summary(s);
  const pub::FileHeader& f = *s.file;
  char policy[pub::kPolicyLen + 1] = {};
  std::memcpy(policy, s.head->policy, pub::kPolicyLen);
  char line[4096];
  if (ctx->json) {
    std::snprintf(line, sizeof line,
                  "{\"pid\":%d,\"comm\":%s,\"cmdline\":%s,\"rss_bytes\":%lu,"
                  "\"heap_resident_bytes\":%lu,\"heap_used_bytes\":%lu,"
                  "\"heap_present_bytes\":%lu,\"nodes\":%u,\"policy\":%s,\"seq\":%lu,"
                  "\"age_ms\":%lu}",
                  f.pid, json_str(f.comm, sizeof f.comm).c_str(),
                  json_str(f.cmdline, sizeof f.cmdline).c_str(),
                  static_cast<unsigned long>(vm_rss_kb(f.pid) * 1024),
                  static_cast<unsigned long>(h.resident), static_cast<unsigned long>(h.used),
                  static_cast<unsigned long>(h.present), f.nr_nodes,
                  json_str(policy, sizeof policy).c_str(), static_cast<unsigned long>(s.head->seq),
                  static_cast<unsigned long>(s.age_ns / 1000000));
    ctx->rows.push_back(line);
    return;
  }
  std::snprintf(line, sizeof line, "%7d %-16.16s %8s %9s %9s %5u  %-12s %6.1fs  %s", f.pid, f.comm,
                human(vm_rss_kb(f.pid) * 1024).c_str(), human(h.resident).c_str(),
                human(h.used).c_str(), f.nr_nodes, policy, static_cast<double>(s.age_ns) / 1e9,
                f.cmdline);
  ctx->rows.push_back(line);
}

int do_list(const char* dir, bool json, bool clean, bool no_refresh) {
  ListCtx ctx{json, no_refresh, {}};
  pub::ListStats ls = pub::list_targets(dir, clean, list_one, &ctx);
  if (json) {
    std::printf("[");
    for (std::size_t i = 0; i < ctx.rows.size(); ++i)
      std::printf("%s%s", i ? ",\n" : "\n", ctx.rows[i].c_str());
    std::printf("\n]\n");
  } else {
    std::printf("%7s %-16s %8s %9s %9s %5s  %-12s %7s  %s\n", "PID", "COMMAND", "RSS", "HEAP_RES",
                "HEAP_USED", "NODES", "POLICY", "AGE", "CMDLINE");
    for (const std::string& r : ctx.rows) std::printf("%s\n", r.c_str());
  }
  if (ls.removed || ls.stale || ls.bad)
    std::fprintf(stderr, "numaslub-info: %u stale file(s) removed, %u left, %u not readable (%s)\n",
                 ls.removed, ls.stale, ls.bad, dir);
  return 0;
}

int do_pid(const char* dir, int pid, unsigned views, bool json, bool no_refresh) {
  pub::Target t;
  int e = pub::target_open(dir, pid, &t);
  if (e) {
    if (e == ENOENT)
      std::fprintf(stderr,
                   "numaslub-info: pid %d publishes no views in %s (not under numaslub, "
                   "publish=0, another user's, or not yet: the file appears at a slow path "
                   "1 s after start)\n",
                   pid, dir);
    else
      std::fprintf(stderr, "numaslub-info: %s/%d: %s\n", dir, pid, std::strerror(e));
    return 1;
  }
  pub::Liveness lv = pub::target_liveness(t);
  if (lv != pub::Liveness::kLive) {
    std::fprintf(stderr, "numaslub-info: %s/%d is stale (%s)\n", dir, pid, pub::liveness_name(lv));
    pub::target_close(&t);
    return 1;
  }
  std::vector<char> buf;
  pub::Snapshot s;
  e = read_fresh(t, no_refresh, &buf, &s);
  if (e) {
    std::fprintf(stderr, "numaslub-info: pid %d: cannot read a snapshot: %s\n", pid,
                 std::strerror(e));
    pub::target_close(&t);
    return 1;
  }
  char why[256];
  int rc = 0;
  if (!pub::check_snapshot(s, why, sizeof why)) {
    std::fprintf(stderr, "numaslub-info: pid %d: inconsistent snapshot: %s\n", pid, why);
    rc = 3;
  }
  std::string out = render([&](BufWriter& w) {
    if (json)
      pub::render_json(s, views, w);
    else
      pub::render_views(s, views, w);
  });
  std::fwrite(out.data(), 1, out.size(), stdout);
  pub::target_close(&t);
  return rc;
}

int do_heap_profile(const char* dir, int pid, const char* file) {
  bool out_stdout = std::strcmp(file, "-") == 0;
  FILE* f = out_stdout ? stdout : std::fopen(file, "w");
  if (!f) {
    std::fprintf(stderr, "numaslub-info: %s: %s\n", file, std::strerror(errno));
    return 1;
  }
  std::fflush(f);
  int e = pub::write_heap_profile(dir, pid, fileno(f));
  if (!out_stdout) std::fclose(f);
  if (e == ENOENT)
    std::fprintf(stderr,
                 "numaslub-info: pid %d publishes no heap profile in %s (not running with "
                 "prof=1, publish=0, or not yet: the file appears with the views file)\n",
                 pid, dir);
  else if (e)
    std::fprintf(stderr, "numaslub-info: %s/%d.heap: %s\n", dir, pid, std::strerror(e));
  return e ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--config-help") == 0) {
    config_print_help(1);
    return 0;
  }
  if (argc == 1) return self_test();
  if (std::strcmp(argv[1], "validate") == 0) return validate_action();
  bool list = false, json = false, clean = true, no_refresh = false;
  int pid = 0;
  unsigned views = 0;
  char dir[512] = {};
  const char* heap_profile = nullptr;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strcmp(a, "--list") == 0) {
      list = true;
    } else if (std::strcmp(a, "--json") == 0) {
      json = true;
    } else if (std::strcmp(a, "--keep-stale") == 0) {
      clean = false;
    } else if (std::strcmp(a, "--no-refresh") == 0) {
      no_refresh = true;
    } else if (std::strcmp(a, "--pid") == 0 && i + 1 < argc) {
      char* end;
      long v = std::strtol(argv[++i], &end, 10);
      if (*end || v <= 0 || v > 0x7fffffff) return usage();
      pid = static_cast<int>(v);
    } else if (std::strcmp(a, "--heap-profile") == 0 && i + 1 < argc) {
      heap_profile = argv[++i];
    } else if (std::strcmp(a, "--dir") == 0 && i + 1 < argc) {
      std::snprintf(dir, sizeof dir, "%s", argv[++i]);
    } else if (unsigned v = pub::view_from_name(a)) {
      views |= v;
    } else {
      return usage();
    }
  }
  if (!dir[0] && !pub::default_dir(dir, sizeof dir)) {
    std::fprintf(stderr, "numaslub-info: TMPDIR is too long\n");
    return 1;
  }
  if (list == (pid != 0)) return usage();
  if (list) return do_list(dir, json, clean, no_refresh);
  if (heap_profile) return do_heap_profile(dir, pid, heap_profile);
  return do_pid(dir, pid, views ? views : pub::kAllViews, json, no_refresh);
}
