// Tests for lib/base: formatting, sysfs parsers, lists, bit operations,
// the futex mutex, the boot allocator, rseq / current_cpu, the vDSO and
// stack traces. The configuration's tests: base_config_test.
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

// ---------------------------------------------------------------- format

// A macro, so the compiler still checks each format string against its args.
#define FMT(...)                                             \
  ([&] {                                                     \
    char buf_[256];                                          \
    std::size_t n_ = format(buf_, sizeof buf_, __VA_ARGS__); \
    EXPECT_EQ(n_, std::strlen(buf_));                        \
    return std::string(buf_, n_);                            \
  }())

TEST(BaseFormat, Conversions) {
  EXPECT_EQ(FMT("a%sb", "xyz"), "axyzb");
  const char* volatile null_str = nullptr;  // hidden from the compiler's check
  EXPECT_EQ(FMT("%s", null_str), "(null)");
  EXPECT_EQ(FMT("%d %i", 42, -7), "42 -7");
  EXPECT_EQ(FMT("%d", INT_MIN), "-2147483648");
  EXPECT_EQ(FMT("%ld", LONG_MIN), "-9223372036854775808");
  EXPECT_EQ(FMT("%lld", -1LL), "-1");
  EXPECT_EQ(FMT("%u", 4294967295u), "4294967295");
  EXPECT_EQ(FMT("%x", 0xdeadbeefu), "deadbeef");
  EXPECT_EQ(FMT("%lx", 0x123456789abcUL), "123456789abc");
  EXPECT_EQ(FMT("%lu", 18446744073709551615UL), "18446744073709551615");
  EXPECT_EQ(FMT("%llu", 1ULL << 40), "1099511627776");
  EXPECT_EQ(FMT("%zu", std::size_t{1} << 33), "8589934592");
  EXPECT_EQ(FMT("%p", reinterpret_cast<void*>(0x7f00dead0000UL)), "0x7f00dead0000");
  EXPECT_EQ(FMT("%c%c", 'o', 'k'), "ok");
  EXPECT_EQ(FMT("100%%"), "100%");
  EXPECT_EQ(FMT("%d", 0), "0");
}

TEST(BaseFormat, WidthAlignAndPadding) {
  EXPECT_EQ(FMT("[%5d]", 42), "[   42]");
  EXPECT_EQ(FMT("[%-5d]", 42), "[42   ]");
  EXPECT_EQ(FMT("[%05d]", 42), "[00042]");
  EXPECT_EQ(FMT("[%05d]", -42), "[-0042]");
  EXPECT_EQ(FMT("[%5d]", -42), "[  -42]");
  EXPECT_EQ(FMT("[%08x]", 0xbeefu), "[0000beef]");
  EXPECT_EQ(FMT("[%6s]", "ab"), "[    ab]");
  EXPECT_EQ(FMT("[%-6s]", "ab"), "[ab    ]");
  EXPECT_EQ(FMT("[%2s]", "abcd"), "[abcd]");  // width never truncates
  EXPECT_EQ(FMT("[%-16s|%5zu]", "kmalloc-64", std::size_t{12}), "[kmalloc-64      |   12]");
}

TEST(BaseFormat, TruncationKeepsNul) {
  char buf[8];
  std::memset(buf, 'X', sizeof buf);
  BufWriter w(buf, 6);
  w.put("hello world");
  EXPECT_TRUE(w.truncated());
  EXPECT_EQ(w.size(), 5u);
  EXPECT_STREQ(buf, "hello");
  EXPECT_EQ(buf[6], 'X');  // nothing written past cap
  EXPECT_EQ(buf[7], 'X');

  char small[4];
  EXPECT_EQ(format(small, sizeof small, "%d", 123456), 3u);
  EXPECT_STREQ(small, "123");

  char fits[6];
  BufWriter f(fits, sizeof fits);
  f.printf("%s", "abcde");
  EXPECT_FALSE(f.truncated());
  EXPECT_STREQ(fits, "abcde");
  f.putc('!');
  EXPECT_TRUE(f.truncated());
  EXPECT_STREQ(fits, "abcde");

  char none = 'Z';
  BufWriter z(&none, 0);
  z.put("a");
  EXPECT_TRUE(z.truncated());
  EXPECT_EQ(none, 'Z');
}

