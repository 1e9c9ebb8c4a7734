// slub_debug at run time: the kernel's debug caches (mm/slub.c with
// SLAB_CONSISTENCY_CHECKS, SLAB_RED_ZONE, SLAB_POISON, SLAB_STORE_USER),
// switched on per cache by NUMASLUB_CONF=slub_debug=FZPU[:kmalloc-N...].
//
// A debug cache never uses the per-CPU sheaves: its CPU (and thread) slots
// stay at the no-sheaf sentinel, so malloc's fast path always misses, and
// its slabs' pages carry sheaf_off 0, whose obj_index entry has no objects,
// so free's fast path never takes their objects. Every allocation and free
// of a debug cache therefore reaches kmalloc_slow / kfree_slow, which hand
// it to this file, and works on the slab under its node's list_lock. The
// fast paths are the same instructions with slub_debug on or off.
//
// Debug slab layout (one slot per object, `stride` bytes, objects aligned
// to the largest power of two dividing the class size, as plain slabs
// promise kmalloc_aligned):
//
//   slab: [pad slab_off][slot 0][slot 1]...[slot n-1][pad]
//   slot: [left red zone red_left][object size][right red zone red_left]
//         [free pointer 8][padding to stride]
//
// red_left is 16 under Z, else 0. The free pointer (the slab freelist's
// next pointer, encoded as in slab.h) lies outside the object, so poison
// covers the whole object; a quarantined object's free pointer word links
// the quarantine instead. Under Z the red zones hold 0xcc while the object
// is allocated (the free pointer word and padding too) and 0xbb while it is
// free (the free pointer word excepted), and the bytes between the size
// asked for and the class size (the kernel's kmalloc red zone) hold 0xcc.
// Under P a free object holds 0x6b with a last byte 0xa5, a new one 0x5a;
// the slab's padding holds 0x5a under Z or P.
//
// Out of band, per slab (DebugMeta, from boot_alloc, recycled with the
// slab): each object's state (free, allocated, quarantined), the size it was
// asked for, and under U its last allocation and free (stack, thread, CPU,
// time). The pointer to it sits in the second page descriptor's priv[0]
// (debug slabs are at least order 1). A debug slab with free objects is on
// its node's partial list, one without on the node's full list, so
// validation reaches every slab.
//
// Always checked in a debug cache (whatever the letters): the pointer is an
// object's start, the object's state (double free and realloc of a freed
// object, wherever it sits, quarantine included), and each free pointer
// before it is followed. F adds a walk of the slab's whole freelist on
// every allocation and free and the size of sized frees (exact, both
// directions); Z checks red zones on free and allocation; P checks poison
// on allocation (and when an object leaves the quarantine).
//
// Lock order: list_lock -> the metadata pool lock -> boot_alloc's lock;
// list_lock -> the report lock. The quarantine lock is taken with no other
// held, and a node's list_lock is never taken while it is held.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/numa/numa.h"

namespace numaslub {

struct KmemCache;
struct Slab;

enum DebugFlag : std::uint8_t {
  kDebugF = 1u << 0,  // sanity checks
  kDebugZ = 1u << 1,  // red zones
  kDebugP = 1u << 2,  // poisoning
  kDebugU = 1u << 3,  // owner tracking
};

// The kernel's byte values (include/linux/poison.h).
inline constexpr std::uint8_t kRedInactive = 0xbb;
inline constexpr std::uint8_t kRedActive = 0xcc;
inline constexpr std::uint8_t kPoisonInuse = 0x5a;
inline constexpr std::uint8_t kPoisonFree = 0x6b;
inline constexpr std::uint8_t kPoisonEnd = 0xa5;

// "No size given" for debug_free (a size of 0 is a valid sized free).
inline constexpr std::size_t kNoSize = ~std::size_t{0};

// A page of a debug slab (given that page->slab_class != 0): plain slabs'
// pages carry their class's sheaf-slot offset, never 0.
inline bool debug_page(const Page* page) {
  return page->sheaf_off == 0;
}

// At set-up, after the caches' init: applies config().slub_debug (letters
// and cache names) to the caches, giving debug caches their slab layout.
// Unknown cache names are logged and ignored.
void debug_setup(KmemCache* caches, unsigned nr);
// Whether any cache is a debug cache.
bool debug_enabled();

// An object of debug cache c, asked for with req bytes, from node nid (<0:
// the calling CPU's). Null when out of memory.
void* debug_alloc(KmemCache& c, std::size_t req, int nid);
// A free of p, in a debug slab's page. `sized`: the size a sized free gave
// (kNoSize for a plain free).
void debug_free(Page* page, void* p, std::size_t sized);
// Before a realloc of p (in a debug slab's page): reports a pointer that is
// not a live object's start. False when it is not (reported, and going on:
// debug_continue), true when p may be resized.
bool debug_check_live(Page* page, void* p, const char* op);
// The size p was asked for (usable size of a debug object).
std::size_t debug_ksize(const Page* page, const void* p);

// Z for large blocks and direct mappings (slub_debug with Z for every
// cache): a block of `size` bytes is given kTailBytes more, the bytes after
// `size` hold 0xcc and its last word the size (encoded), checked at free.
// Their usable size is then the size asked for, and realloc always moves.
inline constexpr std::size_t kTailBytes = 24;
extern bool g_debug_tails;
inline bool debug_tails() {
  return g_debug_tails;
}
// Writes the tail of block p (len bytes, size asked for).
void debug_tail_init(void* p, std::size_t size, std::size_t len);
// The size asked for of block p (len bytes), read from its tail.
std::size_t debug_tail_size(const void* p, std::size_t len);
// Checks block p's tail before it is freed (kind: "large block" or
// "direct mapping"); a write past its end is reported.
void debug_tail_check(void* p, std::size_t len, const char* kind);

// A deferred free (reentry.h) linked p through its first word: where that
// word covers a debug object's kmalloc red zone, the red zone is written
// again before the free checks it.
void debug_unlink_deferred(void* p);

// Walks every slab of every debug cache, reports what is wrong and repairs
// it; returns the number of problems.
std::size_t debug_validate();
// Returns every quarantined object to its slab; returns how many.
std::size_t debug_quarantine_drain();
// Fork child (see fork_child.cpp): frees the debug layer's locks that a
// thread which did not survive the fork held.
void debug_fork_child(std::uint32_t self);
// Fork child, for a debug slab whose node's list_lock was orphaned: the
// freelist and counts rebuilt from the objects' states.
void debug_fork_adopt_slab(KmemCache& c, unsigned nid, Slab* s);

}  // namespace numaslub
