// Tests for lib/numa's node arenas (layout, onlining, descriptors, ENOSPC,
// reservations grown in steps, refused commits, RLIMIT_AS, fork during an
// extension) and real placement with mbind.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#ifdef NS_HAVE_LIBNUMA
#include <numa.h>
#include <numaif.h>
#else
#include <linux/mempolicy.h>
#endif

#include "lib/base/base.h"
#include "lib/numa/numa.h"

namespace numaslub {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// ---------------------------------------------------------------- Arena

std::unique_ptr<Topology> fake_topology(unsigned n) {
  auto real = std::make_unique<Topology>();
  real->load_sysfs();
  auto t = std::make_unique<Topology>();
  t->make_fake(*real, n);
  return t;
}

Config arena_config(std::uint64_t arena, std::uint64_t section, bool mbind = false) {
  Config c;
  c.arena_size = arena;
  c.section_size = section;
  c.mbind = mbind;
  return c;
}

// An Arena whose reservations are unmapped at the end of the test (the
// library keeps them for the life of the process).
// Only what each node reserved: the rest of its range may hold others'.
struct ScopedArena : Arena {
  ~ScopedArena() {
    if (!base()) return;
    for (unsigned n = 0; n < nr_nodes(); ++n) {
      munmap(reinterpret_cast<void*>(node(n).base), node(n).reserved);
      munmap(mem_map() + node(n).pfn_start, (node(n).reserved >> kPageShift) * sizeof(Page));
    }
  }
};

TEST(NumaArena, InitLayout) {
  for (unsigned n : {1u, 2u, 4u}) {
    SCOPED_TRACE(n);
    auto topo = fake_topology(n);
    for (unsigned i = 0; i < n; ++i) topo->phys_node[i] = 3 * i;  // unused: mbind is off
    ScopedArena a;
    ASSERT_EQ(a.init(*topo, arena_config(256 * kMiB, 16 * kMiB), os_mem_linux()), 0);
    EXPECT_EQ(a.nr_nodes(), n);
    EXPECT_EQ(a.window(), n * 256 * kMiB);
    // One node is reserved in steps: its first section only, at first.
    EXPECT_EQ(a.size(), n == 1 ? 16 * kMiB : n * 256 * kMiB);
    EXPECT_EQ(a.base() % (16 * kMiB), 0u);
    EXPECT_EQ(a.section_pages(), 16 * kMiB / kPageSize);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.mem_map()) % kPageSize, 0u);
    for (unsigned i = 0; i < n; ++i) {
      const NodeRange& r = a.node(i);
      EXPECT_EQ(r.pfn_start, i * (256 * kMiB / kPageSize));
      EXPECT_EQ(r.pages, 256 * kMiB / kPageSize);
      EXPECT_EQ(r.base, a.base() + i * 256 * kMiB);
      EXPECT_EQ(r.phys_node, topo->phys_node[i]);
      EXPECT_EQ(r.online_pages.load(), 0u);
      EXPECT_FALSE(a.is_online(reinterpret_cast<void*>(r.base)));
      EXPECT_TRUE(a.contains(reinterpret_cast<void*>(r.base)));
    }
    EXPECT_FALSE(a.contains(reinterpret_cast<void*>(a.base() - 1)));
    EXPECT_FALSE(a.contains(reinterpret_cast<void*>(a.base() + a.size())));
    EXPECT_FALSE(a.contains(reinterpret_cast<void*>(a.base() + a.window())));
  }
}

