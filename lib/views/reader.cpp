// Reading another process's published views (reader.h).
#include "lib/views/reader.h"

#include <sys/mman.h>

#include <atomic>
#include <cstring>

#include "lib/base/base.h"
#include "lib/slub/slub.h"
#include "lib/views/publish.h"
#include "lib/views/sysfile.h"

namespace numaslub::pub {

namespace {

constexpr int kENOENT = 2, kEPERM = 1, kEAGAIN = 11, kENOSPC = 28, kENODATA = 61, kEPROTO = 71,
              kEBADMSG = 74, kESRCH = 3;

bool header_ok(const FileHeader& h, std::uint64_t file_size, int pid) {
  if (std::memcmp(h.magic, kMagic, sizeof h.magic) != 0 || h.version != kVersion ||
      h.header_size != sizeof(FileHeader) || h.file_size != file_size || h.pid != pid)
    return false;
  if (h.nr_nodes == 0 || h.nr_nodes > 64 || h.nr_cpus > 4096 || h.nr_classes > 256 ||
      h.nr_orders != kOrders || h.vmstat_max > 4096)
    return false;
  Layout l = layout_of(h.nr_nodes, h.nr_cpus, h.nr_classes, h.vmstat_max);
  if (l.size != h.snap_size) return false;
  for (std::uint64_t off : h.snap_off)
    if (off < sizeof(FileHeader) || off % 8 || off > file_size || file_size - off < l.size)
      return false;
  return true;
}

// Copies n bytes (a multiple of 8) of memory another process writes, a word
// at a time with acquire loads: the seq load that follows cannot be done
// before them (a plain load on x86; no fence, which ThreadSanitizer does
// not model).
void copy_words(void* dst, const void* src, std::size_t n) {
  auto* d = static_cast<std::uint64_t*>(dst);
  const auto* s = static_cast<const std::uint64_t*>(src);
  for (std::size_t i = 0; i < n / 8; ++i) d[i] = __atomic_load_n(&s[i], __ATOMIC_ACQUIRE);
}

void point_at(char* buf, const FileHeader* fh, Snapshot* out) {
  Layout l = layout_of(fh->nr_nodes, fh->nr_cpus, fh->nr_classes, fh->vmstat_max);
  char* c = buf + sizeof(FileHeader);
  out->file = fh;
  out->head = reinterpret_cast<const SnapHeader*>(c);
  out->zones = reinterpret_cast<const ZoneSnap*>(c + l.zones);
  out->pcp = reinterpret_cast<const PcpSnap*>(c + l.pcp);
  out->caches = reinterpret_cast<const CacheSnap*>(c + l.caches);
  out->nodes = reinterpret_cast<const CacheNodeSnap*>(c + l.cache_nodes);
  out->vmstat = reinterpret_cast<const StatSnap*>(c + l.vmstat);
}

bool parse_pid(const char* s, int* pid) {
  long v = 0;
  int k = 0;
  for (; *s >= '0' && *s <= '9' && k < 10; ++s, ++k) v = v * 10 + (*s - '0');
  if (!k || *s || v <= 0 || v > 0x7fffffff) return false;
  *pid = static_cast<int>(v);
  return true;
}

// The inode field of a /proc/<pid>/maps line ("start-end perms offset
// major:minor inode path"), or 0.
std::uint64_t maps_line_inode(const char* p) {
  for (int f = 0; f < 4 && *p; ++f) {
    while (*p && *p != ' ') ++p;
    while (*p == ' ') ++p;
  }
  std::uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; ++p) v = v * 10 + static_cast<unsigned>(*p - '0');
  return v;
}

// Whether /proc/<pid>/maps lists a mapping of inode ino: 1 or 0, or -1
// when it cannot be read.
int maps_has_inode(int pid, std::uint64_t ino) {
  char path[48];
  format(path, sizeof path, "/proc/%d/maps", pid);
  long fd = sysf::openat(sysf::kAtFdcwd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[8192];
  std::size_t have = 0;
  int found = 0;
  for (bool first = true;; first = false) {
    long r = sys::read(static_cast<int>(fd), buf + have, sizeof buf - 1 - have);
    if (r < 0) {
      if (first) found = -1;
      break;
    }
    have += static_cast<std::size_t>(r);
    buf[have] = '\0';
    bool eof = r == 0;
    char* line = buf;
    for (;;) {
      char* eol = std::strchr(line, '\n');
      if (!eol && !eof) break;  // a partial line: read on
      if (eol) *eol = '\0';
      if (*line && maps_line_inode(line) == ino) found = 1;
      if (!eol) {
        line += std::strlen(line);
        break;
      }
      line = eol + 1;
    }
    if (found == 1 || eof) break;
    have = std::strlen(line);
    if (have >= sizeof buf - 1) have = 0;  // a line longer than the buffer: dropped
    std::memmove(buf, line, have);
  }
  sys::close(static_cast<int>(fd));
  return found;
}

// Removes dir/name if it still is the file with inode ino.
bool remove_if_same(int dfd, const char* name, std::uint64_t ino) {
  struct statx st {};
  if (sysf::statx(dfd, name, AT_SYMLINK_NOFOLLOW, &st) != 0 || st.stx_ino != ino) return false;
  return sysf::unlinkat(dfd, name) == 0;
}

}  // namespace

std::uint64_t Snapshot::stat(const char* name, std::uint64_t def) const {
  for (unsigned i = 0; i < head->nr_vmstat; ++i)
    if (std::strncmp(vmstat[i].name, name, kStatNameLen) == 0) return vmstat[i].value;
  return def;
}

std::size_t default_dir(char* buf, std::size_t cap) {
  return publish_dir(buf, cap, sysf::geteuid());
}

namespace {

// A published file, mapped whole.
struct Mapped {
  void* map = nullptr;
  std::uint64_t size = 0;
  std::uint64_t ino = 0;
  bool writable = false;
};

// Maps dir/<pid><suffix> shared (read-write when `try_write` and allowed,
// else read-only) after checking it is ours to trust: a regular file, not
// a symlink, owned by us, writable by nobody else, of min..max bytes.
// Returns 0 or an errno (EPERM for a file that fails the checks).
int map_own_file(const char* dir, int pid, const char* suffix, bool try_write, std::uint64_t min,
                 std::uint64_t max, Mapped* m) {
  char path[256];
  if (!format(path, sizeof path, "%s/%d%s", dir, pid, suffix) ||
      std::strlen(path) >= sizeof path - 1)
    return 36;
  bool writable = try_write;
  long fd =
      sysf::openat(sysf::kAtFdcwd, path, (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC);
  if (writable && (fd == -13 /*EACCES*/ || fd == -30 /*EROFS*/)) {
    writable = false;
    fd = sysf::openat(sysf::kAtFdcwd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd < 0) return fd == -40 /*ELOOP: a symlink*/ ? kEPERM : static_cast<int>(-fd);
  int f = static_cast<int>(fd);
  struct statx st {};
  long r = sysf::statx(f, "", AT_EMPTY_PATH, &st);
  int e = 0;
  if (r < 0)
    e = static_cast<int>(-r);
  else if ((st.stx_mode & S_IFMT) != S_IFREG || st.stx_uid != sysf::geteuid() ||
           (st.stx_mode & 022))
    e = kEPERM;
  else if (st.stx_size < min || st.stx_size > max)
    e = kEPROTO;
  void* map = nullptr;
  if (!e) {
    long err = 0;
    map = sys::mmap(nullptr, st.stx_size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, f, 0,
                    &err);
    if (!map) e = static_cast<int>(err);
  }
  sys::close(f);
  if (e) return e;
  *m = {map, st.stx_size, st.stx_ino, writable};
  return 0;
}

}  // namespace

int target_open(const char* dir, int pid, Target* t) {
  *t = Target{};
  Mapped m;
  if (int e = map_own_file(dir, pid, "", true, sizeof(FileHeader), std::uint64_t{1} << 30, &m))
    return e;
  void* map = m.map;
  if (!header_ok(*static_cast<const FileHeader*>(map), m.size, pid)) {
    sys::munmap(map, m.size);
    return kEPROTO;
  }
  t->pid = pid;
  t->map = map;
  t->size = m.size;
  t->writable = m.writable;
  t->ino = m.ino;
  const auto* h = static_cast<const FileHeader*>(map);
  t->snap_off[0] = h->snap_off[0];
  t->snap_off[1] = h->snap_off[1];
  t->snap_size = h->snap_size;
  return 0;
}

void target_close(Target* t) {
  if (t->map) sys::munmap(t->map, t->size);
  *t = Target{};
}

std::size_t snapshot_bytes(const Target& t) {
  return sizeof(FileHeader) + t.snap_size;
}

int read_snapshot(const Target& t, void* buf, std::size_t cap, Snapshot* out) {
  const FileHeader* h = t.hdr();
  std::uint64_t size = t.snap_size;
  if (cap < sizeof(FileHeader) + size) return kENOSPC;
  char* b = static_cast<char*>(buf);
  auto* fh = reinterpret_cast<FileHeader*>(b);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::uint64_t s1 = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
    if (s1 == 0) return kENODATA;
    copy_words(b, h, sizeof(FileHeader));
    copy_words(b + sizeof(FileHeader), static_cast<const char*>(t.map) + t.snap_off[s1 & 1], size);
    std::uint64_t s2 = __atomic_load_n(&h->seq, __ATOMIC_RELAXED);
    if (s1 != s2) {
      if (attempt > 10) sys::sched_yield();
      continue;
    }
    // The header's constant part was checked at open; the copy must match it.
    if (!header_ok(*fh, t.size, t.pid) || fh->snap_size != t.snap_size ||
        fh->snap_off[0] != t.snap_off[0] || fh->snap_off[1] != t.snap_off[1])
      return kEBADMSG;
    point_at(b, fh, out);
    const SnapHeader* sh = out->head;
    if (sh->seq != s1 || snap_checksum(b + sizeof(FileHeader), size) != sh->checksum ||
        sh->nr_vmstat > fh->vmstat_max)
      return kEBADMSG;
    std::uint64_t now = now_ns();
    out->age_ns = now > sh->mono_ns ? now - sh->mono_ns : 0;
    return 0;
  }
  return kEAGAIN;
}

std::uint64_t request_snapshot(const Target& t) {
  auto* h = const_cast<FileHeader*>(t.hdr());
  std::uint64_t seq = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
  if (t.writable) __atomic_fetch_add(&h->request, 1, __ATOMIC_RELEASE);
  return seq;
}

bool wait_snapshot(const Target& t, std::uint64_t after, unsigned timeout_ms) {
  for (unsigned waited = 0;; waited += 2) {
    if (__atomic_load_n(&t.hdr()->seq, __ATOMIC_ACQUIRE) > after) return true;
    if (waited >= timeout_ms) return false;
    timespec ts{0, 2000000};
    sys::call(SYS_nanosleep, &ts, nullptr);
  }
}

Liveness target_liveness(const Target& t) {
  const FileHeader* h = t.hdr();
  long r = sysf::kill(t.pid, 0);
  if (r == -kESRCH) return Liveness::kDead;
  if (r == -kEPERM) return Liveness::kReused;  // another user's process has the pid now
  if (__atomic_load_n(&h->exiting, __ATOMIC_ACQUIRE)) return Liveness::kExiting;
  char path[48], buf[1024];
  format(path, sizeof path, "/proc/%d/stat", t.pid);
  if (h->start_time && sysf::read_file(sysf::kAtFdcwd, path, buf, sizeof buf) > 0) {
    std::uint64_t st = sysf::stat_start_time(buf);
    if (st && st != h->start_time) return Liveness::kReused;
  }
  // The same process, but after an exec it no longer maps the file.
  if (maps_has_inode(t.pid, t.ino) == 0) {
    // Re-check the pid: it may have exited while we read.
    if (sysf::kill(t.pid, 0) == -kESRCH) return Liveness::kDead;
    return Liveness::kNotMapped;
  }
  return Liveness::kLive;
}

const char* liveness_name(Liveness l) {
  switch (l) {
    case Liveness::kLive:
      return "live";
    case Liveness::kExiting:
      return "exiting";
    case Liveness::kDead:
      return "dead";
    case Liveness::kReused:
      return "pid reused";
    case Liveness::kNotMapped:
      return "file no longer mapped (exec?)";
  }
  return "?";
}

bool check_snapshot(const Snapshot& s, char* why, std::size_t cap) {
  const FileHeader& f = *s.file;
  for (unsigned n = 0; n < f.nr_nodes; ++n) {
    const ZoneSnap& z = s.zones[n];
    std::uint64_t free = 0, clean = 0, pcp = 0;
    for (unsigned o = 0; o < kOrders; ++o) {
      free += z.nr_free[o] << o;
      clean += z.nr_clean[o] << o;
    }
    for (unsigned c = 0; c < f.nr_cpus; ++c) pcp += s.pcp_of(c, n).count;
    if (free != z.free_pages || clean != z.clean_pages || pcp != z.pcp_pages) {
      format(why, cap,
             "node %u: free_pages %lu vs %lu by order, clean_pages %lu vs %lu, pcp %lu vs %lu "
             "by CPU",
             n, static_cast<unsigned long>(z.free_pages), static_cast<unsigned long>(free),
             static_cast<unsigned long>(z.clean_pages), static_cast<unsigned long>(clean),
             static_cast<unsigned long>(z.pcp_pages), static_cast<unsigned long>(pcp));
      return false;
    }
  }
  for (unsigned c = 0; c < f.nr_classes; ++c) {
    const CacheSnap& cs = s.caches[c];
    CacheNodeSnap sum{};
    for (unsigned n = 0; n < f.nr_nodes; ++n) {
      add_part(sum, s.node_of(c, n));
    }
    if (std::memcmp(&sum, &cs.total, sizeof sum) != 0) {
      format(why, cap, "cache %u (%s): totals are not the sums of the node parts", c, cs.name);
      return false;
    }
  }
  return true;
}

ListStats list_targets(const char* dir, bool clean, ListFn fn, void* ctx) {
  ListStats ls;
  long dfd = sysf::openat(sysf::kAtFdcwd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ls;
  int d = static_cast<int>(dfd);
  struct statx dst {};
  if (sysf::statx(d, "", AT_EMPTY_PATH, &dst) != 0 || dst.stx_uid != sysf::geteuid() ||
      (dst.stx_mode & 022)) {
    sys::close(d);  // not ours: nothing in it is to be trusted or removed
    return ls;
  }
  alignas(8) char buf[8192];
  long n;
  while ((n = sysf::getdents64(d, buf, sizeof buf)) > 0) {
    for (long off = 0; off < n;) {
      auto* de = reinterpret_cast<sysf::Dirent64*>(buf + off);
      off += de->reclen;
      const char* name = de->name;
      int pid;
      if (name[0] == '.') {
        // ".<pid>.tmp": a file being made, or left by a crash.
        char digits[16] = {};
        const char* p = name + 1;
        for (int k = 0; *p >= '0' && *p <= '9' && k < 15; ++p, ++k) digits[k] = *p;
        if (clean && std::strcmp(p, ".tmp") == 0 && parse_pid(digits, &pid) &&
            sysf::kill(pid, 0) == -kESRCH && sysf::unlinkat(d, name) == 0)
          ++ls.removed;
        continue;
      }
      if (!parse_pid(name, &pid)) continue;
      Target t;
      int e = target_open(dir, pid, &t);
      if (e == kENOENT) continue;  // gone meanwhile
      if (e) {
        struct statx st {};
        bool dead = sysf::kill(pid, 0) == -kESRCH;
        if (dead && clean && sysf::statx(d, name, AT_SYMLINK_NOFOLLOW, &st) == 0 &&
            (st.stx_mode & S_IFMT) == S_IFREG && remove_if_same(d, name, st.stx_ino))
          ++ls.removed;
        else if (dead)
          ++ls.stale;
        else
          ++ls.bad;
        continue;
      }
      Liveness lv = target_liveness(t);
      if (lv == Liveness::kLive) {
        ++ls.live;
        if (fn) fn(t, ctx);
      } else if (lv != Liveness::kExiting && clean && remove_if_same(d, name, t.ino)) {
        ++ls.removed;
      } else {
        ++ls.stale;
      }
      target_close(&t);
    }
  }
  sys::close(d);
  return ls;
}

int write_heap_profile(const char* dir, int pid, int out_fd) {
  Mapped m;
  if (int e = map_own_file(dir, pid, ".heap", false, kProfHeaderBytes, std::uint64_t{1} << 36, &m))
    return e;
  void* map = m.map;
  int e = 0;
  const auto* h = static_cast<const ProfFileHeader*>(map);
  if (h->magic != kProfMagic || h->version != kProfVersion || h->pid != pid) {
    e = kEPROTO;
  } else if (sysf::kill(pid, 0) == -3 /*ESRCH*/) {
    e = 3;
  } else {
    char maps[64];
    format(maps, sizeof maps, "/proc/%d/maps", pid);
    long mfd = sysf::openat(sysf::kAtFdcwd, maps, O_RDONLY | O_CLOEXEC);
    e = prof_write_profile(out_fd, h, m.size, mfd < 0 ? -1 : static_cast<int>(mfd));
    if (mfd >= 0) sys::close(static_cast<int>(mfd));
  }
  sys::munmap(map, m.size);
  return e;
}

}  // namespace numaslub::pub
