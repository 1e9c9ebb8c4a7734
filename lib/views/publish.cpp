// The publisher (publish.h has the contract; snapshot.h the format).
//
// State, all in g_pub:
// - `state`: kOff (publish=0, or before publish_init), kWaiting (no file
//   yet, or it must be made again), kLive, kClosed (at exit);
// - `owner`: the writer flag, the id of the thread publishing (0: none);
//   every field below it is written only by its holder, or by the fork
//   child handler when the process has one thread;
// - `hdr`: the file's mapping. Its address never changes once mapped: a
//   new file (after a fork, or when the file went away) is mapped over it
//   with MAP_FIXED, so a thread reading hdr->request in views_tick never
//   touches an unmapped page.
// - `self_pid`: the pid this process has as far as our handlers know (set
//   at init and by the fork child handler). A publish first compares it
//   with getpid(): a vfork child or a raw clone shares or copies our state
//   without our handler having run, and must write nothing.
#include "lib/views/publish.h"

#include <sys/mman.h>

#include <atomic>
#include <cstring>

#include "lib/base/base.h"
#include "lib/slub/slub.h"
#include "lib/views/collect.h"
#include "lib/views/sysfile.h"

namespace numaslub {

namespace {

using pub::FileHeader;

enum : int { kOff = 0, kWaiting, kLive, kClosed };

constexpr std::uint64_t kMs = 1000000ULL;
constexpr std::uint64_t kRequestGapNs = 10 * kMs;     // on-demand publishes at most this often
constexpr std::uint64_t kCreateDelayNs = 1000 * kMs;  // no file for a process younger than this
constexpr std::size_t kTextCap = 16 << 10;            // vmstat text scratch

struct Publisher {
  std::atomic<int> state{kOff};
  std::atomic<std::uint32_t> owner{0};
  std::atomic<std::uint64_t> next_ns{0};      // the next periodic publish is due
  std::atomic<std::uint64_t> min_next_ns{0};  // no on-demand publish before
  std::atomic<std::uint64_t> served{0};       // FileHeader::request as last served
  std::atomic<std::uint64_t> published{0};    // snapshots written (vmstat)
  std::atomic<std::uint64_t> publish_ns{0};   // and the time they took
  std::atomic<FileHeader*> hdr{nullptr};
  std::atomic<long> self_pid{0};
  std::uint64_t interval_ns = 0;
  std::uint32_t gen = 0;  // bumped by the fork child handler
  std::int32_t pid = 0;   // whose file hdr maps (0: none)
  std::uint32_t euid = 0;
  std::uint64_t dev_major = 0, dev_minor = 0, ino = 0;
  std::size_t file_size = 0;
  pub::Layout layout{};
  std::uint32_t nr_nodes = 0, nr_cpus = 0, nr_classes = 0;
  char* staging = nullptr;  // a private snapshot copy, then kTextCap of text
  std::uint32_t failures = 0;
  bool logged = false;
  VmstatTextFn vmstat_text = nullptr;
  char path[256] = {};
  char tmp_path[256] = {};
  char heap_path[256] = {};  // the heap profiler's records beside it (prof=1), or ""
};

constinit Publisher g_pub;

// How long a process (or a fork child) lives before it gets a file: short
// commands and a fork child that execs at once never make one.
std::uint64_t create_delay() {
  return g_pub.interval_ns > kCreateDelayNs ? g_pub.interval_ns : kCreateDelayNs;
}

std::uint32_t this_tid() {
  return this_thread_id();
}

bool try_own() {
  std::uint32_t none = 0;
  return g_pub.owner.compare_exchange_strong(none, this_tid(), std::memory_order_acquire,
                                             std::memory_order_relaxed);
}

void disown() {
  g_pub.owner.store(0, std::memory_order_release);
}

// comm, cmdline and start time of this process, into the header.
void fill_identity(FileHeader* h) {
  sys::call(SYS_prctl, 16 /*PR_GET_NAME*/, h->comm);
  h->comm[sizeof h->comm - 1] = '\0';
  char buf[1024];
  long n = sysf::read_file(sysf::kAtFdcwd, "/proc/self/cmdline", buf, sizeof buf);
  std::size_t len = 0;
  for (long i = 0; i < n && len + 1 < sizeof h->cmdline; ++i)
    h->cmdline[len++] = static_cast<unsigned char>(buf[i]) < 0x20 ? ' ' : buf[i];
  while (len > 0 && h->cmdline[len - 1] == ' ') --len;
  h->cmdline[len] = '\0';
  if (sysf::read_file(sysf::kAtFdcwd, "/proc/self/stat", buf, sizeof buf) > 0)
    h->start_time = sysf::stat_start_time(buf);
}

// Removes the files (and half-made temporary files) of processes that no
// longer exist, as a JVM cleans its hsperfdata directory at start-up. Only
// a dead pid's file goes: a live one's is its owner's or a reader's call.
void remove_dead_files(int dfd, long self) {
  alignas(8) char buf[4096];
  unsigned seen = 0;
  long n;
  while ((n = sysf::getdents64(dfd, buf, sizeof buf)) > 0 && seen < 4096) {
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<sysf::Dirent64*>(buf + off);
      off += d->reclen;
      ++seen;
      const char* name = d->name;
      // "<pid>", or ".<pid>.tmp" (a file being made, or left by a crash).
      const char* p = name[0] == '.' ? name + 1 : name;
      long pid = 0;
      int k = 0;
      for (; *p >= '0' && *p <= '9' && k < 10; ++p, ++k) pid = pid * 10 + (*p - '0');
      // Also "<pid>.heap" and ".<pid>.heap.tmp", the heap profiler's.
      bool named = name[0] == '.' ? std::strcmp(p, ".tmp") == 0 || std::strcmp(p, ".heap.tmp") == 0
                                  : *p == '\0' || std::strcmp(p, ".heap") == 0;
      if (!k || !named) continue;
      if (pid <= 0 || pid == self) continue;
      if (sysf::kill(static_cast<int>(pid), 0) == -3 /*ESRCH*/) sysf::unlinkat(dfd, name);
    }
  }
}

// Opens (making it if needed) the user's directory, checked to be a
// directory of euid's with no access for others. Returns the fd or -errno.
long open_dir(std::uint32_t euid, char* dir, std::size_t cap) {
  if (!publish_dir(dir, cap, euid)) return -36;  // ENAMETOOLONG
  sysf::mkdirat(sysf::kAtFdcwd, dir, 0700);
  long dfd = sysf::openat(sysf::kAtFdcwd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return dfd;
  struct statx st {};
  long r = sysf::statx(static_cast<int>(dfd), "", AT_EMPTY_PATH, &st);
  if (r < 0 || st.stx_uid != euid || (st.stx_mode & 077) != 0) {
    sys::close(static_cast<int>(dfd));
    return r < 0 ? r : -1;  // EPERM: not ours, or open to others
  }
  return dfd;
}

// Creates `tmp` in directory d, exclusively, for us alone; a file left under
// that name by a crash of an earlier process with our pid is replaced.
// Returns the fd or -errno.
long create_tmp_file(int d, const char* tmp) {
  long fd = -1;
  for (int attempt = 0; attempt < 2 && fd < 0; ++attempt) {
    fd = sysf::openat(d, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd == -17 /*EEXIST*/) sysf::unlinkat(d, tmp);
  }
  return fd;
}

// Makes the file under its temporary name, maps it (over the old mapping,
// if any) and writes its header. The caller publishes the first snapshot
// into it and then names it (name_file). Returns 0 or an errno.
int create_file(long pid, std::uint32_t euid, int* dfd_out) {
  std::uint32_t nodes, cpus, classes;
  if (!snapshot_shape(&nodes, &cpus, &classes)) return 11;  // EAGAIN: no heap yet
  pub::Layout l = pub::layout_of(nodes, cpus, classes, pub::kVmstatMax);
  std::size_t hsize = pub::align8(sizeof(FileHeader));
  std::size_t size = (hsize + 2 * l.size + 4095) & ~std::size_t{4095};
  if (g_pub.hdr.load(std::memory_order_relaxed) && size != g_pub.file_size) return 22;  // EINVAL
  if (!g_pub.staging) {
    long err = 0;
    void* s = sys::mmap(nullptr, l.size + kTextCap, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &err);
    if (!s) return static_cast<int>(err);
    g_pub.staging = static_cast<char*>(s);
  }
  char dir[200];
  long dfd = open_dir(euid, dir, sizeof dir);
  if (dfd < 0) return static_cast<int>(-dfd);
  int d = static_cast<int>(dfd);
  remove_dead_files(d, pid);
  char tmp[32], name[24];
  format(tmp, sizeof tmp, ".%ld.tmp", pid);
  format(name, sizeof name, "%ld", pid);
  long fd = create_tmp_file(d, tmp);
  if (fd < 0) {
    sys::close(d);
    return static_cast<int>(-fd);
  }
  int f = static_cast<int>(fd);
  // Blocks first: a write through the mapping to a hole on a full file
  // system would be SIGBUS in the program.
  long r = sysf::fallocate(f, 0, static_cast<long>(size));
  struct statx st {};
  if (r == 0) r = sysf::statx(f, "", AT_EMPTY_PATH, &st);
  void* map = nullptr;
  if (r == 0) {
    FileHeader* old = g_pub.hdr.load(std::memory_order_relaxed);
    long err = 0;
    map = sys::mmap(old, size, PROT_READ | PROT_WRITE, MAP_SHARED | (old ? MAP_FIXED : 0), f, 0,
                    &err);
    if (!map) r = -err;
  }
  sys::close(f);
  if (r < 0) {
    sysf::unlinkat(d, tmp);
    sys::close(d);
    return static_cast<int>(-r);
  }
  auto* h = static_cast<FileHeader*>(map);
  std::memcpy(h->magic, pub::kMagic, sizeof h->magic);
  h->version = pub::kVersion;
  h->header_size = sizeof(FileHeader);
  h->file_size = size;
  h->snap_off[0] = hsize;
  h->snap_off[1] = hsize + l.size;
  h->snap_size = l.size;
  h->pid = static_cast<std::int32_t>(pid);
  h->uid = euid;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  h->created_real_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
                       static_cast<std::uint64_t>(ts.tv_nsec);
  h->nr_nodes = nodes;
  h->nr_cpus = cpus;
  h->nr_classes = classes;
  h->nr_orders = pub::kOrders;
  h->vmstat_max = pub::kVmstatMax;
  h->publish_ms = static_cast<std::uint32_t>(g_pub.interval_ns / kMs);
  fill_identity(h);
  g_pub.hdr.store(h, std::memory_order_release);
  g_pub.served.store(0, std::memory_order_relaxed);
  g_pub.file_size = size;
  g_pub.layout = l;
  g_pub.nr_nodes = nodes;
  g_pub.nr_cpus = cpus;
  g_pub.nr_classes = classes;
  g_pub.pid = static_cast<std::int32_t>(pid);
  g_pub.euid = euid;
  g_pub.dev_major = st.stx_dev_major;
  g_pub.dev_minor = st.stx_dev_minor;
  g_pub.ino = st.stx_ino;
  format(g_pub.path, sizeof g_pub.path, "%s/%s", dir, name);
  format(g_pub.tmp_path, sizeof g_pub.tmp_path, "%s/%s", dir, tmp);
  *dfd_out = d;
  return 0;
}

// With the heap profiler on (prof.h), its records become a file beside the
// views file, "<pid>.heap", made under a temporary name and named once the
// records are in it. Without it the profiler keeps its records private
// (prof_final and the leak check still work); readers say none is published.
void make_heap_file(int d, long pid) {
  if (!g_prof_on) return;
  char tmp[40], name[32];
  format(tmp, sizeof tmp, ".%ld.heap.tmp", pid);
  format(name, sizeof name, "%ld.heap", pid);
  long fd = create_tmp_file(d, tmp);
  if (fd < 0) return;
  int e = prof_attach(static_cast<int>(fd));  // keeps fd open on success
  if (e == 0 && sysf::renameat(d, tmp, d, name) == 0) {
    format(g_pub.heap_path, sizeof g_pub.heap_path, "%s.heap", g_pub.path);
    return;
  }
  if (e) sys::close(static_cast<int>(fd));
  sysf::unlinkat(d, tmp);
  if (config().verbose) log_msg("publish: cannot make the heap profile file (errno %d)", e);
}

// Whether the file at path is still the one we made (a tmp cleaner or a
// reader may have removed it).
bool file_still_ours() {
  struct statx st {};
  return sysf::statx(sysf::kAtFdcwd, g_pub.path, AT_SYMLINK_NOFOLLOW, &st) == 0 &&
         st.stx_ino == g_pub.ino && st.stx_dev_major == g_pub.dev_major &&
         st.stx_dev_minor == g_pub.dev_minor;
}

// Takes a snapshot into the staging buffer and copies it into the idle copy.
void write_snapshot(FileHeader* h) {
  std::uint64_t t0 = now_ns();
  const pub::Layout& l = g_pub.layout;
  std::uint64_t req = __atomic_load_n(&h->request, __ATOMIC_RELAXED);
  collect_snapshot(g_pub.staging, l, g_pub.nr_nodes, g_pub.nr_cpus, g_pub.nr_classes,
                   g_pub.staging + l.size, kTextCap, g_pub.vmstat_text);
  std::uint64_t seq = __atomic_load_n(&h->seq, __ATOMIC_RELAXED) + 1;
  auto* sh = reinterpret_cast<pub::SnapHeader*>(g_pub.staging);
  sh->seq = seq;
  sh->requests_served = req;
  sh->checksum = pub::snap_checksum(g_pub.staging, l.size);
  // The copy readers may still be reading is the one seq - 1 named: no
  // store below may become visible before the store of seq - 1 (made by
  // the previous publish, ordered before us by the writer flag). Release
  // stores say so word by word (a plain store on x86; no fence, which
  // ThreadSanitizer does not model).
  // Offsets from our own copy of the layout, never from the shared header.
  std::size_t off = pub::align8(sizeof(FileHeader)) + (seq & 1) * l.size;
  auto* dst = reinterpret_cast<std::uint64_t*>(reinterpret_cast<char*>(h) + off);
  const auto* src = reinterpret_cast<const std::uint64_t*>(g_pub.staging);
  for (std::uint64_t i = 0; i < l.size / 8; ++i)
    __atomic_store_n(&dst[i], src[i], __ATOMIC_RELEASE);
  __atomic_store_n(&h->seq, seq, __ATOMIC_RELEASE);
  g_pub.served.store(req, std::memory_order_relaxed);
  // Only the writer-flag holder writes these.
  g_pub.published.store(g_pub.published.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
  g_pub.publish_ns.store(g_pub.publish_ns.load(std::memory_order_relaxed) + (now_ns() - t0),
                         std::memory_order_relaxed);
}

// One publish; the caller owns the writer flag. from_app: may create.
int publish_locked(bool from_app, std::uint64_t now) {
  g_pub.next_ns.store(now + g_pub.interval_ns, std::memory_order_relaxed);
  g_pub.min_next_ns.store(now + kRequestGapNs, std::memory_order_relaxed);
  int st = g_pub.state.load(std::memory_order_acquire);
  if (st == kOff || st == kClosed) return 95;  // ENOTSUP
  long pid = sys::getpid();
  if (pid != g_pub.self_pid.load(std::memory_order_relaxed)) return 3;  // ESRCH: not our process
  std::uint32_t euid = sysf::geteuid();
  if (st == kLive && (euid != g_pub.euid || !file_still_ours())) {
    // Made again below (unless exit closed it meanwhile).
    if (!g_pub.state.compare_exchange_strong(st, kWaiting, std::memory_order_acq_rel)) return 95;
    st = kWaiting;
  }
  FileHeader* h = g_pub.hdr.load(std::memory_order_relaxed);
  if (st == kLive) {
    write_snapshot(h);
    return 0;
  }
  if (!from_app) return 11;  // EAGAIN: kswapd never makes the file
  std::uint32_t gen = g_pub.gen;
  int dfd = -1;
  if (int e = create_file(pid, euid, &dfd)) {
    // Back off: 1 s, doubling up to a minute, then try again.
    std::uint32_t k = g_pub.failures < 6 ? g_pub.failures++ : 6;
    g_pub.next_ns.store(now + (1000 * kMs << k), std::memory_order_relaxed);
    if (!g_pub.logged && config().verbose) log_msg("publish: cannot make the file (errno %d)", e);
    g_pub.logged = true;
    return e;
  }
  h = g_pub.hdr.load(std::memory_order_relaxed);
  write_snapshot(h);
  signal_fence();
  // A fork from a signal handler on this thread, since create_file: the
  // child must not name a file with the parent's pid (the parent will).
  long r = gen == g_pub.gen
               ? sysf::renameat(sysf::kAtFdcwd, g_pub.tmp_path, sysf::kAtFdcwd, g_pub.path)
               : -3;
  if (r < 0) {
    sysf::unlinkat(sysf::kAtFdcwd, g_pub.tmp_path);
    sys::close(dfd);
    return static_cast<int>(-r);
  }
  make_heap_file(dfd, pid);
  sys::close(dfd);
  g_pub.failures = 0;
  int waiting = kWaiting;
  if (!g_pub.state.compare_exchange_strong(waiting, kLive, std::memory_order_acq_rel)) {
    sysf::unlinkat(sysf::kAtFdcwd, g_pub.path);  // exit came meanwhile
    return 95;
  }
  return 0;
}

// The tick (views_hook.h): a load of the clock and two compares when
// nothing is due.
void tick(bool from_app) {
  int st = g_pub.state.load(std::memory_order_relaxed);
  if (st != kLive && (st != kWaiting || !from_app)) return;
  std::uint64_t now = now_coarse_ns();
  if (from_app) {  // views_hook.h: look less often while slow paths are frequent
    t_views_skip = now - t_views_last_ns < kMs ? 15 : 0;
    t_views_last_ns = now;
  }
  if (now < g_pub.next_ns.load(std::memory_order_relaxed)) {
    FileHeader* h = g_pub.hdr.load(std::memory_order_relaxed);
    if (st != kLive || !h ||
        __atomic_load_n(&h->request, __ATOMIC_RELAXED) ==
            g_pub.served.load(std::memory_order_relaxed) ||
        now < g_pub.min_next_ns.load(std::memory_order_relaxed))
      return;
  }
  if (!try_own()) return;
  publish_locked(from_app, now);
  disown();
}

}  // namespace

void publish_init(VmstatTextFn vmstat_text) {
  if (!config().publish || g_pub.state.load(std::memory_order_acquire) != kOff) return;
  g_pub.vmstat_text = vmstat_text;
  g_pub.interval_ns = std::uint64_t{config().publish_ms ? config().publish_ms : 1} * kMs;
  g_pub.self_pid.store(sys::getpid(), std::memory_order_relaxed);
  g_pub.next_ns.store(now_coarse_ns() + create_delay(), std::memory_order_relaxed);
  g_pub.state.store(kWaiting, std::memory_order_release);
  g_views_tick.store(tick, std::memory_order_release);
}

int publish_now() {
  int st = g_pub.state.load(std::memory_order_acquire);
  if (st == kOff || st == kClosed) return 95;  // ENOTSUP
  // Nested in the allocator, or in a signal handler that interrupted this
  // thread's own publish: nothing to wait for.
  if (allocator_busy() || g_pub.owner.load(std::memory_order_relaxed) == this_tid()) return 11;
  // A bounded wait: the holder takes allocator locks one at a time and we
  // hold none, so it finishes; the bound covers a holder stopped for good
  // (a signal handler that never returns).
  bool owned = false;
  for (int i = 0; i < 20000 && !(owned = try_own()); ++i) sys::sched_yield();
  if (!owned) return 11;
  int e = publish_locked(true, now_coarse_ns());
  disown();
  return e;
}

void publish_fork_child(std::uint32_t self) {
  int st = g_pub.state.load(std::memory_order_relaxed);
  if (st == kOff) return;
  // A publish by a thread gone with the fork is abandoned; one by this
  // thread's interrupted frame finishes into the private memory below.
  std::uint32_t o = g_pub.owner.load(std::memory_order_relaxed);
  if (o && o != self) g_pub.owner.store(0, std::memory_order_relaxed);
  ++g_pub.gen;
  signal_fence();
  if (FileHeader* h = g_pub.hdr.load(std::memory_order_relaxed)) {
    // The parent's file stays the parent's: nothing here may write it.
    long err = 0;
    sys::mmap(h, g_pub.file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
              -1, 0, &err);
  }
  g_pub.self_pid.store(sys::getpid(), std::memory_order_relaxed);
  g_pub.pid = 0;
  g_pub.heap_path[0] = '\0';  // the parent's
  g_pub.served.store(0, std::memory_order_relaxed);
  g_pub.failures = 0;
  g_pub.next_ns.store(now_coarse_ns() + create_delay(), std::memory_order_relaxed);
  if (st != kClosed) g_pub.state.store(kWaiting, std::memory_order_release);
}

void publish_exit() {
  // A vfork child that calls exit() shares our memory: leave it alone.
  if (sys::getpid() != g_pub.self_pid.load(std::memory_order_relaxed)) return;
  int st = g_pub.state.exchange(kClosed, std::memory_order_acq_rel);
  g_views_tick.store(nullptr, std::memory_order_relaxed);  // slow paths stop calling
  if (st != kLive) return;
  bool owned = false;
  for (int i = 0; i < 2000 && g_pub.owner.load(std::memory_order_relaxed) != this_tid() &&
                  !(owned = try_own());
       ++i)
    sys::sched_yield();
  if (g_pub.pid && g_pub.pid == g_pub.self_pid.load(std::memory_order_relaxed)) {
    if (FileHeader* h = g_pub.hdr.load(std::memory_order_relaxed))
      __atomic_store_n(&h->exiting, 1, __ATOMIC_RELEASE);
    if (file_still_ours()) sysf::unlinkat(sysf::kAtFdcwd, g_pub.path);
    if (g_pub.heap_path[0]) sysf::unlinkat(sysf::kAtFdcwd, g_pub.heap_path);
  }
  if (owned) disown();
}

PublishStats publish_stats() {
  return {g_pub.published.load(std::memory_order_relaxed),
          g_pub.publish_ns.load(std::memory_order_relaxed)};
}

const char* publish_path() {
  return g_pub.state.load(std::memory_order_acquire) == kLive ? g_pub.path : nullptr;
}

}  // namespace numaslub