TEST(NumaArena, OnlineSectionsInOrder) {
  for (unsigned n : {1u, 2u, 4u}) {
    SCOPED_TRACE(n);
    auto topo = fake_topology(n);
    ScopedArena a;
    ASSERT_EQ(a.init(*topo, arena_config(256 * kMiB, 16 * kMiB), os_mem_linux()), 0);
    const std::size_t sp = a.section_pages(), sbytes = sp * kPageSize;
    for (unsigned k = 0; k < 3; ++k)
      for (unsigned i = n; i-- > 0;) {  // nodes interleaved, highest first
        std::size_t pfn = 0, np = 0;
        ASSERT_EQ(a.online_section(i, &pfn, &np), 0);
        const NodeRange& r = a.node(i);
        EXPECT_EQ(pfn, r.pfn_start + k * sp);
        EXPECT_EQ(np, sp);
        EXPECT_EQ(a.nid_of_pfn(pfn), i);
        auto* p = static_cast<unsigned char*>(a.pfn_to_virt(pfn));
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p), r.base + k * sbytes);
        EXPECT_TRUE(a.is_online(p));
        EXPECT_TRUE(a.is_online(p + sbytes - 1));
        EXPECT_FALSE(a.is_online(p + sbytes));  // the next section is not yet online
        // Pages and their descriptors read as zero and can be written.
        EXPECT_EQ(p[0] | p[sbytes - 1], 0);
        Page* d = a.pfn_to_page(pfn + sp - 1);
        EXPECT_EQ(d->flags | d->order | d->priv[3], 0u);
        p[0] = p[sbytes - 1] = 0x5a;
        d->flags = PG_buddy;
        EXPECT_EQ(r.online_pages.load(), (k + 1) * sp);
        EXPECT_EQ(r.sections_online, k + 1);
      }
    for (unsigned i = 0; i < n; ++i) {
      const NodeRange& r = a.node(i);
      EXPECT_FALSE(a.is_online(reinterpret_cast<void*>(r.base + r.pages * kPageSize - 1)));
    }
  }
}

TEST(NumaArena, DescriptorRoundTrip) {
  auto topo = fake_topology(2);
  ScopedArena a;
  ASSERT_EQ(a.init(*topo, arena_config(256 * kMiB, 16 * kMiB), os_mem_linux()), 0);
  for (unsigned i = 0; i < 2; ++i) {
    std::size_t pfn = 0, np = 0;
    ASSERT_EQ(a.online_section(i, &pfn, &np), 0);
    auto* base = static_cast<char*>(a.pfn_to_virt(pfn));
    for (std::size_t off :
         {std::size_t{0}, std::size_t{4095}, 17 * kPageSize + 5, np * kPageSize - 1}) {
      char* p = base + off;
      std::size_t want_pfn = pfn + off / kPageSize;
      EXPECT_EQ(a.virt_to_pfn(p), want_pfn);
      Page* d = a.virt_to_page(p);
      EXPECT_EQ(d, a.mem_map() + want_pfn);
      EXPECT_EQ(a.page_to_pfn(d), want_pfn);
      EXPECT_EQ(a.pfn_to_page(want_pfn), d);
      EXPECT_EQ(a.page_to_virt(d), base + align_down(off, kPageSize));
      EXPECT_EQ(a.nid_of_pfn(a.virt_to_pfn(p)), i);
    }
    EXPECT_EQ(a.virt_to_page(base + kPageSize), a.virt_to_page(base) + 1);
  }
}

TEST(NumaArena, EnospcWhenNodeIsFull) {
  auto topo = fake_topology(2);
  ScopedArena a;
  ASSERT_EQ(a.init(*topo, arena_config(32 * kMiB, 16 * kMiB), os_mem_linux()), 0);
  std::size_t pfn = 0, np = 0;
  ASSERT_EQ(a.online_section(0, &pfn, &np), 0);
  ASSERT_EQ(a.online_section(0, &pfn, &np), 0);
  pfn = np = 12345;
  EXPECT_EQ(a.online_section(0, &pfn, &np), 28);  // ENOSPC
  EXPECT_EQ(pfn, 12345u);
  EXPECT_EQ(np, 12345u);
  EXPECT_EQ(a.node(0).online_pages.load(), a.node(0).pages);
  EXPECT_EQ(a.node(0).sections_online, 2u);
  // The other node's reservation is its own.
  ASSERT_EQ(a.online_section(1, &pfn, &np), 0);
  EXPECT_EQ(pfn, a.node(1).pfn_start);
  EXPECT_EQ(a.online_section(2, &pfn, &np), 22);  // EINVAL: no such node
}

std::size_t g_grown_to = 0;

