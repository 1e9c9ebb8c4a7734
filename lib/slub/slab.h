// Slabs and kmem_caches: a slab is a buddy block cut into equal objects; a
// cache owns the slabs of one size class, per node.
//
// Slab state lives in the head page descriptor (struct Slab overlays struct
// Page, as in the kernel), never in object memory. A slab has two free lists:
// - freelist: protected by its node's list_lock; next pointers are stored
//   inside free objects, mangled (SLAB_FREELIST_HARDENED; freeptr.h: a
//   multiply, so a one-byte overflow into a link cannot decode to another
//   object of the slab), with the secret of the slab's generation (KmemCache::secrets: a fork child
//   draws a new one for the slabs it cuts; the parent's slabs keep theirs).
// - remote: a lock-free stack (one CAS per push) for frees that bypass the
//   sheaves (objects freed on another node's CPU, kmalloc_node frees). It is
//   emptied into freelist under list_lock.
//
// inuse counts objects that are not on `freelist` (allocated, in sheaves, or
// on `remote`). PG_slab on the head is set last, when the slab is whole, and
// cleared first when it is discarded (a fork child walks the descriptors). Bit 0 of `remote`
// (kSlabFull) says the slab is off the partial list because it has nothing to give: set with CAS(0
// -> kSlabFull) under list_lock, cleared by whichever free clears it first (CAS); that free puts
// the slab back on the partial list. So a slab is exactly one of: on the partial list; full
// (kSlabFull set); or in transit (kSlabFull just cleared by a remote free that is waiting for
// list_lock to list it). Only listed slabs are discarded, and only when inuse == 0.
//
// Lock order: CPU slot lock -> barn lock / list_lock -> zone locks (via the
// page allocator). list_lock and the barn lock are never held together.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "lib/buddy/buddy.h"
#include "lib/slub/sheaf.h"
#include "lib/slub/size_class.h"

namespace numaslub {

struct KmemCache;

struct Slab {
  ListNode slab_list;        // Page::lru: the node's partial list
  std::uint32_t flags;       // Page::flags: PG_head | PG_slab
  std::uint8_t order;        // Page::order
  std::uint8_t slab_class;   // Page::slab_class
  std::uint16_t sheaf_off;   // Page::sheaf_off
  std::uint32_t head_off;    // 0: this is the head
  std::uint32_t secret_gen;  // Page::reserved32: the cache's secret this slab's freelist uses
  KmemCache* cache;          // priv[0]
  void* freelist;            // priv[1]
  std::atomic<std::uintptr_t> remote;  // priv[2]
  std::uint32_t inuse;                 // priv[3]
  std::uint16_t objects;
  std::uint8_t on_partial;
  std::uint8_t nid;
};
static_assert(sizeof(Slab) == sizeof(Page));
static_assert(offsetof(Slab, cache) == kPriv0Offset);

inline constexpr std::uintptr_t kSlabFull = 1;

struct alignas(64) KmemCacheNode {
  Mutex list_lock;
  ListNode partial;
  ListNode full;  // debug caches only (debug.h): slabs with no free object
  std::size_t nr_partial = 0;
  std::size_t nr_slabs = 0;  // all slabs of this node
  std::size_t inuse = 0;     // sum of the slabs' inuse
  std::atomic<std::uint64_t> remote_frees{0};
  std::uint64_t slabs_allocated = 0;
  std::uint64_t slabs_freed = 0;
  Barn barn;
};

struct KmemCache {
  char name[24] = {};
  std::uint32_t size = 0;     // object size (the class size)
  std::uint32_t cls = 0;      // class index
  std::uint32_t order = 0;    // slab order
  std::uint32_t objects = 0;  // objects per slab
  // Pages of a slab that hold an object's start: new_slab writes a free
  // pointer there, so they are resident from the slab's birth (all of them
  // for objects up to 2 KiB; one in four of a 16 KiB object's). What the
  // slab adds to Zone::touched_pages, the density thp=auto weighs.
  std::uint32_t touched_pages = 0;
  std::uint32_t sheaf_capacity = 0;      // a slot's sheaves while the class is cold on its CPU
  std::uint32_t sheaf_capacity_hot = 0;  // ... while it churns there (sheaf_tune.h); >= the above
  std::uint32_t min_partial = 0;         // empty slabs kept per node
  std::uint32_t barn_max_full = 0;  // each barn's limit on full sheaves at first and after a flush
  std::uint32_t barn_cap_full = 0;  // the most it grows to (kBarnMaxBytes of objects; Big if tuned)
  // slub_debug's letters (debug.h); 0 for a plain cache. A debug cache's
  // order and objects are its debug slabs', whose layout debug.cpp keeps.
  std::uint8_t debug = 0;
  // Freelist pointer mangling: secrets[g] encodes the freelists of the
  // slabs cut in fork generation g; new slabs take secret_gen, which a fork
  // child advances (fork_child.cpp) while a generation is left. Written
  // only before threads can see them (set-up, the fork child).
  static constexpr unsigned kSecretGens = 16;
  std::uint64_t secrets[kSecretGens] = {};
  std::uint32_t secret_gen = 0;
  std::uint16_t* random_seq = nullptr;  // SLAB_FREELIST_RANDOM permutation
  bool random_start = true;             // new slabs start it at a random point
  // Objects per line group (128 bytes' worth, slab.cpp) of random_seq: a
  // group's objects are consecutive in it. 1 without slab_random.
  std::uint32_t random_group = 1;
  KmemCacheNode* node = nullptr;  // [nr_nodes]
  PageAllocator* pa = nullptr;

