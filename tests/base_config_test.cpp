// Tests for lib/base's configuration: NUMASLUB_CONF parsing (bools,
// sizes, choices, slub_debug's syntax), bad entries, and the option table's
// defaults against the Config struct.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "lib/base/base.h"

namespace numaslub {
namespace {

// ---------------------------------------------------------------- Config

TEST(BaseConfig, BoolForms) {
  Config c;
  for (const char* on : {"verbose=1", "verbose=on", "verbose=true", "verbose=yes"}) {
    c.verbose = false;
    EXPECT_EQ(c.parse(on, false), 0) << on;
    EXPECT_TRUE(c.verbose) << on;
  }
  for (const char* off : {"mbind=0", "mbind=off", "mbind=false", "mbind=no"}) {
    c.mbind = true;
    EXPECT_EQ(c.parse(off, false), 0) << off;
    EXPECT_FALSE(c.mbind) << off;
  }
}

TEST(BaseConfig, BareBoolKeyMeansOn) {
  Config c;
  c.pcp = false;
  c.verbose = false;
  EXPECT_EQ(c.parse("pcp,verbose", false), 0);
  EXPECT_TRUE(c.pcp);
  EXPECT_TRUE(c.verbose);
  // A bare key of another type has no value to apply.
  EXPECT_EQ(c.parse("fake_numa", false), 1);
  EXPECT_EQ(c.fake_numa, 0u);
}

TEST(BaseConfig, UintAndSizeSuffixes) {
  Config c;
  EXPECT_EQ(c.parse("fake_numa=4,pcp_high=200,pcp_batch=7,watermark_scale=1000", false), 0);
  EXPECT_EQ(c.fake_numa, 4u);
  EXPECT_EQ(c.pcp_high, 200u);
  EXPECT_EQ(c.pcp_batch, 7u);
  EXPECT_EQ(c.watermark_scale, 1000u);
  EXPECT_EQ(c.parse("fake_numa=4294967295", false), 0);
  EXPECT_EQ(c.fake_numa, 4294967295u);

  struct {
    const char* text;
    std::uint64_t want;
  } cases[] = {
      {"arena_size=12345", 12345},   {"arena_size=3K", 3ULL << 10},
      {"arena_size=5k", 5ULL << 10}, {"arena_size=7M", 7ULL << 20},
      {"arena_size=2g", 2ULL << 30}, {"arena_size=9G", 9ULL << 30},
      {"arena_size=1T", 1ULL << 40}, {"arena_size=16777215T", 16777215ULL << 40},
      {"arena_size=0", 0},
  };
  for (const auto& t : cases) {
    c.arena_size = 42;
    EXPECT_EQ(c.parse(t.text, false), 0) << t.text;
    EXPECT_EQ(c.arena_size, t.want) << t.text;
  }
  EXPECT_EQ(c.parse("section_size=32M", false), 0);
  EXPECT_EQ(c.section_size, 32ULL << 20);
}

// The enumerated options' names: whole names only, the argument spec and
// the separators are not part of them.
TEST(BaseConfig, ChoiceIndex) {
  static_assert(choice_index("a|bc:N|d[:LIST]", "a") == 0);
  EXPECT_EQ(choice_index("a|bc:N|d[:LIST]", "bc"), 1);
  EXPECT_EQ(choice_index("a|bc:N|d[:LIST]", "d"), 2);
  for (const char* no : {"b", "bc:N", "c", "", "d[", "a|"})
    EXPECT_EQ(choice_index("a|bc:N|d[:LIST]", no), -1) << no;
  EXPECT_EQ(choice_index(kNumaChoices, "preferred"), 3);
}

TEST(BaseConfig, PercpuEnum) {
  Config c;
  EXPECT_EQ(c.parse("percpu=rseq", false), 0);
  EXPECT_EQ(c.percpu, choice_index(kPercpuChoices, "rseq"));
  EXPECT_EQ(c.parse("percpu=thread", false), 0);
  EXPECT_EQ(c.percpu, choice_index(kPercpuChoices, "thread"));
  EXPECT_EQ(c.parse("percpu=auto", false), 0);
  EXPECT_EQ(c.percpu, choice_index(kPercpuChoices, "auto"));
  c.percpu = static_cast<std::uint8_t>(choice_index(kPercpuChoices, "thread"));
  EXPECT_EQ(c.parse("percpu=sheaf", false), 1);
  EXPECT_EQ(c.percpu, choice_index(kPercpuChoices, "thread"));
}

TEST(BaseConfig, MmapPolicy) {
  Config c;
  EXPECT_EQ(c.parse("mmap_policy=bind:3", false), 0);
  EXPECT_EQ(c.mmap_policy, choice_index(kMmapPolicyChoices, "bind"));
  EXPECT_EQ(c.mmap_node, 3u);
  for (const char* bad : {"mmap_policy=bind:", "mmap_policy=bind:1024", "mmap_policy=bind:x",
                          "mmap_policy=remote", "mmap_policy"}) {
    EXPECT_EQ(c.parse(bad, false), 1) << bad;
    EXPECT_EQ(c.mmap_policy, choice_index(kMmapPolicyChoices, "bind")) << bad;
    EXPECT_EQ(c.mmap_node, 3u) << bad;
  }
  EXPECT_EQ(c.parse("mmap_policy=interleave", false), 0);
  EXPECT_EQ(c.mmap_policy, choice_index(kMmapPolicyChoices, "interleave"));
  EXPECT_EQ(c.mmap_node, 0u);
  EXPECT_EQ(c.parse("mmap_policy=local", false), 0);
  EXPECT_EQ(c.mmap_policy, choice_index(kMmapPolicyChoices, "local"));
  EXPECT_EQ(c.parse("mmap_policy=default", false), 0);
  EXPECT_EQ(c.mmap_policy, choice_index(kMmapPolicyChoices, "default"));
}

TEST(BaseConfig, BadEntriesAreCountedAndLeaveValuesUnchanged) {
  Config c;
  c.fake_numa = 3;
  c.arena_size = 1ULL << 30;
  c.pcp_high = 99;
  c.mbind = true;
  const char* text =
      "nosuch=1,fake_numa=x,fake_numa=4294967296,fake_numa=2K,arena_size=16Q,"
      "arena_size=16MB,arena_size=,arena_size=M,arena_size=16777216T,pcp_high=-1,"
      "mbind=maybe,mbind=,verbose=1";
  EXPECT_EQ(c.parse(text, false), 12);
  EXPECT_EQ(c.fake_numa, 3u);
  EXPECT_EQ(c.arena_size, 1ULL << 30);
  EXPECT_EQ(c.pcp_high, 99u);
  EXPECT_TRUE(c.mbind);
  EXPECT_TRUE(c.verbose);  // the one good entry still applies
}

TEST(BaseConfig, EmptyEntriesAreSkipped) {
  Config c;
  c.verbose = false;
  EXPECT_EQ(c.parse("", false), 0);
  EXPECT_EQ(c.parse(nullptr, false), 0);
  EXPECT_EQ(c.parse(",,pcp_batch=5,,verbose,", false), 0);
  EXPECT_EQ(c.pcp_batch, 5u);
  EXPECT_TRUE(c.verbose);
}

TEST(BaseConfig, LaterEntriesOverrideEarlier) {
  Config c;
  EXPECT_EQ(c.parse("pcp_high=1,pcp_high=2,mbind=0,mbind=1", false), 0);
  EXPECT_EQ(c.pcp_high, 2u);
  EXPECT_TRUE(c.mbind);
}

TEST(BaseConfig, SlubDebugSyntax) {
  Config c;
  EXPECT_EQ(c.parse("slub_debug=FZPU", false), 0);
  EXPECT_STREQ(c.slub_debug, "FZPU");
  EXPECT_TRUE(c.debug);  // F includes the sized-free check
  c = Config{};
  EXPECT_EQ(c.parse("slub_debug", false), 0);  // bare: every check, as the kernel's
  EXPECT_STREQ(c.slub_debug, "FZPU");
  c = Config{};
  EXPECT_EQ(c.parse("slub_debug=zp:kmalloc-64:kmalloc-128;u,verbose", false), 0);
  EXPECT_STREQ(c.slub_debug, "zp:kmalloc-64:kmalloc-128;u");
  EXPECT_FALSE(c.debug);
  EXPECT_TRUE(c.verbose);
  EXPECT_EQ(c.parse("slub_debug=Z:kmalloc-64;F:kmalloc-16", false), 0);
  EXPECT_TRUE(c.debug);  // F of a named block too
  EXPECT_EQ(c.parse("slub_debug=-", false), 0);
  EXPECT_STREQ(c.slub_debug, "");
  for (const char* bad :
       {"slub_debug=FX", "slub_debug=F:", "slub_debug=:kmalloc-64", "slub_debug=F::x",
        "slub_debug=F:Kmalloc-64", "slub_debug=F-", "slub_debug=F;;Z", "slub_debug="}) {
    EXPECT_EQ(c.parse(bad, false), 1) << bad;
    EXPECT_STREQ(c.slub_debug, "") << bad;
  }
  EXPECT_EQ(c.parse("debug_log=/tmp/x.log,quarantine=4M,debug_continue", false), 0);
  EXPECT_STREQ(c.debug_log, "/tmp/x.log");
  EXPECT_EQ(c.quarantine, 4ULL << 20);
  EXPECT_TRUE(c.debug_continue);
  EXPECT_EQ(c.parse("debug_log=-", false), 0);
  EXPECT_STREQ(c.debug_log, "");
}

void expect_same(const Config& a, const Config& b) {
  EXPECT_STREQ(a.slub_debug, b.slub_debug);
  EXPECT_STREQ(a.debug_log, b.debug_log);
  EXPECT_EQ(a.debug_continue, b.debug_continue);
  EXPECT_EQ(a.quarantine, b.quarantine);
  EXPECT_EQ(a.debug, b.debug);
  EXPECT_EQ(a.slab_random, b.slab_random);
  EXPECT_EQ(a.fake_numa, b.fake_numa);
  EXPECT_EQ(a.arena_size, b.arena_size);
  EXPECT_EQ(a.section_size, b.section_size);
  EXPECT_EQ(a.mbind, b.mbind);
  EXPECT_EQ(a.pcp, b.pcp);
  EXPECT_EQ(a.pcp_high, b.pcp_high);
  EXPECT_EQ(a.pcp_batch, b.pcp_batch);
  EXPECT_EQ(a.watermark_scale, b.watermark_scale);
  EXPECT_EQ(a.percpu, b.percpu);
  EXPECT_EQ(a.mmap_policy, b.mmap_policy);
  EXPECT_EQ(a.mmap_node, b.mmap_node);
  EXPECT_EQ(a.publish, b.publish);
  EXPECT_EQ(a.publish_ms, b.publish_ms);
  EXPECT_EQ(a.verbose, b.verbose);
}

TEST(BaseConfig, TableDefaultsMatchStruct) {
  const Config want{};
  Config c{};
  EXPECT_EQ(config_parse_defaults(&c), 0);
  expect_same(c, want);

  // From every field scrambled, so an option missing from the table shows.
  Config s;
  s.fake_numa = 77;
  s.arena_size = 123;
  s.section_size = 456;
  s.mbind = !want.mbind;
  s.pcp = !want.pcp;
  s.pcp_high = 1234;
  s.pcp_batch = 5678;
  s.watermark_scale = 9;
  s.percpu = choice_index(kPercpuChoices, "thread");
  s.mmap_policy = choice_index(kMmapPolicyChoices, "bind");
  s.mmap_node = 5;
  s.publish = !want.publish;
  s.publish_ms = 4321;
  std::strcpy(s.slub_debug, "FZ");
  std::strcpy(s.debug_log, "/x");
  s.debug_continue = true;
  s.quarantine = 77;
  s.slab_random = !want.slab_random;
  s.verbose = !want.verbose;
  EXPECT_EQ(config_parse_defaults(&s), 0);
  expect_same(s, want);
}

// numaslub-info --config-help (and the README table made from it): one
// line per option, each with its whole help text, however long.
TEST(BaseConfig, HelpHasOneWholeLinePerOption) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  config_print_help(fds[1]);
  close(fds[1]);
  std::string out = "\n";  // so that every line, the first too, follows a newline
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  std::vector<std::string> lines;
  for (std::size_t at = 1, nl; (nl = out.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(out.substr(at, nl - at));
  ASSERT_GT(lines.size(), 10u);
  EXPECT_EQ(out.back(), '\n');
  for (const std::string& l : lines) {
    // Each line: the name, type, default and help; no name twice (a line
    // that lost its newline runs into the next and hides it).
    std::string key = "\n";
    key += l.substr(0, l.find(' '));
    key += ' ';
    ASSERT_GT(key.size(), 2u) << l;
    EXPECT_EQ(out.find(key), out.rfind(key)) << key << " twice";
    EXPECT_GT(l.size(), 30u) << l;
  }
  for (const char* name : {"fake_numa", "debug", "verbose", "thp", "slab_random"}) {
    std::string key = "\n";
    key += name;
    key += ' ';
    EXPECT_NE(out.find(key), std::string::npos) << name;
  }
  // A help text longer than any line buffer arrives whole.
  bool found = false;
  for (const std::string& l : lines)
    if (l.rfind("slab_random ", 0) == 0) {
      found = true;
      EXPECT_NE(l.find("(faster where objects go from thread to thread)"), std::string::npos) << l;
    }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace numaslub
