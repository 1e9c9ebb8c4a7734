// Tests for slub_debug (lib/slub/debug.h): the debug caches' layout, the
// checks of each letter, the reports, validation (kmem_validate, the
// library's numaslub_validate) and the quarantine; corrupt on purpose and
// check that the report names it and the repair holds (the kernel's
// lib/slub_kunit.c does the same).
//
// The whole binary runs with slub_debug=FZPU on every cache, going on after
// reports (debug_continue=1) that go to a log file the tests read back,
// and a small quarantine; set before the heap is. ctest runs it again with
// per-thread caches and with two fake NUMA nodes (tests/CMakeLists.txt).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "lib/base/config.h"
#include "lib/slub/debug.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/size_class.h"

namespace numaslub {
namespace {

constexpr std::size_t kQuarantine = 16 << 10;

std::string g_log;  // the debug_log file

// Before anything allocates from the heap: NUMASLUB_CONF (the mode) and
// then the debug settings.
const bool g_configured = [] {
  char path[] = "/tmp/slub_debug_test.XXXXXX";
  int fd = mkstemp(path);
  if (fd >= 0) close(fd);
  g_log = path;
  Config c;
  if (const char* e = std::getenv("NUMASLUB_CONF")) c.parse(e, false);
  std::string conf = "slub_debug=FZPU,debug_continue=1,quarantine=" + std::to_string(kQuarantine) +
                     ",debug_log=" + g_log;
  c.parse(conf.c_str(), false);
  config_set_for_test(c);
  return true;
}();

// The log goes with the process.
struct RemoveLog {
  ~RemoveLog() {
    if (!g_log.empty()) unlink(g_log.c_str());
  }
} g_remove_log;

// What the reports appended to the log since the last call.
std::string new_reports() {
  static std::size_t seen = 0;
  std::string all;
  int fd = open(g_log.c_str(), O_RDONLY);
  if (fd < 0) return all;
  char buf[4096];
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0) all.append(buf, static_cast<std::size_t>(r));
  close(fd);
  std::string fresh = all.size() > seen ? all.substr(seen) : std::string();
  seen = all.size();
  return fresh;
}

bool has(const std::string& text, const char* what) {
  return text.find(what) != std::string::npos;
}

// Frees objects of other sizes until p has left the quarantine.
void flush_quarantine() {
  for (std::size_t i = 0; i < 2 * kQuarantine / 256 + 8; ++i) kfree(kmalloc(256));
}

class DebugCache : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(g_configured);
    ASSERT_TRUE(slub_init());
    ASSERT_TRUE(debug_enabled());
    new_reports();
    ASSERT_EQ(kmem_validate(), 0u) << new_reports();
  }
  void TearDown() override { EXPECT_EQ(kmem_validate(), 0u) << new_reports(); }
};

TEST_F(DebugCache, LayoutAlignmentAndUsableSize) {
  for (unsigned cls = 0; cls < kNrClasses; ++cls) {
    std::uint32_t size = kClassSize[cls];
    std::uint32_t align = size & (0u - size);
    for (std::size_t req : {std::size_t{size}, std::size_t{size} - 1, std::size_t{size} / 2 + 1}) {
      auto* p = static_cast<unsigned char*>(kmalloc(req));
      ASSERT_NE(p, nullptr) << req;
      std::uint32_t c = kClassSize[size_to_class(req)];
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % (c & (0u - c)), 0u) << req;
      EXPECT_EQ(ksize(p), req) << "the usable size is the size asked for";
      for (std::size_t i = 0; i < req; ++i) EXPECT_EQ(p[i], kPoisonInuse) << req << " " << i;
      std::memset(p, 1, req);
      kfree(p);
    }
    void* q = kmalloc_aligned(align, size);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(q) % align, 0u) << size;
    kfree(q);
  }
  EXPECT_EQ(new_reports(), "");
}

TEST_F(DebugCache, RightRedZoneOverwrittenIsReportedAndRestored) {
  auto* p = static_cast<char*>(kmalloc(64));
  p[64] = 'A';
  kfree(p);
  std::string r = new_reports();
  EXPECT_TRUE(has(r, "BUG kmalloc-64: Right Redzone overwritten")) << r;
  EXPECT_TRUE(has(r, "First byte 0x41 instead of 0xcc")) << r;
  EXPECT_TRUE(has(r, "FIX kmalloc-64: Restoring Right Redzone")) << r;
  EXPECT_TRUE(has(r, "INFO: Allocated in ")) << r;
  EXPECT_TRUE(has(r, "Redzone ")) << r;
}

