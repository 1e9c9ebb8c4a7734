// Tests for lib/slub's always-on checks (kmalloc.h, obj_index.h): the
// object-start test, interior and double frees near and far, freelist
// corruption, foreign pointers and the foreign-free hook.
//
// The per-CPU mode and the node layout are chosen once per process from
// NUMASLUB_CONF; ctest runs this binary in four configurations (see
// tests/CMakeLists.txt): as is (rseq), "percpu=thread", "fake_numa=2" and
// both.
#include <sys/wait.h>

#include "lib/slub/freeptr.h"
#include "lib/slub/reentry.h"
#include "lib/slub/slab.h"
#include "lib/slub/slub_internal.h"
#include "tests/slub_test_util.h"

namespace numaslub {
namespace {

using namespace slubtest;

// ------------------------------------------------------------ hardening

// obj_index.h's multiply-and-compare agrees with division at every offset
// of every class's slab, the unused tail and the pages of no slab included.
TEST(SlubHardening, ObjStartAgreesWithDivision) {
  for (unsigned c = 0; c < kNrClasses; ++c) {
    std::uint32_t d = kClassSize[c];
    std::uint64_t bytes = std::uint64_t{kPageSize} << slab_order_for(d);
    const ObjIndex& e = obj_index_entry(kObjIndex, class_slot_offset(c));
    ASSERT_EQ(e.objects, bytes / d) << d;
    ASSERT_EQ(e.mask, bytes - 1) << d;
    for (std::uint64_t base : {std::uint64_t{0}, bytes, 1000 * bytes, std::uint64_t{1} << 45}) {
      for (std::uint64_t off = 0; off < bytes; ++off) {
        bool start = off % d == 0 && off / d < e.objects;
        ASSERT_EQ(obj_start(e, base + off), start) << d << " at " << off;
        // The fast path's form (assembly on x86-64).
        ASSERT_EQ(obj_start_at<0>(&kObjIndex, kObjIndex, class_slot_offset(c), base + off), start)
            << d << " at " << off;
      }
    }
  }
  for (std::size_t slot = 0; slot < class_slot_offset(0); slot += 16) {
    const ObjIndex& e = obj_index_entry(kObjIndex, slot);
    for (std::uint64_t off = 0; off < (kPageSize << kMaxSlabOrder); off += 8) {
      ASSERT_FALSE(obj_start(e, off)) << off;
      ASSERT_FALSE(obj_start_at<0>(&kObjIndex, kObjIndex, slot, off)) << off;
    }
  }
}

// A free of anything but the start of a live object aborts on the fast
// path's check, naming the object it points into and the cache.
TEST(SlubHardeningDeathTest, InteriorFreeNamesTheObject) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (std::size_t n : {std::size_t{16}, 48ul, 64ul, 160ul, 1000ul, 28672ul}) {
    char* p = static_cast<char*>(kmalloc(n));
    ASSERT_NE(p, nullptr);
    for (std::size_t delta : {std::size_t{8}, std::size_t{16}, n - 8}) {
      if (delta == 0 || delta >= kClassSize[size_to_class(n)]) continue;
      EXPECT_DEATH(kfree(p + delta), "invalid pointer .* bytes into object") << n << "+" << delta;
    }
    kfree(p);
  }
}

// A double free after any number of other frees (the object is no longer
// on top of the sheaf): the free tag catches it wherever the object is.
TEST(SlubHardeningDeathTest, FarDoubleFree) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (std::size_t others : {1ul, 8ul, 100ul, 5000ul}) {
    EXPECT_DEATH(
        {
          void* p = kmalloc(64);
          std::vector<void*> v;
          for (std::size_t i = 0; i < others; ++i) v.push_back(kmalloc(64));
          kfree(p);
          for (void* q : v) kfree(q);
          kfree(p);
        },
        "double free")
        << others;
  }
}