// One node is reserved in steps: onlining past the reservation doubles it in
// place; a mapping of someone else's in the way limits it to what still fits,
// then onlining fails with ENOMEM and changes nothing, until the way is free.
TEST(NumaArena, ReservationGrowsInStepsUpToAForeignMapping) {
  auto topo = fake_topology(1);
  ScopedArena a;
  ASSERT_EQ(a.init(*topo, arena_config(256 * kMiB, 16 * kMiB), os_mem_linux()), 0);
  a.set_grow_hook([](std::size_t bytes) { g_grown_to = bytes; });
  ASSERT_EQ(a.size(), 16 * kMiB);
  std::size_t pfn = 0, np = 0;
  const std::size_t want[] = {16, 32, 64, 64, 128, 128, 128, 128};
  for (std::size_t mib : want) {
    ASSERT_EQ(a.online_section(0, &pfn, &np), 0);
    EXPECT_EQ(a.size(), mib * kMiB);
    // Pages and descriptors of the new section are usable.
    auto* last = static_cast<volatile char*>(a.pfn_to_virt(pfn + np - 1));
    last[kPageSize - 1] = 1;
    a.mem_map()[pfn + np - 1].flags = 0;
    EXPECT_TRUE(a.is_online(const_cast<char*>(last)));
  }
  EXPECT_EQ(g_grown_to, 128 * kMiB);
  // Someone maps a page at 160 MiB, inside the heap's range.
  void* where = reinterpret_cast<void*>(a.base() + 160 * kMiB);
  void* foreign =
      mmap(where, kPageSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  ASSERT_EQ(foreign, where);
  ASSERT_EQ(a.online_section(0, &pfn, &np), 0);  // 144 MiB: not doubled, but fits
  EXPECT_EQ(a.size(), 144 * kMiB);
  ASSERT_EQ(a.online_section(0, &pfn, &np), 0);
  EXPECT_EQ(a.size(), 160 * kMiB);
  EXPECT_FALSE(a.contains(foreign));
  std::size_t online = a.node(0).online_pages.load();
  EXPECT_EQ(a.online_section(0, &pfn, &np), 12);  // ENOMEM
  EXPECT_EQ(a.size(), 160 * kMiB);
  EXPECT_EQ(a.node(0).online_pages.load(), online);
  EXPECT_EQ(g_grown_to, 160 * kMiB);
  // The way is free again: the heap grows on, up to the end of its range at
  // most (others' mappings may since have taken the top of the range).
  munmap(foreign, kPageSize);
  ASSERT_EQ(a.online_section(0, &pfn, &np), 0);
  EXPECT_GT(a.size(), 160 * kMiB);
  int e = 0;
  while ((e = a.online_section(0, &pfn, &np)) == 0) EXPECT_LE(a.size(), 256 * kMiB);
  EXPECT_TRUE(e == 28 || e == 12) << e;  // ENOSPC at the end, ENOMEM before it
  EXPECT_LE(a.size(), a.window());
}

// The heap's address is random (heap_hint): two arenas, as two processes
// would, land apart, and each on a section boundary.
TEST(NumaArena, HeapAddressIsRandom) {
  auto topo = fake_topology(1);
  ScopedArena a, b;
  ASSERT_EQ(a.init(*topo, arena_config(256 * kMiB, 16 * kMiB), os_mem_linux()), 0);
  ASSERT_EQ(b.init(*topo, arena_config(256 * kMiB, 16 * kMiB), os_mem_linux()), 0);
  EXPECT_NE(a.base(), b.base());
  EXPECT_EQ(a.base() % (16 * kMiB), 0u);
  EXPECT_EQ(b.base() % (16 * kMiB), 0u);
}

// Several nodes are reserved in steps too, each in its own range: the rest
// of a range is free address space until its node grows into it.
TEST(NumaArena, EveryNodeGrowsInItsOwnRange) {
  auto topo = fake_topology(2);
  ScopedArena a;
  ASSERT_EQ(a.init(*topo, arena_config(256 * kMiB, 16 * kMiB), os_mem_linux()), 0);
  EXPECT_EQ(a.size(), 512 * kMiB);  // the fast paths' bound: the whole window
  if (!a.in_steps()) GTEST_SKIP() << "the address hint was not taken (a sanitizer's shadow?)";
  for (unsigned nid : {0u, 1u}) {
    EXPECT_EQ(a.node(nid).reserved, 16 * kMiB);
    void* gap = reinterpret_cast<void*>(a.node(nid).base + 128 * kMiB);
    void* m =
        mmap(gap, kPageSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    EXPECT_EQ(m, gap) << "node " << nid << "'s range is reserved whole";
    if (m != MAP_FAILED) munmap(m, kPageSize);
  }
  std::size_t pfn = 0, np = 0;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(a.online_section(1, &pfn, &np), 0);
  EXPECT_EQ(a.node(1).reserved, 64 * kMiB);
  EXPECT_EQ(a.node(0).reserved, 16 * kMiB);
  auto* last = static_cast<volatile char*>(a.pfn_to_virt(pfn + np - 1));
  last[kPageSize - 1] = 1;
  a.mem_map()[pfn + np - 1].flags = 0;
}

bool range_mapped(std::uintptr_t a, std::size_t len) {
  return os_mem_linux().probe_mapped(reinterpret_cast<void*>(a), len);
}

// A fork can catch a thread extending a node's reservation: the child has
// the extension in its address space, or not, but `reserved` does not say
// so. fork_child_repair settles each state the thread can have left.
TEST(NumaArena, ForkChildSettlesAnExtensionInFlight) {
  auto topo = fake_topology(1);
  ScopedArena a;
  ASSERT_EQ(a.init(*topo, arena_config(256 * kMiB, 16 * kMiB), os_mem_linux()), 0);
  a.set_grow_hook([](std::size_t bytes) { g_grown_to = bytes; });
  NodeRange& n = a.node(0);
  const OsMem& os = os_mem_linux();
  auto map_at = [&](std::size_t from) {
    return reinterpret_cast<char*>(a.mem_map() + (from >> kPageShift));
  };
  auto map_len = [](std::size_t from, std::size_t to) {
    return ((to - from) >> kPageShift) * sizeof(Page);
  };
  // Died before its first mmap: nothing to adopt.
  n.extending_to = 32 * kMiB;
  a.fork_child_repair(0);
  EXPECT_EQ(n.reserved, 16 * kMiB);
  EXPECT_EQ(n.extending_to, 0u);
  EXPECT_FALSE(range_mapped(n.base + 16 * kMiB, 16 * kMiB));
  // Died between the heap's mmap and the descriptors': the heap part goes.
  ASSERT_EQ(os.extend(reinterpret_cast<void*>(n.base + 16 * kMiB), 16 * kMiB), 0);
  n.extending_to = 32 * kMiB;
  a.fork_child_repair(0);
  EXPECT_EQ(n.reserved, 16 * kMiB);
  EXPECT_FALSE(range_mapped(n.base + 16 * kMiB, 16 * kMiB));
  // Died after both: adopted, and size() and the fast paths follow.
  ASSERT_EQ(os.extend(reinterpret_cast<void*>(n.base + 16 * kMiB), 16 * kMiB), 0);
  ASSERT_EQ(os.extend(map_at(16 * kMiB), map_len(16 * kMiB, 32 * kMiB)), 0);
  n.extending_to = 32 * kMiB;
  a.fork_child_repair(0);
  EXPECT_EQ(n.reserved, 32 * kMiB);
  EXPECT_EQ(a.size(), 32 * kMiB);
  EXPECT_EQ(g_grown_to, 32 * kMiB);
  // And the node grows on from there.
  std::size_t pfn = 0, np = 0;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(a.online_section(0, &pfn, &np), 0) << i;
  EXPECT_EQ(n.reserved, 64 * kMiB);
}

// Where the kernel, not the hint, placed the window, its next mappings
// would land in the nodes' gaps, inside the fast paths' bound (an ASan build
// found one of our own direct mappings there): several nodes then reserve
// their whole ranges. One node still grows in steps (its bound is exact).
TEST(NumaArena, SeveralNodesStayWholeWhereTheHintMissed) {
  static OsMem no_hints = os_mem_linux();
  no_hints.reserve = [](std::size_t len, std::size_t align, void** out) {
    *out = nullptr;
    return os_mem_linux().reserve(len, align, out);
  };
  auto two = fake_topology(2);
  ScopedArena a;
  ASSERT_EQ(a.init(*two, arena_config(256 * kMiB, 16 * kMiB), no_hints), 0);
  EXPECT_FALSE(a.in_steps());
  EXPECT_EQ(a.node(1).reserved, 256 * kMiB);
  EXPECT_TRUE(range_mapped(a.node(1).base, 256 * kMiB));
  auto one = fake_topology(1);
  ScopedArena b;
  ASSERT_EQ(b.init(*one, arena_config(256 * kMiB, 16 * kMiB), no_hints), 0);
  EXPECT_TRUE(b.in_steps());
  EXPECT_EQ(b.size(), 16 * kMiB);
}

TEST(NumaArena, SizesAreRounded) {
  auto topo = fake_topology(1);
  struct {
    std::size_t arena, section, want_section, want_size;
  } cases[] = {
      {64 * kMiB, kMiB, 4 * kMiB, 64 * kMiB},          // sections are >= one 4 MiB block
      {300 * kMiB, 20 * kMiB, 16 * kMiB, 256 * kMiB},  // both rounded down to powers of two
      {kMiB, 16 * kMiB, 16 * kMiB, 16 * kMiB},         // a node holds at least one section
  };
  for (const auto& c : cases) {
    ScopedArena a;
    ASSERT_EQ(a.init(*topo, arena_config(c.arena, c.section), os_mem_linux()), 0);
    EXPECT_EQ(a.section_pages() * kPageSize, c.want_section) << c.arena << "/" << c.section;
    EXPECT_EQ(a.window(), c.want_size) << c.arena << "/" << c.section;
    EXPECT_EQ(a.size(), c.want_section) << "one node starts with one section";
  }
}

// An OsMem whose commits can be refused; reserve, bind and release are real.
enum class Refuse { kNone, kAll, kLarge };
Refuse g_refuse = Refuse::kNone;
int g_commits = 0, g_decommits = 0;
void* g_decommit_addr = nullptr;
std::size_t g_decommit_len = 0;

int refusing_commit(void* addr, std::size_t len) {
  ++g_commits;
  // kLarge refuses the heap part (16 MiB) after the descriptors (256 KiB).
  if (g_refuse == Refuse::kAll || (g_refuse == Refuse::kLarge && len >= kMiB)) return 12;
  return os_mem_linux().commit(addr, len);
}
int counting_decommit(void* addr, std::size_t len) {
  ++g_decommits;
  g_decommit_addr = addr;
  g_decommit_len = len;
  return os_mem_linux().decommit(addr, len);
}
const OsMem& refusing_os() {
  static const OsMem os = {os_mem_linux().reserve, refusing_commit, counting_decommit,
                           os_mem_linux().bind, os_mem_linux().release};
  return os;
}

TEST(NumaArena, RefusedCommitLeavesNodeUnchanged) {
  auto topo = fake_topology(2);
  ScopedArena a;
  ASSERT_EQ(a.init(*topo, arena_config(64 * kMiB, 16 * kMiB), refusing_os()), 0);
  g_commits = g_decommits = 0;
  g_refuse = Refuse::kAll;
  std::size_t pfn = 777, np = 777;
  EXPECT_EQ(a.online_section(0, &pfn, &np), 12);
  EXPECT_EQ(pfn, 777u);
  EXPECT_EQ(np, 777u);
  EXPECT_EQ(a.node(0).online_pages.load(), 0u);
  EXPECT_EQ(a.node(0).sections_online, 0u);
  EXPECT_EQ(a.node(0).online_failures, 1u);
  EXPECT_EQ(a.node(0).last_error, 12);
  EXPECT_FALSE(a.is_online(reinterpret_cast<void*>(a.node(0).base)));
  EXPECT_GE(g_commits, 1);

  // Descriptors committed, heap refused: the descriptors are undone.
  g_refuse = Refuse::kLarge;
  g_decommits = 0;
  EXPECT_EQ(a.online_section(0, &pfn, &np), 12);
  EXPECT_EQ(a.node(0).online_pages.load(), 0u);
  EXPECT_EQ(a.node(0).online_failures, 2u);
  EXPECT_EQ(g_decommits, 1);
  EXPECT_EQ(g_decommit_addr, a.pfn_to_page(a.node(0).pfn_start));
  EXPECT_EQ(g_decommit_len, a.section_pages() * sizeof(Page));

  // Once the OS agrees, the same (first) section comes online: nothing lost.
  g_refuse = Refuse::kNone;
  ASSERT_EQ(a.online_section(0, &pfn, &np), 0);
  EXPECT_EQ(pfn, a.node(0).pfn_start);
  EXPECT_EQ(a.node(0).online_pages.load(), a.section_pages());
  EXPECT_EQ(a.node(1).online_failures, 0u);
  static_cast<char*>(a.pfn_to_virt(pfn))[0] = 1;
}

TEST(NumaArena, NodeSizeWithoutLimit) {
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_AS, &lim), 0);
  if (lim.rlim_cur != RLIM_INFINITY) GTEST_SKIP() << "RLIMIT_AS is set for this process";
  EXPECT_EQ(arena_node_size(Config{}, 1), 64ULL << 30);
  EXPECT_EQ(arena_node_size(Config{}, 4), 64ULL << 30);
  EXPECT_EQ(arena_node_size(arena_config(300 * kMiB, 16 * kMiB), 1), 256 * kMiB);
  EXPECT_EQ(arena_node_size(arena_config(kMiB, 16 * kMiB), 1), 16 * kMiB);
}

