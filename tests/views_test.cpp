// Tests for lib/views inside one process: the publisher (publish.h) writes
// this process's file, and the reader (reader.h, render.h) reads it back.
// The whole-program cases (a target under LD_PRELOAD read from outside,
// stale files of killed processes, publish=0, numaslub-top, redis) are in
// tests/views/.
//
// The process publishes into a TMPDIR of its own. The tests share the one
// publisher a process has, so they run in this file's order (the last one
// forks to test the exit path).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lib/base/config.h"
#include "lib/base/thread_ctx.h"
#include "lib/buddy/page_alloc.h"
#include "lib/reclaim/kswapd.h"
#include "lib/slub/kmalloc.h"
#include "lib/views/collect.h"
#include "lib/views/publish.h"
#include "lib/views/reader.h"
#include "lib/views/render.h"
#include "lib/views/sysfile.h"

namespace numaslub {
namespace {

std::string g_tmp;  // this process's TMPDIR
std::string g_dir;  // the views directory: $TMPDIR/numaslub-<euid>

// At exit: our TMPDIR and everything in it.
void remove_tmp() {
  if (DIR* d = opendir(g_dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.' || std::strlen(e->d_name) > 2) unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
  }
  rmdir(g_dir.c_str());
  rmdir(g_tmp.c_str());
}

class Views : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!g_dir.empty()) return;
    char tmpl[] = "/tmp/numaslub-views-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    setenv("TMPDIR", tmpl, 1);
    g_tmp = tmpl;
    std::atexit(remove_tmp);
    Config c = config();
    c.publish = true;
    c.publish_ms = 3600 * 1000;  // no periodic publish: only requests and publish_now
    config_set_for_test(c);
    ASSERT_TRUE(slub_init());
    publish_init(nullptr);
    char dir[256];
    ASSERT_GT(pub::default_dir(dir, sizeof dir), 0u);
    g_dir = dir;
  }
};

// Joins strings with append (GCC 12's -Wrestrict misreads operator+ chains).
template <typename... S>
std::string cat(const S&... parts) {
  std::string out;
  (out.append(parts), ...);
  return out;
}

std::string file_of(int pid) {
  return cat(g_dir, "/", std::to_string(pid));
}

// A snapshot read back from pid's file, with its buffer.
struct Read {
  std::vector<char> buf;
  pub::Snapshot s;
  pub::Target t;
  int err = 0;
  explicit Read(int pid = getpid()) {
    err = pub::target_open(g_dir.c_str(), pid, &t);
    if (err) return;
    buf.resize(pub::snapshot_bytes(t));
    err = pub::read_snapshot(t, buf.data(), buf.size(), &s);
  }
  ~Read() { pub::target_close(&t); }
};

template <typename Fn>
std::string text(Fn fn) {
  std::vector<char> buf(1 << 22);
  BufWriter w(buf.data(), buf.size());
  fn(w);
  EXPECT_FALSE(w.truncated());
  return std::string(buf.data(), w.size());
}

const pub::CacheSnap* cache(const pub::Snapshot& s, const char* name) {
  for (unsigned c = 0; c < s.file->nr_classes; ++c)
    if (std::strcmp(s.caches[c].name, name) == 0) return &s.caches[c];
  return nullptr;
}