// prof_final's and NUMASLUB_STATS's file names: %p is the pid, anywhere
// and any number of times; a name that does not fit is refused, never cut.
TEST(BaseFormat, PidPath) {
  char buf[32];
  EXPECT_EQ(format_pid_path(buf, sizeof buf, "/tmp/s.%p.txt", 4242), 15u);
  EXPECT_STREQ(buf, "/tmp/s.4242.txt");
  EXPECT_EQ(format_pid_path(buf, sizeof buf, "%p-%p", 7), 3u);
  EXPECT_STREQ(buf, "7-7");
  EXPECT_EQ(format_pid_path(buf, sizeof buf, "plain%", 7), 6u);
  EXPECT_STREQ(buf, "plain%");
  EXPECT_EQ(format_pid_path(buf, sizeof buf, "/a/very/long/directory/name/%p", 123456), 0u);
  EXPECT_EQ(format_pid_path(buf, 8, "1234567", 1), 7u);  // exactly fits, with its NUL
  EXPECT_EQ(format_pid_path(buf, 8, "12345678", 1), 0u);
}

TEST(BaseFormat, WriterAppends) {
  char buf[64];
  BufWriter w(buf, sizeof buf);
  EXPECT_STREQ(w.data(), "");
  w.printf("%s=%u", "order", 3u);
  w.putc(' ');
  w.printf("%d", -1);
  EXPECT_STREQ(w.data(), "order=3 -1");
  EXPECT_EQ(w.size(), 10u);
  EXPECT_FALSE(w.truncated());
}

// ---------------------------------------------------------------- sysfs parsers

TEST(BaseSysfs, ParseCpulist) {
  CpuMask m;
  ASSERT_TRUE(parse_list("0-3,8,10-11\n", &m));
  EXPECT_EQ(m.count(), 7u);
  for (unsigned c : {0u, 1u, 2u, 3u, 8u, 10u, 11u}) EXPECT_TRUE(m.test(c)) << c;
  for (unsigned c : {4u, 7u, 9u, 12u}) EXPECT_FALSE(m.test(c)) << c;

  ASSERT_TRUE(parse_list("5", &m));
  EXPECT_EQ(m.count(), 1u);
  EXPECT_TRUE(m.test(5));
  ASSERT_TRUE(parse_list("\n", &m));  // an empty list clears the mask
  EXPECT_TRUE(m.empty());
  ASSERT_TRUE(parse_list("1020-2000", &m));  // clipped to the mask
  EXPECT_EQ(m.count(), 4u);

  NodeMask nm;
  ASSERT_TRUE(parse_list("0,2\n", &nm));
  EXPECT_TRUE(nm.test(0));
  EXPECT_FALSE(nm.test(1));
  EXPECT_TRUE(nm.test(2));
}

TEST(BaseSysfs, ParseCpulistRejectsBadSyntax) {
  CpuMask m;
  for (const char* bad : {"a", "1-", "-1", "3-1", "1,,2", "1 2", "0-3;4", "1-2-3", "x\n"})
    EXPECT_FALSE(parse_list(bad, &m)) << bad;
}

TEST(BaseSysfs, ParseNumbers) {
  std::uint32_t v[8] = {};
  EXPECT_EQ(parse_numbers("10 20 30\n", v, 8), 3u);
  EXPECT_EQ(v[0], 10u);
  EXPECT_EQ(v[1], 20u);
  EXPECT_EQ(v[2], 30u);
  EXPECT_EQ(parse_numbers("\t1\n2  3 4 5", v, 2), 2u);  // stops at max
  EXPECT_EQ(v[1], 2u);
  EXPECT_EQ(parse_numbers("7 x 8", v, 8), 1u);  // stops at a non-number
  EXPECT_EQ(v[0], 7u);
  EXPECT_EQ(parse_numbers("", v, 8), 0u);
}

