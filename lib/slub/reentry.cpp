// Nested allocator calls (see reentry.h): mappings of their own, recorded in
// a lock-free open-addressing table, and a lock-free stack of deferred frees.
//
// Table invariants:
// - A slot's addr goes 0 -> block -> kTombstone -> block' ...; it is claimed
//   with a CAS from 0 or kTombstone, so two inserts never share a slot.
// - len is stored (release) after addr is claimed and before the block is
//   returned; a lookup can only be made for a block already returned, so it
//   reads the len of its own insert (acquire).
// - A lookup probes from the hash until it finds the address or an empty
//   (0) slot, or has visited every slot: tombstones never end a probe.
// Deferred-free stack: pushes are CAS on the head; the drainer takes the
// whole stack with one exchange, so there is no ABA (no pop of one node).
#include "lib/slub/reentry.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdint>

#include "lib/base/base.h"
#include "lib/numa/numa.h"
#include "lib/slub/debug.h"
#include "lib/slub/freeptr.h"
#include "lib/slub/kmalloc.h"

namespace numaslub {
namespace {

constexpr std::size_t kSlots = 4096;  // power of two
constexpr std::uintptr_t kTombstone = 1;

struct Slot {
  std::atomic<std::uintptr_t> addr{0};
  std::atomic<std::size_t> len{0};
};
constinit Slot g_slots[kSlots];
constinit std::atomic<unsigned long> g_live{0};
constinit std::atomic<unsigned long> g_blocks{0};
constinit std::atomic<unsigned long> g_deferred{0};
constinit std::atomic<void*> g_deferred_head{nullptr};

std::size_t hash(std::uintptr_t a) {
  return static_cast<std::size_t>((a >> kPageShift) * 0x9E3779B97F4A7C15ULL >> 40) & (kSlots - 1);
}

Slot* find(std::uintptr_t a) {
  if (g_live.load(std::memory_order_acquire) == 0) return nullptr;
  std::size_t i = hash(a);
  for (std::size_t n = 0; n < kSlots; ++n, i = (i + 1) & (kSlots - 1)) {
    std::uintptr_t v = g_slots[i].addr.load(std::memory_order_acquire);
    if (v == a) return &g_slots[i];
    if (v == 0) return nullptr;
  }
  return nullptr;
}

bool insert(std::uintptr_t a, std::size_t len) {
  std::size_t i = hash(a);
  for (std::size_t n = 0; n < kSlots; ++n, i = (i + 1) & (kSlots - 1)) {
    std::uintptr_t v = g_slots[i].addr.load(std::memory_order_relaxed);
    while (v <= kTombstone) {
      if (g_slots[i].addr.compare_exchange_weak(v, a, std::memory_order_acq_rel)) {
        g_slots[i].len.store(len, std::memory_order_release);
        g_live.fetch_add(1, std::memory_order_release);
        return true;
      }
    }
  }
  return false;
}

}  // namespace

void* reentry_alloc(std::size_t size, std::size_t align) {
  if (size > (std::size_t{1} << 46)) return nullptr;
  if (align < kPageSize) align = kPageSize;
  if (align > (std::size_t{1} << 40)) return nullptr;
  std::size_t len = align_up(size ? size : 1, kPageSize);
  std::size_t extra = align > kPageSize ? align : 0;
  void* m = sys::mmap(nullptr, len + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                      0, nullptr);
  if (!m) return nullptr;
  auto start = reinterpret_cast<std::uintptr_t>(m);
  std::uintptr_t p = align_up(start, align);
  if (p > start) sys::munmap(m, p - start);
  if (start + len + extra > p + len)
    sys::munmap(reinterpret_cast<void*>(p + len), start + len + extra - (p + len));
  if (!insert(p, len)) {
    sys::munmap(reinterpret_cast<void*>(p), len);
    return nullptr;
  }
  g_blocks.fetch_add(1, std::memory_order_relaxed);
  return reinterpret_cast<void*>(p);
}

bool reentry_free(void* p) {
  Slot* s = find(reinterpret_cast<std::uintptr_t>(p));
  if (!s) return false;
  std::size_t len = s->len.load(std::memory_order_acquire);
  s->len.store(0, std::memory_order_relaxed);
  s->addr.store(kTombstone, std::memory_order_release);
  g_live.fetch_sub(1, std::memory_order_release);
  sys::munmap(p, len);
  return true;
}

std::size_t reentry_size(const void* p) {
  Slot* s = find(reinterpret_cast<std::uintptr_t>(p));
  return s ? s->len.load(std::memory_order_acquire) : 0;
}

// The stack's links lie in the freed objects, so they are mangled as the
// slabs' are (freeptr.h): a stray write into one (the program may still
// write an object it freed in a signal handler) decodes far from any
// object, and the drain's free aborts on it rather than freeing a live
// block. The key is not secret (the stack's address): detection, not
// defence.
static void** defer_link(void* p) {
  return static_cast<void**>(p);
}
static std::uint64_t defer_key() {
  return reinterpret_cast<std::uintptr_t>(&g_deferred_head);
}

void reentry_defer_free(void* p) {
  void* head = g_deferred_head.load(std::memory_order_relaxed);
  do {
    *defer_link(p) = freeptr_encode(head, defer_key(), defer_link(p));
  } while (!g_deferred_head.compare_exchange_weak(head, p, std::memory_order_release,
                                                  std::memory_order_relaxed));
  g_deferred.fetch_add(1, std::memory_order_relaxed);
}

bool reentry_frees_pending() {
  return g_deferred_head.load(std::memory_order_relaxed) != nullptr;
}

void reentry_drain_frees() {
  void* p = g_deferred_head.exchange(nullptr, std::memory_order_acquire);
  while (p) {
    void* next = freeptr_decode(*defer_link(p), defer_key(), defer_link(p));
    if (NS_UNLIKELY(debug_enabled())) debug_unlink_deferred(p);
    kfree(p);
    // The next link is read before the free of `next` could report it: a
    // changed link decodes to a random word, which a malloc'd block never
    // is (16-byte aligned, a user address: below 2^56 even with 5-level
    // page tables). A block of another allocator (freed by a handler
    // under LD_PRELOAD) passes, and goes to its free as before.
    auto a = reinterpret_cast<std::uintptr_t>(next);
    if (NS_UNLIKELY(a % 16 != 0 || a >> 56 != 0))
      fatal(
          "BUG deferred free: block %p links to %p, not a block (a write after free to %p, "
          "freed in a signal handler that interrupted the allocator)",
          p, next, p);
    p = next;
  }
}

ReentryStats reentry_stats() {
  return {g_blocks.load(std::memory_order_relaxed), g_live.load(std::memory_order_relaxed),
          g_deferred.load(std::memory_order_relaxed)};
}

}  // namespace numaslub