// The tag is cleared when an object is handed out again: freeing,
// reallocating and freeing once more is not a double free, on every path
// (fast, after a flush to the slab, calloc, realloc in place, another node).
TEST(SlubHardening, ReuseAfterFreeIsNotADoubleFree) {
  for (int round = 0; round < 3; ++round) {
    std::vector<void*> v;
    for (int i = 0; i < 3000; ++i) v.push_back(kmalloc(64));
    for (void* p : v) kfree(p);
    if (round == 1) kmem_shrink_all();
    v.clear();
    for (int i = 0; i < 3000; ++i) v.push_back(i % 2 ? kcalloc(1, 64) : kmalloc(64));
    for (void*& p : v) p = krealloc(p, 60);
    for (int i = 0; i < 100; ++i) v.push_back(kmalloc_node(64, 0));
    for (void* p : v) kfree(p);
  }
}

TEST(SlubHardeningDeathTest, DoubleFreeOfLastFreed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (std::size_t n : {std::size_t{16}, 64ul, 1000ul, 32768ul}) {
    EXPECT_DEATH(
        {
          pin_here();
          void* p = kmalloc(n);
          kfree(p);
          kfree(p);
        },
        "double free")
        << n;
  }
}

TEST(SlubHardeningDeathTest, DoubleFreeOfLastFreedWhateverTheSheafFill) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The first free may leave the sheaf full, half full or just replaced by
  // an empty one: the check must hold in each state.
  for (std::size_t count : {1ul, 2ul, 7ul, 8ul, 9ul, 63ul, 64ul, 65ul, 200ul}) {
    for (std::size_t n : {std::size_t{64}, 20000ul}) {
      EXPECT_DEATH(
          {
            pin_here();
            std::vector<void*> v;
            for (std::size_t i = 0; i < count; ++i) v.push_back(kmalloc(n));
            for (void* p : v) kfree(p);
            kfree(v.back());
          },
          "double free")
          << count << " objects of " << n;
    }
  }
}

TEST(SlubHardeningDeathTest, DoubleFreeAfterFlushIsCaughtByFreelist) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The first free reaches the slab's freelist (shrink flushes the
  // sheaves); the second sits in a sheaf until the next flush, which finds
  // the object at the head of the freelist.
  EXPECT_DEATH(
      {
        pin_here();
        // p's slab must keep other live objects, or the shrink would give
        // the slab back and the second free would be an invalid pointer.
        std::vector<void*> keep;
        for (int i = 0; i < 256; ++i) keep.push_back(kmalloc(64));
        void* p = keep[128];
        keep.erase(keep.begin() + 128);
        kfree(p);
        kmem_shrink_all();
        kfree(p);
        kmem_shrink_all();
        for (void* q : keep) kfree(q);
      },
      "double free");
}

// freeptr.h's invariant, over every change it names: one confined to the
// stored link's low 3 bytes (an overflow of up to 3 bytes from the object
// before it; the 4th byte is checked offline, 2^32 changes), or to any 2
// adjacent bytes, moves the decoded pointer by kFreePtrMinMove or more,
// more than 4 slabs of the largest order.
TEST(SlubHardening, ChangesToAStoredLinkMoveItFar) {
  static_assert(kFreePtrMinMove >= 4 * (kPageSize << kMaxSlabOrder));
  auto far = [](std::uint64_t d) {
    std::uint64_t move = d * kFreePtrMulInv;
    return move >= kFreePtrMinMove && 0 - move >= kFreePtrMinMove;
  };
  for (std::uint64_t d = 1; d < (std::uint64_t{1} << 24); ++d) ASSERT_TRUE(far(d)) << d;
  for (unsigned byte = 1; byte < 7; ++byte)
    for (std::uint64_t d = 1; d < (std::uint64_t{1} << 16); ++d)
      ASSERT_TRUE(far(d << (8 * byte))) << d << " at byte " << byte;
}

