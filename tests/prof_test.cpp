// The heap profiler's parts, alone (lib/slub/prof.h): the sampling rate,
// the scale a sample stands for, records read consistently while they
// change, and the text profile written from them. The whole profiler
// (preloaded, static, from outside, the leak check) is tests/prof.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <string>
#include <thread>

#include "lib/base/base.h"
#include "lib/slub/slub.h"

using namespace numaslub;

namespace {

// The profiler's region and counts are the process's: one configuration
// for the whole binary, set before the first record.
class ProfTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Config c = config();
    c.prof_sample = 4096;
    c.prof_max = 1024;
    config_set_for_test(c);
  }
};

TEST_F(ProfTest, ScaleIsTheInverseOfTheSamplingProbability) {
  EXPECT_NEAR(prof_scale(64, 524288), 1 / (1 - std::exp(-64.0 / 524288)), 1e-3);
  EXPECT_NEAR(prof_scale(524288, 524288), 1 / (1 - std::exp(-1.0)), 1e-9);
  EXPECT_NEAR(prof_scale(1 << 30, 524288), 1.0, 1e-12);
  EXPECT_NEAR(prof_scale(100, 1), 1.0, 1e-12);  // prof_sample=1: every allocation
}

TEST_F(ProfTest, SamplesInProportionToBytes) {
  // 64-byte requests at a 4 KiB mean interval: each is sampled with
  // probability 1 - exp(-1/64); 10^6 of them, about 15504 samples (the
  // standard deviation is about 124: 5% is 6 of them).
  std::thread t([] {
    int n = 0;
    for (int i = 0; i < 1000000; ++i) n += prof_sample_now(64);
    double want = 1e6 * (1 - std::exp(-64.0 / 4096));
    EXPECT_NEAR(n, want, want * 0.05);
    // A request far above the interval is always sampled.
    int big = 0;
    for (int i = 0; i < 1000; ++i) big += prof_sample_now(1 << 20);
    EXPECT_GE(big, 999);
  });
  t.join();
}

TEST_F(ProfTest, RecordsAreWrittenReadAndReleased) {
  static char obj[3][64];
  ProfRecord* r[3];
  for (int i = 0; i < 3; ++i) {
    r[i] = prof_record(obj[i], 100 * (i + 1), false);
    ASSERT_NE(r[i], nullptr);
  }
  std::size_t bytes;
  const ProfFileHeader* h = prof_region(&bytes);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->magic, kProfMagic);
  EXPECT_EQ(h->interval, 4096u);
  std::size_t i0 =
      static_cast<std::size_t>(r[0] - reinterpret_cast<const ProfRecord*>(
                                          reinterpret_cast<const char*>(h) + h->header_size));
  ProfRecord copy;
  ASSERT_TRUE(prof_read_record(h, i0 + 1, &copy));
  EXPECT_EQ(copy.addr, reinterpret_cast<std::uintptr_t>(obj[1]));
  EXPECT_EQ(copy.size, 200u);
  EXPECT_GT(copy.nframes, 0u);  // this test's own frames
  prof_moved(r[1], obj[1], obj[1], 250);
  ASSERT_TRUE(prof_read_record(h, i0 + 1, &copy));
  EXPECT_EQ(copy.size, 250u);
  prof_release(r[1], obj[2]);  // not its object: left alone
  EXPECT_TRUE(prof_read_record(h, i0 + 1, &copy));
  for (int i = 0; i < 3; ++i) prof_release(r[i], obj[i]);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(prof_read_record(h, i0 + i, &copy));
}

TEST_F(ProfTest, ReaderNeverSeesAHalfWrittenRecord) {
  static char objs[2][16];
  ProfRecord* r = prof_record(objs[0], 1, false);
  ASSERT_NE(r, nullptr);
  std::size_t bytes;
  const ProfFileHeader* h = prof_region(&bytes);
  std::size_t idx = static_cast<std::size_t>(
      r - reinterpret_cast<const ProfRecord*>(reinterpret_cast<const char*>(h) + h->header_size));
  std::atomic<bool> stop{false};
  // The writer moves the record between two states whose fields agree:
  // size 1 at objs[0], size 2 at objs[1].
  std::thread writer([&] {
    for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      int from = i & 1, to = from ^ 1;
      prof_moved(r, objs[from], objs[to], static_cast<std::size_t>(to + 1));
    }
  });
  unsigned seen[2] = {0, 0}, bad = 0;
  // At least 200000 copies, and until both states were seen (10^8 at most).
  for (int i = 0; i < 100000000 && (i < 200000 || !seen[0] || !seen[1]); ++i) {
    ProfRecord c;
    if (!prof_read_record(h, idx, &c)) continue;
    int which = c.addr == reinterpret_cast<std::uintptr_t>(objs[1]);
    if (c.size != static_cast<std::uint64_t>(which + 1)) ++bad;
    ++seen[which];
  }
  stop = true;
  writer.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_GT(seen[0], 0u);
  EXPECT_GT(seen[1], 0u);
  prof_release(r, reinterpret_cast<void*>(r->addr));
}

TEST_F(ProfTest, ProfileIsGperftoolsTextWithScaledLines) {
  static char big[8];
  ProfRecord* r = prof_record(big, 4096, false);  // scale 1/(1-1/e)
  ASSERT_NE(r, nullptr);
  std::size_t bytes;
  const ProfFileHeader* h = prof_region(&bytes);
  int fd = static_cast<int>(syscall(SYS_memfd_create, "profile", 0));
  ASSERT_GE(fd, 0);
  int maps = static_cast<int>(sys::open("/proc/self/maps", 0));
  ASSERT_EQ(prof_write_profile(fd, h, bytes, maps), 0);
  sys::close(maps);
  std::string text;
  char buf[4096];
  long n;
  lseek(fd, 0, SEEK_SET);
  while ((n = read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  close(fd);
  EXPECT_EQ(text.rfind("heap profile: ", 0), 0u) << text.substr(0, 200);
  EXPECT_NE(text.find(" @ heapprofile\n"), std::string::npos);
  // 4096 bytes at a 4096-byte interval stand for 1.582 objects, 6480 bytes.
  EXPECT_NE(text.find("     2:     6480 [     2:     6480] @ 0x"), std::string::npos)
      << text.substr(0, 400);
  EXPECT_NE(text.find("\nMAPPED_LIBRARIES:\n"), std::string::npos);
  EXPECT_NE(text.find("[stack]"), std::string::npos);  // the maps follow
  prof_release(r, big);
}

}  // namespace