std::uint64_t vm_size_bytes() {
  char buf[4096];
  std::uint64_t kb = 0;
  if (read_text_file("/proc/self/status", buf, sizeof buf) <= 0 ||
      !find_kb_field(buf, "VmSize", &kb))
    return 0;
  return kb << 10;
}

// Runs body in a forked child and returns its exit status (0: all checks held).
template <typename F>
int in_child(F body) {
  pid_t pid = fork();
  if (pid == 0) _exit(body());
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int set_as_limit(std::uint64_t bytes) {
  rlimit lim{};
  if (getrlimit(RLIMIT_AS, &lim) != 0) return -1;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < bytes) bytes = lim.rlim_max;
  lim.rlim_cur = bytes;
  return setrlimit(RLIMIT_AS, &lim);
}

constexpr std::uint64_t kAsLimit = 2000000000;

TEST(NumaArena, NodeSizeShrinksUnderRlimitAs) {
  // Sanitizer shadow memory alone exceeds the limit this test sets.
  if (vm_size_bytes() >= kAsLimit / 2)
    GTEST_SKIP() << "VmSize is already " << (vm_size_bytes() >> 20) << " MiB (sanitizers?)";
  int rc = in_child([] {
    const std::uint64_t limit = kAsLimit;
    std::uint64_t vm = vm_size_bytes();
    if (vm == 0 || vm >= limit / 2) return 1;
    if (set_as_limit(limit) != 0) return 2;
    Config cfg;  // default 64 GiB per node, 16 MiB sections
    std::size_t one = arena_node_size(cfg, 1);
    // One node under a limit: a multiple of the section, not a power of two.
    std::size_t section = arena_section_size(cfg, 1);
    if (!is_pow2(section) || section < 4 * kMiB || section > cfg.section_size) return 3;
    if (one < section || one % section != 0) return 4;
    if (one > (limit - vm) / 4 * 3) return 5;  // at most 3/4 of what is left
    if (one < (limit - vm) / 2) return 14;     // but most of it
    if (one >= cfg.arena_size) return 6;       // smaller than the default
    std::size_t two = arena_node_size(cfg, 2);
    if (two == 0 || two > one / 2 || !is_pow2(two)) return 7;  // several nodes: powers of two
    Topology topo;
    topo.nr_nodes = 1;
    Arena a;
    if (a.init(topo, cfg, os_mem_linux()) != 0) return 8;
    if (a.size() > one) return 9;
    std::size_t pfn = 0, np = 0;
    if (a.online_section(0, &pfn, &np) != 0) return 10;
    auto* p = static_cast<volatile char*>(a.pfn_to_virt(pfn));
    p[0] = 1;
    p[np * kPageSize - 1] = 2;
    if (p[0] != 1 || p[np * kPageSize - 1] != 2) return 11;
    // A second, two-node arena still fits in what is left.
    Topology topo2;
    topo2.nr_nodes = 2;
    Arena b;
    if (b.init(topo2, cfg, os_mem_linux()) != 0) return 12;
    if (b.online_section(1, &pfn, &np) != 0) return 13;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child check " << rc << " failed (see the numbered returns)";
}

TEST(NumaArena, NodeSizeAtRlimitExtremes) {
  // Too little address space left for one section: init fails with ENOMEM.
  int rc = in_child([] {
    std::uint64_t vm = vm_size_bytes();
    if (vm == 0 || set_as_limit(vm + 8 * kMiB) != 0) return 1;
    if (arena_node_size(Config{}, 1) != 0) return 2;
    Topology topo;
    topo.nr_nodes = 1;
    Arena a;
    return a.init(topo, Config{}, os_mem_linux()) == 12 ? 0 : 3;
  });
  EXPECT_EQ(rc, 0) << "small limit: child check " << rc << " failed";

  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_AS, &lim), 0);
  if (lim.rlim_max != RLIM_INFINITY) GTEST_SKIP() << "RLIMIT_AS has a hard limit";
  // A finite limit leaving a per-node budget of 2^58 + 1 MiB, where
  // budget * 64 would wrap around 64 bits: the default size still fits.
  rc = in_child([] {
    std::uint64_t vm = vm_size_bytes();
    const std::uint64_t section = 16 * kMiB;
    if (vm == 0 || set_as_limit((1ULL << 59) + 2 * (2 * section + kMiB) + vm) != 0) return 1;
    return arena_node_size(Config{}, 1) == Config{}.arena_size ? 0 : 2;
  });
  EXPECT_EQ(rc, 0) << "huge limit: child check " << rc << " failed";
}