TEST(BaseSysfs, FindKbField) {
  const char* status =
      "Name:\ttest\nVmPeak:\t  2000 kB\nVmSize:\t  1234 kB\nVmSizeX:\t 9 kB\nBad:\tnone\n";
  std::uint64_t kb = 0;
  ASSERT_TRUE(find_kb_field(status, "VmSize", &kb));
  EXPECT_EQ(kb, 1234u);
  ASSERT_TRUE(find_kb_field(status, "VmPeak", &kb));
  EXPECT_EQ(kb, 2000u);
  kb = 5;
  EXPECT_FALSE(find_kb_field(status, "VmRSS", &kb));
  EXPECT_FALSE(find_kb_field(status, "Bad", &kb));
  EXPECT_FALSE(find_kb_field(status, "Size", &kb));  // only at a line start
  EXPECT_EQ(kb, 5u);
}

TEST(BaseSysfs, ReadTextFile) {
  char buf[16];
  EXPECT_EQ(read_text_file("/nonexistent/numaslub", buf, sizeof buf), -1);
  long n = read_text_file("/proc/self/status", buf, sizeof buf);
  EXPECT_EQ(n, 15);  // truncated to cap - 1 and NUL-terminated
  EXPECT_EQ(std::strlen(buf), 15u);
  EXPECT_EQ(std::strncmp(buf, "Name:", 5), 0);
}

// ---------------------------------------------------------------- lists

struct Item {
  int v;
  ListNode link;
};

std::vector<int> values(ListNode* head) {
  std::vector<int> out;
  for (ListNode* n = head->next; n != head; n = n->next) {
    EXPECT_EQ(n->next->prev, n);
    out.push_back(list_entry<Item>(n, offsetof(Item, link))->v);
  }
  return out;
}

TEST(BaseList, PushAndUnlinkOrder) {
  ListNode head;
  head.init();
  EXPECT_TRUE(head.empty());
  Item a{1, {}}, b{2, {}}, c{3, {}}, d{4, {}};
  head.push_back(&a.link);
  head.push_back(&b.link);
  head.push_front(&c.link);
  EXPECT_FALSE(head.empty());
  EXPECT_EQ(values(&head), (std::vector<int>{3, 1, 2}));
  a.link.push_front(&d.link);  // after a
  EXPECT_EQ(values(&head), (std::vector<int>{3, 1, 4, 2}));
  ListNode::unlink(&a.link);
  EXPECT_EQ(values(&head), (std::vector<int>{3, 4, 2}));
  EXPECT_EQ(a.link.next, &a.link);  // detached nodes are self-linked
  EXPECT_EQ(a.link.prev, &a.link);
  ListNode::unlink(&c.link);
  ListNode::unlink(&b.link);
  EXPECT_EQ(values(&head), (std::vector<int>{4}));
  ListNode::unlink(&d.link);
  EXPECT_TRUE(head.empty());
  EXPECT_EQ(head.prev, &head);
}

// ---------------------------------------------------------------- bitops

TEST(BaseBitops, Logs) {
  EXPECT_EQ(ilog2(1), 0u);
  EXPECT_EQ(ilog2(2), 1u);
  EXPECT_EQ(ilog2(3), 1u);
  EXPECT_EQ(ilog2(4096), 12u);
  EXPECT_EQ(ilog2(4097), 12u);
  EXPECT_EQ(ilog2(~0ULL), 63u);
  EXPECT_EQ(ilog2_ceil(1), 0u);
  EXPECT_EQ(ilog2_ceil(2), 1u);
  EXPECT_EQ(ilog2_ceil(3), 2u);
  EXPECT_EQ(ilog2_ceil(4096), 12u);
  EXPECT_EQ(ilog2_ceil(4097), 13u);
  EXPECT_TRUE(is_pow2(1));
  EXPECT_TRUE(is_pow2(1ULL << 63));
  EXPECT_FALSE(is_pow2(0));
  EXPECT_FALSE(is_pow2(12));
}