  // Sets up the cache for class `cls`; `random`: slab_random (else the
  // permutation is the identity, started at 0). Returns false when metadata
  // cannot be allocated.
  bool init(unsigned cls, PageAllocator* pa, std::uint64_t secret, bool random = true);

  // Takes up to n objects from node nid's slabs (growing the cache as
  // needed). Returns how many were stored in out.
  unsigned fill(unsigned nid, void** out, unsigned n);
  // Reorders n objects that fill just took for a sheaf (n <= 64) so that
  // consecutive ones lie in different line groups: fill takes whole groups
  // one after the other (slab_random), dealt out by column they come
  // random_group places apart in its order (slab.cpp). Nothing to do
  // without slab_random.
  void deal_by_line(void** objs, unsigned n) const;
  // Returns n objects to their slabs (any nodes), under each node's
  // list_lock once per run of same-node objects.
  void free_batch(void* const* objs, unsigned n);
  // Lock-free free of one object to its slab (cross-node frees).
  void free_remote(Slab* slab, void* obj);
  // Collects remote frees and discards empty slabs beyond min_partial
  // (all empty slabs when `all`). Returns pages given back to the buddy.
  std::size_t shrink(bool all);

  // Fork child, when a thread that did not survive the fork held node nid's
  // list_lock (the partial list or a slab's freelist may be half-updated):
  // fork_reset_node empties the node's lists and counts, then every slab of
  // the node is handed to fork_adopt_slab, which checks its freelist,
  // recounts inuse and lists it again if it has free objects. A slab whose
  // freelist does not check out is kept off the lists: leaked, never reused.
  void fork_reset_node(unsigned nid);
  void fork_adopt_slab(unsigned nid, Slab* s);

  Slab* obj_to_slab(const void* obj) const {
    Page* p = pa->virt_to_page(obj);
    return reinterpret_cast<Slab*>(p - p->head_off);
  }
  void* slab_base(const Slab* s) const {
    return pa->page_address(reinterpret_cast<const Page*>(s));
  }

  // A fork child's: new slabs use a fresh secret (false when every
  // generation is taken: they keep the last).
  bool renew_secret(std::uint64_t fresh);

 private:
  friend struct SlubDebug;  // debug.cpp
  Slab* new_slab(unsigned nid);
  // Takes the list_lock of new slab s's node (the page allocator may have
  // fallen back to another node than asked) and lists s there; returns that
  // node, locked.
  KmemCacheNode* list_new_slab(Slab* s);
  void discard_slab(KmemCacheNode& n, Slab* s);
  unsigned collect_remote(Slab* s);
  // Puts k objects of slab s, objs[1..k) already linked each to the one
  // before it, onto its freelist (list_lock of n held).
  void splice_run_locked(KmemCacheNode& n, Slab* s, void* const* objs, unsigned k);
  void* decode(const Slab* s, void* stored, void** where) const;
  // The next pointer stored in free object obj of slab s, checked before
  // anyone follows it: null or the start of an object of s; anything else
  // (a write after free, an overflow from the object before) aborts with a
  // message naming the cache, the slab and the object.
  void* next_free(const Slab* s, void** obj) const;
  [[noreturn]] NS_COLD void bad_next(const Slab* s, void** obj, void* next) const;
  // Pops up to n objects off s's freelist into out (list_lock held), each
  // next pointer checked as next_free does; counts them in s->inuse.
  unsigned take_free(Slab* s, void** out, unsigned n);
  struct Links;
  struct Chain;
  // Walks a freelist fill detached into its output, checking each link
  // and the count (slab.cpp).
  void walk_chain(const Chain& c) const;
  [[noreturn]] NS_COLD void bad_count(const Slab* s, void** obj, void* next) const;
  void* encode(const Slab* s, void* ptr, void** where) const;
};

}  // namespace numaslub