TEST_F(DebugCache, LeftRedZoneAndKmallocRedZone) {
  auto* p = static_cast<char*>(kmalloc(50));
  p[-1] = 1;
  p[50] = 2;  // between the size asked for and the class size
  EXPECT_EQ(kmem_validate(), 2u);
  std::string r = new_reports();
  EXPECT_TRUE(has(r, "BUG kmalloc-64: Left Redzone overwritten")) << r;
  EXPECT_TRUE(has(r, "BUG kmalloc-64: kmalloc Redzone overwritten")) << r;
  EXPECT_EQ(kmem_validate(), 0u) << "repaired";
  kfree(p);
  EXPECT_EQ(new_reports(), "");
}

TEST_F(DebugCache, WriteAfterFreeIsFoundInThePoison) {
  auto* p = static_cast<char*>(kmalloc(128));
  kfree(p);
  p[40] = 7;  // not the first word: no free pointer there to break
  EXPECT_EQ(kmem_validate(), 1u);
  std::string r = new_reports();
  EXPECT_TRUE(has(r, "BUG kmalloc-128: Poison overwritten")) << r;
  EXPECT_TRUE(has(r, "First byte 0x7 instead of 0x6b")) << r;
  EXPECT_TRUE(has(r, "INFO: Freed in ")) << r;
  EXPECT_TRUE(has(r, "state=quarantined")) << r;
}

TEST_F(DebugCache, WriteWhileQuarantinedIsCaughtWhenItLeaves) {
  auto* p = static_cast<char*>(kmalloc(96));
  kfree(p);
  p[0] = 1;
  flush_quarantine();
  std::string r = new_reports();
  EXPECT_TRUE(has(r, "BUG kmalloc-96: Poison overwritten")) << r;
}

TEST_F(DebugCache, QuarantineDelaysReuse) {
  void* p = kmalloc(48);
  kfree(p);
  std::vector<void*> got;
  for (int i = 0; i < 32; ++i) got.push_back(kmalloc(48));
  for (void* q : got) EXPECT_NE(q, p);
  for (void* q : got) kfree(q);
}

TEST_F(DebugCache, DoubleFreeIsReportedOnceAndSkipped) {
  void* p = kmalloc(32);
  kfree(p);
  kfree(p);  // in quarantine
  std::string r = new_reports();
  EXPECT_TRUE(has(r, "BUG kmalloc-32: Object already free: double free of")) << r;
  EXPECT_TRUE(has(r, "(in quarantine)")) << r;
  flush_quarantine();
  kfree(p);  // on the slab's freelist
  r = new_reports();
  EXPECT_TRUE(has(r, "BUG kmalloc-32: Object already free: double free of")) << r;
  EXPECT_TRUE(has(r, "state=free")) << r;
}

TEST_F(DebugCache, DoubleFreeFromAnotherThread) {
  void* p = kmalloc(64);
  kfree(p);
  std::thread([p] { kfree(p); }).join();
  std::string r = new_reports();
  EXPECT_TRUE(has(r, "BUG kmalloc-64: Object already free")) << r;
}

TEST_F(DebugCache, InteriorFreeAndRealloc) {
  auto* p = static_cast<char*>(kmalloc(64));
  kfree(p + 16);
  std::string r = new_reports();
  EXPECT_TRUE(has(r, "BUG kmalloc-64: Invalid object pointer")) << r;
  EXPECT_TRUE(has(r, "16 bytes into object")) << r;
  kfree(p);
  void* q = krealloc(p, 100);  // freed: reported, and a new block
  r = new_reports();
  EXPECT_TRUE(has(r, "realloc of")) << r;
  EXPECT_TRUE(has(r, "use after free")) << r;
  kfree(q);
}

TEST_F(DebugCache, ReallocAlwaysMovesAndKeepsTheContents) {
  auto* p = static_cast<char*>(kmalloc(100));
  std::memset(p, 3, 100);
  auto* q = static_cast<char*>(krealloc(p, 90));
  ASSERT_NE(q, nullptr);
  EXPECT_NE(q, p);
  for (int i = 0; i < 90; ++i) ASSERT_EQ(q[i], 3);
  EXPECT_EQ(ksize(q), 90u);
  kfree(q);
  EXPECT_EQ(new_reports(), "");
}

TEST_F(DebugCache, SizedFreeWithTheWrongSizeBothWays) {
  void* p = kmalloc(40);
  kfree_sized(p, 40);
  EXPECT_EQ(new_reports(), "");
  p = kmalloc(40);
  kfree_sized(p, 39);
  std::string r = new_reports();
  EXPECT_TRUE(has(r, "BUG kmalloc-48: Wrong size on sized free")) << r;
  EXPECT_TRUE(has(r, "freed with size 39, allocated with 40")) << r;
  p = kmalloc(40);
  kfree_sized(p, 41);
  r = new_reports();
  EXPECT_TRUE(has(r, "freed with size 41, allocated with 40")) << r;
  // kmalloc_aligned takes a class that is a multiple of the alignment, and
  // tells the debug cache the size asked for.
  p = kmalloc_aligned(4096, 50);
  EXPECT_EQ(ksize(p), 50u);
  kfree_sized(p, 50);
  EXPECT_EQ(new_reports(), "");
  p = kmalloc_aligned(4096, 50);
  kfree_sized(p, 4096);
  EXPECT_TRUE(has(new_reports(), "BUG kmalloc-4096: Wrong size on sized free"));
}