TEST_F(Views, PublishMakesThePrivateFile) {
  ASSERT_EQ(publish_now(), 0);
  ASSERT_NE(publish_path(), nullptr);
  EXPECT_EQ(std::string(publish_path()), file_of(getpid()));
  struct stat st;
  ASSERT_EQ(stat(g_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(st.st_uid, geteuid());
  ASSERT_EQ(stat(publish_path(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Read r;
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(r.s.file->pid, getpid());
  EXPECT_EQ(pub::target_liveness(r.t), pub::Liveness::kLive);
  char comm[16] = {};
  std::ifstream("/proc/self/comm").getline(comm, sizeof comm);
  EXPECT_STREQ(r.s.file->comm, comm);
}

TEST_F(Views, RenderedViewsAreTheInProcessViews) {
  std::vector<void*> held;
  for (std::size_t size : {24, 200, 3000, 20000, 100000})
    for (int i = 0; i < 300; ++i) held.push_back(kmalloc(size));
  ASSERT_EQ(publish_now(), 0);
  // Nothing allocates from the heap between the publish and these reads
  // (gtest and std::string use glibc's malloc in this binary).
  PageAllocator* pa = page_allocator_if_ready();
  ASSERT_NE(pa, nullptr);
  std::vector<char> buf(1 << 22);
  std::string want_buddy(buf.data(), pa->buddyinfo(buf.data(), buf.size()));
  std::string want_zone(buf.data(), pa->zoneinfo(buf.data(), buf.size()));
  std::string want_slab(buf.data(), slabinfo(buf.data(), buf.size()));
  std::size_t n = vmstat(buf.data(), buf.size());
  n += reclaim_vmstat(buf.data() + n, buf.size() - n);
  std::string want_vmstat(buf.data(), n);
  Read r;
  ASSERT_EQ(r.err, 0);
  char why[256];
  EXPECT_TRUE(pub::check_snapshot(r.s, why, sizeof why)) << why;
  EXPECT_EQ(text([&](BufWriter& w) { pub::render_buddyinfo(r.s, w); }), want_buddy);
  EXPECT_EQ(text([&](BufWriter& w) { pub::render_zoneinfo(r.s, w); }), want_zone);
  EXPECT_EQ(text([&](BufWriter& w) { pub::render_slabinfo(r.s, w); }), want_slab);
  EXPECT_EQ(text([&](BufWriter& w) { pub::render_vmstat(r.s, w); }), want_vmstat);
  std::string all = text([&](BufWriter& w) { pub::render_views(r.s, pub::kAllViews, w); });
  EXPECT_EQ(all, cat("== buddyinfo ==\n", want_buddy, "== zoneinfo ==\n", want_zone,
                     "== slabinfo ==\n", want_slab, "== vmstat ==\n", want_vmstat));
  for (void* p : held) kfree(p);
}

TEST_F(Views, SnapshotShowsKnownAmounts) {
  ASSERT_EQ(publish_now(), 0);
  std::uint64_t before;
  {
    Read r;
    ASSERT_EQ(r.err, 0);
    const pub::CacheSnap* c = cache(r.s, "kmalloc-3072");
    ASSERT_NE(c, nullptr);
    before = c->total.inuse;
  }
  std::vector<void*> held;
  for (int i = 0; i < 1500; ++i) held.push_back(kmalloc(3000));
  ASSERT_EQ(publish_now(), 0);
  {
    Read r;
    ASSERT_EQ(r.err, 0);
    const pub::CacheSnap* c = cache(r.s, "kmalloc-3072");
    ASSERT_NE(c, nullptr);
    // Objects cached in sheaves count as active too: the 1500 held ones
    // are at least there, and the earlier ones at most come on top.
    EXPECT_GE(c->total.inuse, 1500u);
    EXPECT_LT(c->total.inuse, before + 1500 + 2 * c->sheaf_capacity * 1024);
    EXPECT_EQ(c->size, 3072u);
  }
  for (void* p : held) kfree(p);
}

TEST_F(Views, ARequestIsServedByASlowPath) {
  ASSERT_EQ(publish_now(), 0);
  Read r;
  ASSERT_EQ(r.err, 0);
  ASSERT_TRUE(r.t.writable);
  std::uint64_t seq = pub::request_snapshot(r.t);
  // publish_ms is an hour: only the request can make a new snapshot. Slow
  // paths (large blocks, above the largest slab class) until it is served;
  // a bound, not a timing check.
  bool served = false;
  for (int i = 0; i < 2000 && !served; ++i) {
    usleep(2000);
    kfree(kmalloc(100000));
    served = __atomic_load_n(&r.t.hdr()->seq, __ATOMIC_ACQUIRE) > seq;
  }
  EXPECT_TRUE(served);
  // And no more than asked: with the request served, slow paths alone
  // publish nothing (publish_ms is an hour).
  std::uint64_t now = __atomic_load_n(&r.t.hdr()->seq, __ATOMIC_ACQUIRE);
  for (int i = 0; i < 50; ++i) {
    usleep(1000);
    kfree(kmalloc(100000));
  }
  EXPECT_EQ(__atomic_load_n(&r.t.hdr()->seq, __ATOMIC_ACQUIRE), now);
}

TEST_F(Views, ChecksumCatchesACorruptCopy) {
  ASSERT_EQ(publish_now(), 0);
  {
    Read r;
    ASSERT_EQ(r.err, 0);
    // Flip one bit of the current copy, past its header.
    auto* h = const_cast<pub::FileHeader*>(r.t.hdr());
    char* copy = static_cast<char*>(r.t.map) + h->snap_off[h->seq & 1];
    copy[sizeof(pub::SnapHeader) + 40] ^= 1;
    pub::Snapshot s;
    EXPECT_EQ(pub::read_snapshot(r.t, r.buf.data(), r.buf.size(), &s), EBADMSG);
  }
  ASSERT_EQ(publish_now(), 0);  // the next publish writes a good copy
  Read r;
  EXPECT_EQ(r.err, 0);
}

TEST_F(Views, OpenRejectsWhatIsNotAViewsFile) {
  ASSERT_EQ(publish_now(), 0);
  pub::Target t;
  EXPECT_EQ(pub::target_open(g_dir.c_str(), 999999999, &t), ENOENT);
  // A pid of ours (the file's name) with garbage in it.
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);
  std::string junk = file_of(child);
  {
    std::ofstream f(junk);
    f << std::string(8192, 'x');
  }
  chmod(junk.c_str(), 0600);
  EXPECT_EQ(pub::target_open(g_dir.c_str(), child, &t), EPROTO);
  // Our own file under another pid's name: the pid inside is not its name.
  std::ifstream in(file_of(getpid()), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  {
    std::ofstream f(junk, std::ios::binary | std::ios::trunc);
    f << bytes;
  }
  EXPECT_EQ(pub::target_open(g_dir.c_str(), child, &t), EPROTO);
  // Writable by others: refused.
  chmod(junk.c_str(), 0622);
  EXPECT_EQ(pub::target_open(g_dir.c_str(), child, &t), EPERM);
  unlink(junk.c_str());
  // A symlink: refused.
  ASSERT_EQ(symlink(file_of(getpid()).c_str(), junk.c_str()), 0);
  EXPECT_EQ(pub::target_open(g_dir.c_str(), child, &t), EPERM);
  unlink(junk.c_str());
}

TEST_F(Views, ListRemovesTheFileOfADeadPid) {
  ASSERT_EQ(publish_now(), 0);
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);
  // Our file, made to claim the dead child's pid.
  std::ifstream in(file_of(getpid()), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::int32_t pid = child;
  std::memcpy(&bytes[offsetof(pub::FileHeader, pid)], &pid, sizeof pid);
  std::string stale = file_of(child);
  {
    std::ofstream f(stale, std::ios::binary);
    f << bytes;
  }
  chmod(stale.c_str(), 0600);
  pub::Target t;
  ASSERT_EQ(pub::target_open(g_dir.c_str(), child, &t), 0);
  EXPECT_EQ(pub::target_liveness(t), pub::Liveness::kDead);
  pub::target_close(&t);
  struct Seen {
    std::vector<int> pids;
  } seen;
  pub::ListStats ls = pub::list_targets(
      g_dir.c_str(), true,
      [](pub::Target& t, void* ctx) { static_cast<Seen*>(ctx)->pids.push_back(t.pid); }, &seen);
  EXPECT_EQ(seen.pids, std::vector<int>{getpid()});
  EXPECT_GE(ls.removed, 1u);
  EXPECT_NE(access(stale.c_str(), F_OK), 0);
  EXPECT_EQ(access(file_of(getpid()).c_str(), F_OK), 0);
}

TEST_F(Views, AFileThatWentAwayIsMadeAgain) {
  ASSERT_EQ(publish_now(), 0);
  ASSERT_EQ(unlink(file_of(getpid()).c_str()), 0);  // a tmp cleaner
  ASSERT_EQ(publish_now(), 0);
  Read r;
  EXPECT_EQ(r.err, 0);
}

TEST_F(Views, AForkChildPublishesItsOwnFile) {
  ASSERT_EQ(publish_now(), 0);
  Read parent;
  ASSERT_EQ(parent.err, 0);
  std::uint64_t parent_seq = parent.s.head->seq;
  std::uint32_t self = this_thread_id();
  pid_t child = fork();
  if (child == 0) {
    // What the shim's atfork handler does.
    publish_fork_child(self);
    int bad = 0;
    if (publish_path() != nullptr) bad |= 1;
    std::vector<void*> held;
    for (int i = 0; i < 500; ++i) held.push_back(kmalloc(20000));
    if (publish_now() != 0) bad |= 2;
    if (!publish_path() || file_of(getpid()) != publish_path()) bad |= 4;
    _exit(bad);
  }
  ASSERT_GT(child, 0);
  int st;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  {
    // The child's file (left: it ended with _exit) holds its pid and state.
    pub::Target t;
    ASSERT_EQ(pub::target_open(g_dir.c_str(), child, &t), 0);
    EXPECT_EQ(t.hdr()->pid, child);
    EXPECT_EQ(pub::target_liveness(t), pub::Liveness::kDead);
    pub::target_close(&t);
    unlink(file_of(child).c_str());
  }
  // Nothing in the child wrote the parent's file.
  EXPECT_EQ(__atomic_load_n(&parent.t.hdr()->seq, __ATOMIC_ACQUIRE), parent_seq);
  EXPECT_EQ(parent.t.hdr()->pid, getpid());
}

TEST_F(Views, ExitRemovesTheFile) {
  std::uint32_t self = this_thread_id();
  pid_t child = fork();
  if (child == 0) {
    publish_fork_child(self);
    if (publish_now() != 0) _exit(1);
    std::string path = publish_path() ? publish_path() : "";
    if (access(path.c_str(), F_OK) != 0) _exit(2);
    publish_exit();
    if (access(path.c_str(), F_OK) == 0) _exit(3);
    if (publish_now() != ENOTSUP) _exit(4);  // closed for good
    _exit(0);
  }
  int st;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(ViewsParse, StartTimeAfterTheLastParenthesis) {
  std::string fields;
  for (int f = 4; f <= 21; ++f) fields.append(" ").append(std::to_string(f));
  std::string stat = cat("42 (a) b (c)) x", fields, " 123456 99 100");
  EXPECT_EQ(sysf::stat_start_time(stat.c_str()), 123456u);
  EXPECT_EQ(sysf::stat_start_time("42 (no end"), 0u);
  std::ifstream f("/proc/self/stat");
  std::string self((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_GT(sysf::stat_start_time(self.c_str()), 0u);
}

TEST(ViewsParse, VmstatLines) {
  pub::StatSnap out[4];
  unsigned n = parse_vmstat_lines("a 1\nbad line\nb 22\n  \nc\nd 3x\ne 4", out, 4);
  ASSERT_EQ(n, 3u);
  EXPECT_STREQ(out[0].name, "a");
  EXPECT_EQ(out[0].value, 1u);
  EXPECT_STREQ(out[1].name, "b");
  EXPECT_EQ(out[1].value, 22u);
  EXPECT_STREQ(out[2].name, "e");
  EXPECT_EQ(out[2].value, 4u);
  EXPECT_EQ(parse_vmstat_lines("a 1\nb 2\nc 3\n", out, 2), 2u);
}

TEST(ViewsParse, LayoutIsAlignedAndOrdered) {
  pub::Layout l = pub::layout_of(3, 17, 40, pub::kVmstatMax);
  for (std::uint64_t off : {l.zones, l.pcp, l.caches, l.cache_nodes, l.vmstat, l.size})
    EXPECT_EQ(off % 8, 0u);
  EXPECT_LT(l.zones, l.pcp);
  EXPECT_LT(l.pcp, l.caches);
  EXPECT_EQ(l.caches - l.pcp, 3 * 17 * sizeof(pub::PcpSnap));
  EXPECT_EQ(l.size - l.vmstat, pub::kVmstatMax * sizeof(pub::StatSnap));
}

}  // namespace
}  // namespace numaslub