TEST(BaseBitops, AlignAndPow2) {
  EXPECT_EQ(align_up(0, 64), 0u);
  EXPECT_EQ(align_up(1, 64), 64u);
  EXPECT_EQ(align_up(64, 64), 64u);
  EXPECT_EQ(align_up(65, 64), 128u);
  EXPECT_EQ(align_down(127, 64), 64u);
  EXPECT_EQ(align_down(128, 64), 128u);
  EXPECT_EQ(align_down(63, 64), 0u);
  EXPECT_EQ(pow2_floor(1), 1u);
  EXPECT_EQ(pow2_floor(3), 2u);
  EXPECT_EQ(pow2_floor(300ULL << 20), 256ULL << 20);
  EXPECT_EQ(pow2_floor(1ULL << 40), 1ULL << 40);
}

TEST(BaseBitops, Bitmap) {
  Bitmap<130> b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.next(0), 130u);
  b.set(0);
  b.set(63);
  b.set(64);
  b.set(129);
  b.set(130);  // out of range: ignored
  b.set(64);   // idempotent
  EXPECT_EQ(b.count(), 4u);
  EXPECT_FALSE(b.test(130));
  EXPECT_FALSE(b.test(1000));
  EXPECT_EQ(b.next(0), 0u);
  EXPECT_EQ(b.next(1), 63u);
  EXPECT_EQ(b.next(64), 64u);
  EXPECT_EQ(b.next(65), 129u);
  EXPECT_EQ(b.next(130), 130u);
}

// ---------------------------------------------------------------- Mutex

TEST(BaseMutex, ContendedCounterIsExact) {
  Mutex mu;
  long counter = 0;  // plain: only the mutex orders the increments
  constexpr int kThreads = 4, kIters = 100000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < kIters; ++i) {
        LockGuard<Mutex> g(mu);
        counter = counter + 1;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, long{kThreads} * kIters);
  EXPECT_FALSE(mu.is_locked());
}

TEST(BaseMutex, OwnerAndOrphanReset) {
  Mutex mu;
  unsigned base = t_ctx.locks_held;
  EXPECT_TRUE(mu.try_lock());
  EXPECT_TRUE(mu.is_locked());
  EXPECT_EQ(mu.owner(), this_thread_id());
  EXPECT_EQ(t_ctx.locks_held, base + 1);
  EXPECT_FALSE(mu.try_lock());
  // A fork child keeps a lock its own (interrupted) frame holds...
  EXPECT_FALSE(mu.reset_if_orphaned(this_thread_id()));
  EXPECT_TRUE(mu.is_locked());
  // ...and frees one that a thread which did not survive the fork held.
  EXPECT_TRUE(mu.reset_if_orphaned(this_thread_id() + 1));
  EXPECT_FALSE(mu.is_locked());
  t_ctx.locks_held = base;  // the orphaned hold is gone
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
  EXPECT_FALSE(mu.is_locked());
  EXPECT_EQ(t_ctx.locks_held, base);
  EXPECT_FALSE(mu.reset_if_orphaned(1));  // free: nothing to reset
}

TEST(BaseMutexDeathTest, SelfDeadlockIsNamed) {
  Mutex mu;
  EXPECT_DEATH(
      {
        mu.lock();
        mu.lock();
      },
      "self-deadlock");
}

// ---------------------------------------------------------------- boot_alloc

TEST(BaseBootAlloc, ZeroedAlignedDisjoint) {
  struct Block {
    unsigned char* p;
    std::size_t n;
  };
  std::vector<Block> blocks;
  std::size_t before = boot_alloc_bytes();
  std::size_t total = 0;
  const std::size_t sizes[] = {1, 24, 64, 100, 4096, 5000, 700 << 10, 3};
  const std::size_t aligns[] = {8, 64, 128, 4096, 64, 256, 4096, 1 << 20};
  for (int round = 0; round < 3; ++round)
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
      auto* p = static_cast<unsigned char*>(boot_alloc(sizes[i], aligns[i]));
      ASSERT_NE(p, nullptr);
      std::size_t want_align = aligns[i] < 64 ? 64 : aligns[i];
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % want_align, 0u) << sizes[i];
      for (std::size_t k = 0; k < sizes[i]; ++k) ASSERT_EQ(p[k], 0) << sizes[i] << " @" << k;
      std::memset(p, 0xa5, sizes[i]);  // a later block overlapping this one is caught
      blocks.push_back({p, sizes[i]});
      total += sizes[i];
    }
  for (std::size_t i = 0; i < blocks.size(); ++i)
    for (std::size_t j = i + 1; j < blocks.size(); ++j) {
      auto a = reinterpret_cast<std::uintptr_t>(blocks[i].p);
      auto b = reinterpret_cast<std::uintptr_t>(blocks[j].p);
      EXPECT_TRUE(a + blocks[i].n <= b || b + blocks[j].n <= a) << i << " overlaps " << j;
    }
  EXPECT_GE(boot_alloc_bytes() - before, total);
}