// ---------------------------------------------------------------- placement

// get_mempolicy as 0 or -errno.
long mempolicy(int* mode, unsigned long* mask, unsigned long maxnode, void* addr,
               unsigned long flags) {
#ifdef NS_HAVE_LIBNUMA
  return ::get_mempolicy(mode, mask, maxnode, addr, static_cast<unsigned>(flags)) == 0 ? 0 : -errno;
#else
  return sys::get_mempolicy(mode, mask, maxnode, addr, flags);
#endif
}

// Why get_mempolicy / mbind cannot be tested here, or null.
const char* mempolicy_unavailable() {
  int mode = -1;
  if (mempolicy(&mode, nullptr, 0, nullptr, 0) == -ENOSYS) return "get_mempolicy: ENOSYS";
  void* probe =
      mmap(nullptr, kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int e = probe == MAP_FAILED ? ENOMEM : os_mem_linux().bind(probe, kPageSize, 0);
  if (probe != MAP_FAILED) munmap(probe, kPageSize);
  return e == ENOSYS || e == EPERM ? "mbind: ENOSYS or EPERM" : nullptr;
}

constexpr unsigned kMaskBits = 1024, kWordBits = 8 * sizeof(unsigned long);

TEST(NumaPlacement, MbindPrefersTheNode) {
  if (const char* why = mempolicy_unavailable()) GTEST_SKIP() << why;
  auto topo = std::make_unique<Topology>();
  topo->load_sysfs();
  ScopedArena bound, unbound;
  ASSERT_EQ(bound.init(*topo, arena_config(64 * kMiB, 16 * kMiB, true), os_mem_linux()), 0);
  ASSERT_EQ(unbound.init(*topo, arena_config(64 * kMiB, 16 * kMiB, false), os_mem_linux()), 0);
  for (unsigned nid = 0; nid < bound.nr_nodes(); ++nid) {
    SCOPED_TRACE(nid);
    std::size_t pfn = 0, np = 0;
    ASSERT_EQ(bound.online_section(nid, &pfn, &np), 0);
    auto* p = static_cast<char*>(bound.pfn_to_virt(pfn)) + 5 * kPageSize;
    std::memset(p, 1, kPageSize);  // fault the page in
    const unsigned phys = topo->phys_node[nid];
    int node = -1;
    ASSERT_EQ(mempolicy(&node, nullptr, 0, p, MPOL_F_NODE | MPOL_F_ADDR), 0);
    EXPECT_EQ(node, static_cast<int>(phys));
    int mode = -1;
    unsigned long mask[kMaskBits / kWordBits] = {};
    ASSERT_EQ(mempolicy(&mode, mask, kMaskBits, p, MPOL_F_ADDR), 0);
    EXPECT_EQ(mode, MPOL_PREFERRED);
    unsigned bits = 0;
    for (unsigned long w : mask) bits += static_cast<unsigned>(__builtin_popcountl(w));
    EXPECT_EQ(bits, 1u);
    EXPECT_TRUE(mask[phys / kWordBits] >> (phys % kWordBits) & 1);

    // With mbind=0 the section keeps the default policy.
    ASSERT_EQ(unbound.online_section(nid, &pfn, &np), 0);
    ASSERT_EQ(mempolicy(&mode, mask, kMaskBits, unbound.pfn_to_virt(pfn), MPOL_F_ADDR), 0);
    EXPECT_EQ(mode, MPOL_DEFAULT);
  }
}

}  // namespace
}  // namespace numaslub