// Whatever value lands in any one byte of a free object's link, it decodes
// outside the object's slab, so next_free's check catches it. (The old
// encoding, an xor, kept a changed low byte inside the slab: a one-byte
// overflow made the link point at another object of the slab 1 time in 64.)
TEST(SlubHardening, AnyByteWrittenIntoALinkDecodesOutsideTheSlab) {
  for (std::size_t n : {std::size_t{16}, 64ul, 96ul, 1024ul, 8192ul, 65536ul}) {
    KmemCache& c = g_kmem.caches[size_to_class(n)];
    char* p = static_cast<char*>(kmalloc(n));
    ASSERT_NE(p, nullptr);
    Page* pg = g_kmem.pa->virt_to_page(p);
    auto* s = reinterpret_cast<Slab*>(pg - pg->head_off);
    char* base = static_cast<char*>(c.slab_base(s));
    const std::size_t span = kPageSize << c.order;
    auto** where = reinterpret_cast<void**>(p);
    const std::uint64_t key = c.secrets[s->secret_gen];  // as KmemCache::encode
    for (std::size_t k = 0; k < c.objects; k += 7) {
      void* next = base + k * c.size;
      if (next == p) continue;
      const std::uintptr_t stored =
          reinterpret_cast<std::uintptr_t>(freeptr_encode(next, key, where));
      ASSERT_EQ(freeptr_decode(reinterpret_cast<void*>(stored), key, where), next);
      for (unsigned byte = 0; byte < 8; ++byte) {
        for (std::uintptr_t v = 0; v < 256; ++v) {
          std::uintptr_t mask = std::uintptr_t{0xff} << (8 * byte);
          std::uintptr_t bad = (stored & ~mask) | (v << (8 * byte));
          if (bad == stored) continue;
          auto* got = static_cast<char*>(freeptr_decode(reinterpret_cast<void*>(bad), key, where));
          ASSERT_FALSE(got >= base && got < base + span)
              << c.name << ": byte " << byte << " = " << v << " decodes to object "
              << (got - base) / c.size;
        }
      }
    }
    kfree(p);
  }
}

// tests/hostile/misuse.c's overflow_1, made deterministic: the low byte of
// a free object's link is flipped so that, under the old xor encoding, it
// pointed at the next 64-byte object of the slab, which the freelist walk
// then handed out (an object that may be live). The walk must abort.
TEST(SlubHardeningDeathTest, OneByteOverflowIntoAFreeLinkAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto slab_of = [](const void* p) {
    Page* pg = g_kmem.pa->virt_to_page(const_cast<void*>(p));
    return pg - pg->head_off;
  };
  for (unsigned flip : {0x40u, 0x80u, 0xc0u}) {
    EXPECT_DEATH(
        {
          pin_here();
          std::vector<void*> keep;
          for (int i = 0; i < 256; ++i) keep.push_back(kmalloc(64));
          // x and y of one slab, x's link pointing at y (a null link
          // would decode far away under either encoding).
          auto* x = static_cast<unsigned char*>(keep[128]);
          std::size_t j = 0;
          while (j < keep.size() && (j == 128 || slab_of(keep[j]) != slab_of(x))) ++j;
          if (j == keep.size()) _exit(2);
          void* y = keep[j];
          keep[j] = keep[128] = nullptr;
          kfree(y);
          kfree(x);
          kmem_shrink_all();  // on their slab's freelist, which the others keep
          x[0] ^= static_cast<unsigned char>(flip);
          for (int i = 0; i < 8192; ++i) keep.push_back(kmalloc(64));
          for (void* p : keep)
            if (p) kfree(p);
        },
        "freelist corrupted.*kmalloc-64|kmalloc-64.*freelist corrupted")
        << flip;
  }
}

// A block on the deferred-free stack (freed by a signal handler that
// interrupted the allocator) holds the stack's link; a write into it is
// found when the stack is drained. The old plain link, its low byte
// changed, pointed at a live neighbour, which the drain freed silently.
TEST(SlubHardeningDeathTest, WriteIntoADeferredFreeAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        pin_here();
        std::vector<char*> v;
        for (int i = 0; i < 256; ++i) v.push_back(static_cast<char*>(kmalloc(64)));
        // a, and a's neighbour a ^ 0x40, both ours and live.
        char* a = nullptr;
        for (char* p : v)
          for (char* q : v)
            if (q == reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(p) ^ 0x40)) a = p;
        if (!a) {
          fprintf(stderr, "no neighbours\n");
          _exit(2);
        }
        char* b = static_cast<char*>(kmalloc(64));
        std::erase(v, a);
        reentry_defer_free(a);
        reentry_defer_free(b);  // b's link: a
        b[0] ^= 0x40;
        reentry_drain_frees();
        for (char* p : v) kfree(p);  // the neighbour among them: a double free if it went
      },
      "BUG deferred free: block .* links to");
}