// ---------------------------------------------------------------- rseq

TEST(BaseRseq, OwnerMatchesGlibc) {
  if (__rseq_size != 0) {
    EXPECT_EQ(rseq_owner(), RseqOwner::kGlibc);
    RseqAbi* a = rseq_area();
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(reinterpret_cast<char*>(a),
              static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset);
    EXPECT_LT(a->cpu_id, possible_cpus());
  } else {
    EXPECT_EQ(rseq_owner(), RseqOwner::kOwn);
  }
}

TEST(BaseRseq, CurrentCpuBelowPossible) {
  unsigned n = possible_cpus();
  ASSERT_GE(n, 1u);
  ASSERT_LE(n, kMaxCpus);
  CpuMask m;
  char buf[256];
  ASSERT_GT(read_text_file("/sys/devices/system/cpu/possible", buf, sizeof buf), 0);
  ASSERT_TRUE(parse_list(buf, &m));
  unsigned last = 0;
  for (unsigned c = 0; c < kMaxCpus; ++c)
    if (m.test(c)) last = c;
  EXPECT_EQ(n, last + 1);
  int cpu = current_cpu();
  EXPECT_GE(cpu, 0);
  EXPECT_LT(static_cast<unsigned>(cpu), n);
}

TEST(BaseRseq, CurrentCpuFollowsAffinity) {
  cpu_set_t orig;
  ASSERT_EQ(sched_getaffinity(0, sizeof orig, &orig), 0);
  int checked = 0;
  for (int c = 0; c < CPU_SETSIZE && checked < 8; ++c) {
    if (!CPU_ISSET(c, &orig)) continue;
    ++checked;
    // In a fresh thread, so the main thread's affinity is never narrowed.
    int seen = -1, seen_getcpu = -1, rc = -1;
    std::thread t([&] {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(c, &one);
      rc = sched_setaffinity(0, sizeof one, &one);
      seen = current_cpu();
      seen_getcpu = sched_getcpu();
    });
    t.join();
    ASSERT_EQ(rc, 0) << "cpu " << c;
    EXPECT_EQ(seen, c);
    EXPECT_EQ(seen_getcpu, c);
  }
  EXPECT_GE(checked, 1);
}

// ----------------------------------------------------------- vdso

// The vDSO as the dynamic loader sees it (it loads it as linux-vdso.so.1).
void* loader_vdso_symbol(const char* name) {
  void* h = dlopen("linux-vdso.so.1", RTLD_LAZY | RTLD_NOLOAD);
  return h ? dlsym(h, name) : nullptr;
}

TEST(BaseVdso, LookupAgreesWithTheDynamicLoader) {
  const void* eh = reinterpret_cast<const void*>(getauxval(AT_SYSINFO_EHDR));
  if (!eh) GTEST_SKIP() << "no vDSO (valgrind hides it)";
  for (const char* name : {"__vdso_getcpu", "__vdso_clock_gettime", "__vdso_time",
                           "__kernel_getcpu", "__kernel_clock_gettime"}) {
    void* theirs = loader_vdso_symbol(name);
    EXPECT_EQ(vdso_lookup(eh, name), theirs) << name;
  }
  EXPECT_EQ(vdso_lookup(eh, "__vdso_no_such_function"), nullptr);
  EXPECT_EQ(vdso_lookup(eh, "__vdso_getcp"), nullptr);  // a prefix is not a match
  EXPECT_EQ(vdso_lookup(nullptr, "__vdso_getcpu"), nullptr);
  static const char not_elf[256] = "not an ELF image";
  EXPECT_EQ(vdso_lookup(not_elf, "__vdso_getcpu"), nullptr);
#if defined(__x86_64__)
  EXPECT_NE(vdso_getcpu(), nullptr);
#endif
  EXPECT_EQ(reinterpret_cast<void*>(vdso_getcpu()), loader_vdso_symbol("__vdso_getcpu")
                                                        ? loader_vdso_symbol("__vdso_getcpu")
                                                        : loader_vdso_symbol("__kernel_getcpu"));
}