TEST_F(DebugCache, SlubDebugFSetsTheSizeCheckOfTheFreeFastPath) {
  // F turns debug on, and every sized free then goes through its check.
  EXPECT_TRUE(config().debug);
  EXPECT_NE(g_fastpath.free_checks & kFreeCheckSize, 0);
  // The sized frees' byte of free_unchecked says a check is due; a plain
  // free ignores the size bit.
  EXPECT_EQ(g_fastpath.free_unchecked[1], 0);
  if (!g_fastpath.multi_node) {
    EXPECT_EQ(g_fastpath.free_unchecked[0], static_cast<std::uint8_t>(cache_mode()));
  }
}

TEST_F(DebugCache, CorruptFreePointerIsRebuiltFromTheStates) {
  // A fresh slab's second object is free with a free pointer to check.
  std::vector<void*> hold;
  for (int i = 0; i < 200; ++i) hold.push_back(kmalloc(320));
  auto* p = static_cast<char*>(kmalloc(320));
  auto* q = static_cast<char*>(kmalloc(320));
  kfree(p);  // quarantined
  flush_quarantine();
  // p's free pointer word: after the object and its right red zone.
  auto** fp = reinterpret_cast<void**>(p + 320 + 16);
  *fp = reinterpret_cast<void*>(0x1234);
  EXPECT_GE(kmem_validate(), 1u);
  std::string r = new_reports();
  EXPECT_TRUE(has(r, "BUG kmalloc-320: Freechain corrupt")) << r;
  EXPECT_TRUE(has(r, "Rebuilt the freelist")) << r;
  for (int i = 0; i < 100; ++i) hold.push_back(kmalloc(320));
  kfree(q);
  for (void* h : hold) kfree(h);
}

TEST_F(DebugCache, ValidateWalksFullSlabsToo) {
  std::vector<char*> hold;
  for (int i = 0; i < 300; ++i) hold.push_back(static_cast<char*>(kmalloc(16)));
  hold[5][16] = 9;  // a slab that is full by now
  EXPECT_EQ(kmem_validate(), 1u);
  EXPECT_TRUE(has(new_reports(), "BUG kmalloc-16: Right Redzone overwritten"));
  for (char* h : hold) kfree(h);
}

TEST_F(DebugCache, TracksNameThreadAndStack) {
  void* p = nullptr;
  std::thread([&p] { p = kmalloc(64); }).join();
  kfree(p);
  kfree(p);
  std::string r = new_reports();
  EXPECT_TRUE(has(r, "INFO: Allocated in 0x")) << r;
  EXPECT_TRUE(has(r, "INFO: Freed in 0x")) << r;
  EXPECT_TRUE(has(r, "slub_debug_test+0x")) << r;  // frames of this program
  EXPECT_TRUE(has(r, "Call Trace:")) << r;
}

// Z for large blocks and direct mappings: a tail after the size asked for.
TEST_F(DebugCache, LargeAndHugeBlocksHaveATail) {
  for (std::size_t n : {std::size_t{100000}, std::size_t{4096 * 25}, std::size_t{6} << 20}) {
    auto* p = static_cast<char*>(kmalloc(n));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(ksize(p), n);
    std::memset(p, 1, n);
    auto* q = static_cast<char*>(krealloc(p, n + 1));  // always moves
    ASSERT_NE(q, nullptr);
    EXPECT_NE(q, p);
    EXPECT_EQ(q[n - 1], 1);
    EXPECT_EQ(ksize(q), n + 1);
    kfree(q);
    EXPECT_EQ(new_reports(), "") << n;
    auto* z = static_cast<unsigned char*>(kcalloc(1, n));
    ASSERT_NE(z, nullptr);
    EXPECT_EQ(z[0] | z[n / 2] | z[n - 1], 0);
    z[n] = 7;
    kfree(z);
    std::string r = new_reports();
    EXPECT_TRUE(has(r, n > (4u << 20) ? "BUG direct mapping: Right Redzone overwritten"
                                      : "BUG large block: Right Redzone overwritten"))
        << n << r;
    EXPECT_TRUE(has(r, "First byte 0x7 instead of 0xcc")) << r;
  }
}

}  // namespace
}  // namespace numaslub