TEST(SlubHardeningDeathTest, FreeOfForeignPointer) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  kfree(kmalloc(8));
  void* m = mmap(nullptr, 64 * KiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  EXPECT_DEATH(kfree(m), "did not allocate");
  alignas(16) char on_stack[32] = {};
  EXPECT_DEATH(kfree(on_stack), "did not allocate");
  void* big = kmalloc(100 * KiB);
  ASSERT_NE(big, nullptr);
  EXPECT_DEATH(kfree(static_cast<char*>(big) + 4096), "invalid pointer");
  kfree(big);
  munmap(m, 64 * KiB);
}

std::atomic<void*> g_foreign_seen{nullptr};
void record_foreign(void* p) {
  g_foreign_seen = p;
}

TEST(SlubOwnership, ForeignFreeHook) {
  void* m = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  set_foreign_free(record_foreign);
  kfree(m);
  EXPECT_EQ(g_foreign_seen.load(), m);
  // Our own pointers never reach the hook.
  g_foreign_seen = nullptr;
  for (std::size_t n : {std::size_t{64}, 100 * KiB, 5 * MiB}) kfree(kmalloc(n));
  EXPECT_EQ(g_foreign_seen.load(), nullptr);
  set_foreign_free(nullptr);
  munmap(m, 4096);
}

// A fork child (its slub_fork_child, which the shim's atfork handler calls)
// draws a new freelist secret per cache for the slabs it cuts; the slabs
// it inherits keep theirs, so the parent's objects still come and go, and
// the parent's secrets are untouched.
TEST(SlubHardening, ForkChildRenewsFreelistSecretsForNewSlabs) {
  constexpr std::size_t kSize = 1400;  // kmalloc-1536, which no other test here fills
  KmemCache& c = g_kmem.caches[size_to_class(kSize)];
  std::vector<void*> old;
  for (int i = 0; i < 500; ++i) old.push_back(kmalloc(kSize));
  for (void* p : old) ASSERT_NE(p, nullptr);
  const std::uint32_t gen = c.secret_gen;
  const std::uint64_t secret = c.secrets[gen];
  auto slab_of = [](const void* p) {
    Page* pg = g_kmem.pa->virt_to_page(const_cast<void*>(p));
    return reinterpret_cast<Slab*>(pg - pg->head_off);
  };
  pid_t pid = fork();
  if (pid == 0) {
    slub_fork_child(t_ctx.tid);
    if (c.secret_gen != gen + 1) _exit(1);
    if (c.secrets[c.secret_gen] == secret || c.secrets[gen] != secret) _exit(2);
    const KmemCache& c0 = g_kmem.caches[0];
    if (c0.secrets[c0.secret_gen] == c.secrets[c.secret_gen]) _exit(3);  // one per cache
    std::vector<void*> fresh;
    for (int i = 0; i < 3000; ++i) fresh.push_back(kmalloc(kSize));
    bool new_slab = false, old_slab = false;
    for (void* p : fresh) {
      if (!p) _exit(4);
      (slab_of(p)->secret_gen == gen + 1 ? new_slab : old_slab) = true;
    }
    for (void* p : old) old_slab |= slab_of(p)->secret_gen == gen;
    if (!new_slab || !old_slab) _exit(5);
    // Both generations' freelists are walked (every next pointer checked):
    // freed back to their slabs, shrunk, cut and filled again.
    for (void* p : old) kfree(p);
    for (void* p : fresh) kfree(p);
    kmem_shrink_all();
    for (int round = 0; round < 3; ++round) {
      std::vector<void*> v;
      for (int i = 0; i < 3500; ++i) v.push_back(kmalloc(kSize));
      for (void* p : v) kfree(p);
    }
    _exit(0);
  }
  ASSERT_GT(pid, 0);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st)) << "child killed by signal " << WTERMSIG(st);
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_EQ(c.secret_gen, gen);
  EXPECT_EQ(c.secrets[gen], secret);
  for (void* p : old) kfree(p);
}

}  // namespace
}  // namespace numaslub