// Without rseq the CPU comes from the vDSO: with the getcpu system call
// made to fail (seccomp, in a child), cpu_without_rseq still follows the
// affinity. (Where the vDSO has no getcpu it needs the system call: skip.)
TEST(BaseVdso, CpuWithoutRseqMakesNoSystemCall) {
  if (!vdso_getcpu()) GTEST_SKIP() << "no vDSO getcpu here";
  cpu_set_t orig;
  ASSERT_EQ(sched_getaffinity(0, sizeof orig, &orig), 0);
  int last = -1;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &orig)) last = c;
  ASSERT_GE(last, 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) _exit(2);
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getcpu, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
      _exit(3);
    unsigned cpu = ~0u;
    if (syscall(SYS_getcpu, &cpu, nullptr, nullptr) == 0) _exit(4);  // the filter works
    _exit(cpu_without_rseq() == last ? 0 : 5);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: affinity, 3: seccomp, 4: filter, 5: wrong CPU";
}

// ----------------------------------------------------------- stack_trace

// Three nested frames of this program (the module whose call-frame
// information the walk reads): each is found with its function's start.
NS_NOINLINE unsigned trace_leaf(std::uintptr_t* pcs, std::uintptr_t* fns) {
  unsigned n = stack_trace_capture(pcs, 16, 0, fns);
  __asm__ volatile("" ::: "memory");  // not a tail call
  return n;
}
NS_NOINLINE unsigned trace_mid(std::uintptr_t* pcs, std::uintptr_t* fns) {
  unsigned n = trace_leaf(pcs, fns);
  __asm__ volatile("" ::: "memory");
  return n;
}
NS_NOINLINE unsigned trace_top(std::uintptr_t* pcs, std::uintptr_t* fns) {
  unsigned n = trace_mid(pcs, fns);
  __asm__ volatile("" ::: "memory");
  return n;
}

TEST(BaseStackTrace, FramesOfThisProgram) {
  std::uintptr_t pcs[16] = {}, fns[16] = {};
  unsigned n = trace_top(pcs, fns);
  ASSERT_GE(n, 4u);
  EXPECT_EQ(fns[0], reinterpret_cast<std::uintptr_t>(&trace_leaf));
  EXPECT_EQ(fns[1], reinterpret_cast<std::uintptr_t>(&trace_mid));
  EXPECT_EQ(fns[2], reinterpret_cast<std::uintptr_t>(&trace_top));
  for (unsigned i = 0; i < 3; ++i) EXPECT_GT(pcs[i], fns[i]) << i;
  // skip drops the innermost frames; a short buffer is filled, not overrun.
  std::uintptr_t two[2] = {};
  EXPECT_EQ(stack_trace_capture(two, 2, 1), 2u);
  EXPECT_FALSE(stack_trace_in_library(pcs[0]));  // linked into the program
  char buf[512];
  std::size_t len = stack_trace_describe(pcs[0], buf, sizeof buf);
  EXPECT_EQ(len, std::strlen(buf));
  EXPECT_NE(std::strstr(buf, "base_test+0x"), nullptr) << buf;
}

// A thread's own stack is walked too (its bounds are its mapping's).
TEST(BaseStackTrace, OtherThread) {
  unsigned n = 0;
  std::uintptr_t fn0 = 0;
  std::thread t([&] {
    std::uintptr_t pcs[16], fns[16];
    n = trace_top(pcs, fns);
    fn0 = fns[0];
  });
  t.join();
  EXPECT_GE(n, 3u);
  EXPECT_EQ(fn0, reinterpret_cast<std::uintptr_t>(&trace_leaf));
}

}  // namespace
}  // namespace numaslub
