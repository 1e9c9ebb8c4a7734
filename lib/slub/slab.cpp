#include "lib/slub/slab.h"

#include <new>

#include "lib/base/base.h"
#include "lib/slub/debug.h"
#include "lib/slub/debug_internal.h"
#include "lib/slub/freeptr.h"
#include "lib/slub/obj_index.h"

namespace numaslub {

namespace {

// xorshift64*: deterministic per seed, good enough for shuffling object order.
std::uint64_t next_rand(std::uint64_t* s) {
  std::uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

// The unit two CPUs must not share: a pair of cache lines. x86's L2
// spatial prefetcher fetches a line's 128-byte-aligned buddy with it, so a
// neighbour line written by another core moves as if it were shared
// (malloc-thread with its threads at once: 1.12x jemalloc's time with
// 64-byte groups, 1.03x with 128-byte ones; address order 0.97x).
constexpr std::uint32_t kLineGroupBytes = 128;

// The fewest consecutive objects of `size` bytes that end on a
// kLineGroupBytes boundary (they fill whole line pairs, which no other
// group's object touches).
std::uint32_t line_group(std::uint32_t size) {
  std::uint32_t a = size, b = kLineGroupBytes;
  while (b) {
    std::uint32_t t = a % b;
    a = b;
    b = t;
  }
  return kLineGroupBytes / a;
}

}  // namespace

void* KmemCache::encode(const Slab* s, void* ptr, void** where) const {
  return freeptr_encode(ptr, secrets[s->secret_gen], where);
}
void* KmemCache::decode(const Slab* s, void* stored, void** where) const {
  return freeptr_decode(stored, secrets[s->secret_gen], where);
}

bool KmemCache::renew_secret(std::uint64_t fresh) {
  if (secret_gen + 1 >= kSecretGens) return false;
  secrets[secret_gen + 1] = fresh;
  ++secret_gen;
  return true;
}

void KmemCache::bad_next(const Slab* s, void** obj, void* next) const {
  fatal(
      "BUG %s: freelist corrupted: free object %p of slab %p holds next %p, not an object "
      "of that slab (a write after free to %p, or an overflow of the object before it)",
      name, static_cast<void*>(obj), slab_base(s), next, static_cast<void*>(obj));
}

// What checking a slab's next pointers needs, computed once for a walk
// (the stores a walk makes would otherwise have the compiler reload it per
// object): next() decodes the pointer stored in free object obj and checks
// it is null or the start of an object of s; anything else (a write after
// free, an overflow from the object before) aborts naming the cache, the
// slab and the object.
struct KmemCache::Links {
  const KmemCache* c;
  const Slab* s;
  std::uintptr_t base;
  std::uintptr_t span;
  std::uint64_t key;
  const ObjIndex* oi;

  Links() = default;  // fill's array of chains, assigned before use
  Links(const KmemCache* cache, const Slab* slab)
      : c(cache),
        s(slab),
        base(reinterpret_cast<std::uintptr_t>(cache->slab_base(slab))),
        span(kPageSize << cache->order),
        key(cache->secrets[slab->secret_gen]),
        oi(&obj_index_entry(kObjIndex, class_slot_offset(cache->cls))) {}

  NS_ALWAYS_INLINE void* next(void** obj) const {
    void* n = freeptr_decode(*obj, key, obj);
    std::uintptr_t off = reinterpret_cast<std::uintptr_t>(n) - base;
    if (NS_UNLIKELY(n && (off >= span || !obj_start(*oi, off)))) c->bad_next(s, obj, n);
    return n;
  }
};

void* KmemCache::next_free(const Slab* s, void** obj) const {
  return Links(this, s).next(obj);
}

unsigned KmemCache::take_free(Slab* s, void** out, unsigned n) {
  const Links links(this, s);
  auto** obj = static_cast<void**>(s->freelist);
  unsigned got = 0;
  while (got < n && obj) {
    out[got++] = obj;
    obj = static_cast<void**>(links.next(obj));
  }
  s->freelist = obj;
  s->inuse += got;
  return got;
}

bool KmemCache::init(unsigned c, PageAllocator* alloc, std::uint64_t s, bool random) {
  pa = alloc;
  cls = c;
  size = kClassSize[c];
  order = slab_order_for(size);
  objects = static_cast<std::uint32_t>((kPageSize << order) / size);
  touched_pages = 0;
  for (std::uint32_t i = 0, last = ~0u; i < objects; ++i) {
    std::uint32_t page = static_cast<std::uint32_t>((std::size_t{i} * size) >> kPageShift);
    touched_pages += page != last;
    last = page;
  }
  // A sheaf holds up to 32 KiB of objects (at least one): a CPU's main and
  // spare then keep at most 64 KiB of free objects of a class (128 KiB of
  // the largest), about what jemalloc's thread cache keeps per size class.
  // At 64 KiB a sheaf, and 8 objects at least (256 KiB of 32 KiB objects),
  // the second CPU's sheaves alone cost a small program 1 MiB of peak RSS
  // (malloc-thread: 4.4 MiB with jemalloc), and realloc chains, which pass
  // through every class, left up to 2.6 MiB per CPU.
  //
  // That holds a class's sheaves while it is cold on a CPU. Where a class
  // churns on a CPU (allocations and frees interleaved, many per
  // millisecond: sheaf_tune.h), the slot's sheaves grow to
  // sheaf_capacity_hot, kSheafHotObjects at least: a sheaf of 1..4 big
  // objects sent the slot to its barn or slabs every few operations.
  std::uint32_t cap = static_cast<std::uint32_t>((32u << 10) / size);
  sheaf_capacity = cap < 1 ? 1 : cap > kSheafMaxCapacity ? kSheafMaxCapacity : cap;
  sheaf_capacity_hot = sheaf_capacity < kSheafHotObjects ? kSheafHotObjects : sheaf_capacity;
  min_partial = 2;
  // A tunable class's barn holds one full sheaf (its objects are big, and
  // while the class is cold all they do is keep memory from the other
  // classes: mstress's peak held 1.7 MiB in these barns), and grows for a
  // flow between CPUs up to kBarnMaxBytesBig; the others' start at 8 and
  // grow up to kBarnMaxBytes.
  bool tunable = sheaf_capacity_hot > sheaf_capacity;
  barn_max_full = tunable ? 1 : 8;
  std::size_t cap_full =
      (tunable ? kBarnMaxBytesBig : kBarnMaxBytes) / (std::size_t{sheaf_capacity} * size);
  barn_cap_full = cap_full > barn_max_full ? static_cast<std::uint32_t>(cap_full) : barn_max_full;
  secret_gen = 0;
  secrets[0] = s;
  format(name, sizeof name, "kmalloc-%u", size);
  NS_CHECK(objects == obj_index_entry(kObjIndex, class_slot_offset(c)).objects,
           "slab geometry of %s disagrees with obj_index.h", name);
  unsigned nodes = pa->nr_nodes();
  node = static_cast<KmemCacheNode*>(boot_alloc(sizeof(KmemCacheNode) * nodes));
  random_seq = static_cast<std::uint16_t*>(boot_alloc(sizeof(std::uint16_t) * objects));
  if (!node || !random_seq) return false;
  for (unsigned n = 0; n < nodes; ++n) {
    new (&node[n]) KmemCacheNode();
    node[n].barn.max_full = barn_max_full;
  }
  for (unsigned n = 0; n < nodes; ++n) {
    node[n].partial.init();
    node[n].full.init();
  }
  // SLAB_FREELIST_RANDOM: one random permutation per cache; each new slab
  // starts it at a random point. Without it, address order from the start.
  //
  // The permutation moves line groups, not single objects: the objects of
  // a group (line_group: the fewest consecutive objects that end on a
  // 128-byte boundary, 128 / gcd(size, 128)) come out one after the other,
  // in a random order among themselves, and a slab starts at a group's
  // first. A fill (a sheaf's worth) then takes whole line pairs, but for the
  // group a fill ends in. Shuffled one by one, the objects of two CPUs'
  // fills from one slab shared nearly every line of it: malloc-thread's
  // 16-byte objects cost 35% more CPU when its two threads ran at once than
  // when they took turns (the line bounced between the cores at every
  // write), and 0% at slab_random=0. A refill then deals its objects out by
  // line (deal_by_line), so the objects of a group are not handed out one
  // after the other. Classes of multiples of 128 bytes are shuffled one by
  // one as before; groups hold 8 objects of 16, 48, 80 or 112 bytes, 4 of
  // 32, 96, 160 or 224, 2 of 64, 192, 320 or 448.
  std::uint64_t st = secrets[0] ^ (0x9E3779B97F4A7C15ULL * (c + 1));
  random_start = random;
  random_group = random ? line_group(size) : 1;
  auto shuffle = [&st](std::uint16_t* v, std::uint32_t n) {
    for (std::uint32_t i = n; i > 1; --i) {
      std::uint32_t j = static_cast<std::uint32_t>(next_rand(&st) % i);
      std::uint16_t t = v[i - 1];
      v[i - 1] = v[j];
      v[j] = t;
    }
  };
  std::uint32_t g = random_group;
  std::uint32_t groups = (objects + g - 1) / g;
  std::uint16_t order_of_groups[kPageSize / 16];
  NS_CHECK(groups <= sizeof order_of_groups / sizeof order_of_groups[0],
           "%s: %u line groups in a slab", name, groups);
  for (std::uint32_t k = 0; k < groups; ++k) order_of_groups[k] = static_cast<std::uint16_t>(k);
  if (random) shuffle(order_of_groups, groups);
  std::uint32_t at = 0;
  for (std::uint32_t k = 0; k < groups; ++k) {
    std::uint32_t first = std::uint32_t{order_of_groups[k]} * g;
    std::uint32_t n = objects - first < g ? objects - first : g;  // the last group may be short
    for (std::uint32_t i = 0; i < n; ++i)
      random_seq[at + i] = static_cast<std::uint16_t>(first + i);
    if (random) shuffle(random_seq + at, n);
    at += n;
  }
  return true;
}

// The line groups of a new slab come out of fill one after the other, so a
// sheaf refilled from it would hand out a line's objects one after the
// other: an object's neighbours in memory allocated right after it (what
// SLAB_FREELIST_RANDOM means to prevent), and objects one thread allocates
// back to back for others sharing a line (falseshare-passive, Hoard's
// cache-scratch: the objects stay there as each worker frees and allocates
// its own again). Dealt out by column, [0, g, 2g, ..., 1, g+1, ...],
// consecutive objects are g or more places apart in the fill's order, so
// in different groups: a group's g objects take consecutive places. The
// sheaf's objects still fill whole lines; only their order changes.
void KmemCache::deal_by_line(void** objs, unsigned n) const {
  std::uint32_t g = random_group;
  constexpr unsigned kMax = 64;
  if (g < 2 || n <= g || n > kMax) return;
  void* copy[kMax];
  for (unsigned i = 0; i < n; ++i) copy[i] = objs[i];
  unsigned k = 0;
  for (unsigned col = 0; col < g; ++col)
    for (unsigned i = col; i < n; i += g) objs[k++] = copy[i];
}

Slab* KmemCache::new_slab(unsigned nid) {
  // Objects above kMaxDenseClassSize are placed as the large blocks they
  // were (size_class.h): a program may touch few of their pages, and in a
  // huge range the first touch would make 2 MiB resident.
  unsigned gfp = size > kMaxDenseClassSize ? unsigned{kGfpSparse} : 0u;
  Page* head = pa->alloc_pages(static_cast<int>(nid), order, gfp);
  if (!head) return nullptr;
  std::size_t pages = std::size_t{1} << order;
  for (std::size_t i = 0; i < pages; ++i) {
    head[i].flags = i ? PG_tail : 0u;  // the head's PG_slab comes last
    head[i].head_off = static_cast<std::uint32_t>(i);
    head[i].slab_class = static_cast<std::uint8_t>(cls + 1);
    head[i].sheaf_off = static_cast<std::uint16_t>(class_slot_offset(cls));
  }
  auto* s = reinterpret_cast<Slab*>(head);
  s->order = static_cast<std::uint8_t>(order);
  s->cache = this;
  s->remote.store(0, std::memory_order_relaxed);
  s->secret_gen = secret_gen;
  s->inuse = 0;
  s->objects = static_cast<std::uint16_t>(objects);
  s->on_partial = 0;
  s->nid = static_cast<std::uint8_t>(pa->page_to_nid(head));
  char* base = static_cast<char*>(pa->page_address(head));
  // obj_index.h finds an object's slab offset by masking its heap offset.
  NS_CHECK((pa->arena().page_to_pfn(head) & (pages - 1)) == 0, "slab %p of %s is not aligned",
           static_cast<void*>(base), name);
  std::uint64_t st = secrets[secret_gen] ^ reinterpret_cast<std::uintptr_t>(base);
  std::uint32_t start = random_start ? static_cast<std::uint32_t>(next_rand(&st) % objects) : 0;
  // At the first object of its line group (init: groups are runs of random_seq).
  while (start > 0 && random_seq[start] / random_group == random_seq[start - 1] / random_group)
    --start;
  void* next = nullptr;
  // Link in reverse so the freelist runs in permutation order from `start`:
  // random_seq[start..objects-1], then random_seq[0..start-1] (two loops,
  // not a division per object).
  auto link = [&](std::uint32_t from, std::uint32_t to) {
    for (std::uint32_t k = to; k-- > from;) {
      auto** obj = reinterpret_cast<void**>(base + std::size_t{random_seq[k]} * size);
      *obj = encode(s, next, obj);
      next = obj;
    }
  };
  link(0, start);
  link(start, objects);
  s->freelist = next;
  pa->account_touched(head, touched_pages);
  signal_fence();
  head->flags = PG_head | PG_slab;
  return s;
}

KmemCacheNode* KmemCache::list_new_slab(Slab* s) {
  KmemCacheNode* nd = &node[s->nid];
  nd->list_lock.lock();
  nd->partial.push_front(&s->slab_list);
  s->on_partial = 1;
  ++nd->nr_partial;
  ++nd->nr_slabs;
  ++nd->slabs_allocated;
  return nd;
}

void KmemCache::discard_slab(KmemCacheNode& n, Slab* s) {
  ListNode::unlink(&s->slab_list);
  s->on_partial = 0;
  --n.nr_partial;
  --n.nr_slabs;
  ++n.slabs_freed;
  Page* head = reinterpret_cast<Page*>(s);
  head->flags = 0;  // no longer a slab, first
  signal_fence();
  if (debug) SlubDebug::release_meta(*this, s);
  std::size_t pages = std::size_t{1} << order;
  for (std::size_t i = 0; i < pages; ++i) {
    head[i].flags = 0;
    head[i].head_off = 0;
    head[i].slab_class = 0;
    head[i].sheaf_off = 0;
  }
  pa->account_touched(head, -static_cast<std::ptrdiff_t>(touched_pages));
  pa->free_pages(head, order);
}

unsigned KmemCache::collect_remote(Slab* s) {
  std::uintptr_t v = s->remote.exchange(0, std::memory_order_acquire);
  unsigned got = 0;
  auto* obj = reinterpret_cast<void**>(v & ~kSlabFull);
  while (obj) {
    auto** next = static_cast<void**>(next_free(s, obj));
    *obj = encode(s, s->freelist, obj);
    s->freelist = obj;
    obj = next;
    ++got;
  }
  s->inuse -= got;
  node[s->nid].inuse -= got;
  return got;
}

// A slab's whole freelist, detached under the list_lock and walked after
// it: `count` objects (objects - inuse when detached) go to out[0..count).
struct KmemCache::Chain {
  void** obj;
  void** out;
  unsigned count;
  Links links;
};

// Walking a freelist is a chain of dependent loads, each a cache miss when
// another CPU freed the objects (xmalloc: a producer's fill walks what a
// consumer's overflowing sheaf freed; 93% of take_free's samples were its
// one load). So fill walks under the lock only a slab it takes part of, and
// walks the slabs it takes whole after unlocking. Invariant that makes the
// detach safe: a slab's freelist holds exactly objects - inuse objects
// (inuse counts what sheaves, callers and the remote stack hold), so whole
// slabs are counted without being read, and a walk that ends early or runs
// on is a corrupted list.
void KmemCache::walk_chain(const Chain& c) const {
  auto** obj = c.obj;
  for (unsigned i = 0; i + 1 < c.count; ++i) {
    c.out[i] = obj;
    void* next = c.links.next(obj);
    if (NS_UNLIKELY(!next)) bad_count(c.links.s, obj, next);
    obj = static_cast<void**>(next);
  }
  c.out[c.count - 1] = obj;
  if (void* next = c.links.next(obj); NS_UNLIKELY(next)) bad_count(c.links.s, obj, next);
}

void KmemCache::bad_count(const Slab* s, void** obj, void* next) const {
  fatal(
      "BUG %s: freelist corrupted: the freelist of slab %p %s its count of free objects (free "
      "object %p holds next %p: a write after free to %p, or an overflow of the object before it)",
      name, slab_base(s), next ? "runs past" : "ends before", static_cast<void*>(obj), next,
      static_cast<void*>(obj));
}

unsigned KmemCache::fill(unsigned nid, void** out, unsigned n) {
  constexpr unsigned kMaxChains = 8;
  unsigned got = 0;
  while (got < n) {
    Chain ch[kMaxChains];
    unsigned nr = 0;
    KmemCacheNode* nd = &node[nid];
    nd->list_lock.lock();
    if (nd->partial.empty()) {
      nd->list_lock.unlock();
      Slab* s = new_slab(nid);
      if (!s) break;
      nd = list_new_slab(s);
    }
    while (got < n && !nd->partial.empty()) {
      Slab* s = list_entry<Slab>(nd->partial.next, offsetof(Slab, slab_list));
      unsigned free_objs = objects - s->inuse;
      unsigned took;
      // (A slab whose count says free objects but whose freelist is empty
      // is taken as before, by take_free, which finds nothing there.)
      if (free_objs && s->freelist && free_objs <= n - got && nr < kMaxChains) {
        ch[nr++] = {static_cast<void**>(s->freelist), out + got, free_objs, Links(this, s)};
        s->freelist = nullptr;
        s->inuse = objects;
        took = free_objs;
      } else {
        took = take_free(s, out + got, n - got);
      }
      got += took;
      nd->inuse += took;
      if (s->freelist || collect_remote(s)) continue;
      std::uintptr_t expected = 0;
      if (s->remote.compare_exchange_strong(expected, kSlabFull, std::memory_order_acq_rel)) {
        ListNode::unlink(&s->slab_list);
        s->on_partial = 0;
        --nd->nr_partial;
      }
    }
    nd->list_lock.unlock();
    // The detached objects are this thread's now: no other thread reaches
    // them (the slabs' freelists are empty) until they are freed.
    for (unsigned i = 0; i < nr; ++i) walk_chain(ch[i]);
  }
  return got;
}

void KmemCache::splice_run_locked(KmemCacheNode& n, Slab* s, void* const* objs, unsigned k) {
  // objs[1..k) already link each to the one before it (free_batch); the
  // first is checked against the freelist's head, as one free at a time
  // would be, and links to it.
  auto** first = static_cast<void**>(objs[0]);
  NS_CHECK(first != s->freelist, "double free of %p (cache %s)", static_cast<void*>(first), name);
  *first = encode(s, s->freelist, first);
  s->freelist = objs[k - 1];
  s->inuse -= k;
  n.inuse -= k;
  if (!s->on_partial) {
    std::uintptr_t old = s->remote.load(std::memory_order_relaxed);
    while (old & kSlabFull) {
      if (s->remote.compare_exchange_weak(old, old & ~kSlabFull, std::memory_order_acq_rel)) {
        n.partial.push_back(&s->slab_list);
        s->on_partial = 1;
        ++n.nr_partial;
        break;
      }
    }
    // Otherwise a remote free cleared kSlabFull and will list the slab.
  }
  if (s->on_partial && s->inuse == 0 && n.nr_partial > min_partial) discard_slab(n, s);
}

// The sibling of fill's detached walks: the links a free writes miss when
// another CPU last held the objects (a sheaf flushed by reclaim, a thread
// freeing what it never touched), so each run of objects of one slab is
// linked among itself before any lock is taken, and the list_lock covers one
// link and the counts per run. A slab with a run still to splice keeps that
// run in inuse, so no earlier splice discards it (runs of one slab need not
// be adjacent: A A B A).
void KmemCache::free_batch(void* const* objs, unsigned n) {
  constexpr unsigned kChunk = 64;
  struct Run {
    Slab* s;
    unsigned first, count;
  };
  while (n) {
    unsigned m = n < kChunk ? n : kChunk;
    Run runs[kChunk];
    unsigned nr = 0;
    for (unsigned i = 0; i < m;) {
      Slab* s = obj_to_slab(objs[i]);
      unsigned j = i + 1;
      for (; j < m && obj_to_slab(objs[j]) == s; ++j) {
        auto** o = static_cast<void**>(objs[j]);
        NS_CHECK(o != objs[j - 1], "double free of %p (cache %s)", static_cast<void*>(o), name);
        *o = encode(s, objs[j - 1], o);
      }
      runs[nr++] = {s, i, j - i};
      i = j;
    }
    for (unsigned r = 0; r < nr;) {
      unsigned nid = runs[r].s->nid;
      KmemCacheNode& nd = node[nid];
      LockGuard<Mutex> g(nd.list_lock);
      for (; r < nr && runs[r].s->nid == nid; ++r)
        splice_run_locked(nd, runs[r].s, objs + runs[r].first, runs[r].count);
    }
    objs += m;
    n -= m;
  }
}

void KmemCache::free_remote(Slab* s, void* obj) {
  auto** o = static_cast<void**>(obj);
  // Read before the push: once obj is on `remote`, another thread may
  // collect it, empty the slab and give it back, and a new slab may be cut
  // from the same pages (new_slab writes nid). Until then obj keeps the slab.
  KmemCacheNode& nd = node[s->nid];
  std::uintptr_t old = s->remote.load(std::memory_order_relaxed);
  do {
    NS_CHECK(reinterpret_cast<void*>(old & ~kSlabFull) != obj, "double free of %p (cache %s)", obj,
             name);
    *o = encode(s, reinterpret_cast<void*>(old & ~kSlabFull), o);
  } while (!s->remote.compare_exchange_weak(old, reinterpret_cast<std::uintptr_t>(obj),
                                            std::memory_order_release, std::memory_order_relaxed));
  nd.remote_frees.fetch_add(1, std::memory_order_relaxed);
  if (old & kSlabFull) {
    // This free took the slab out of "full": list it so its objects are reused.
    LockGuard<Mutex> g(nd.list_lock);
    nd.partial.push_back(&s->slab_list);
    s->on_partial = 1;
    ++nd.nr_partial;
  }
}

void KmemCache::fork_reset_node(unsigned nid) {
  KmemCacheNode& nd = node[nid];
  nd.partial.init();
  nd.full.init();
  nd.nr_partial = nd.nr_slabs = nd.inuse = 0;
}

void KmemCache::fork_adopt_slab(unsigned nid, Slab* s) {
  if (debug) return debug_fork_adopt_slab(*this, nid, s);
  KmemCacheNode& nd = node[nid];
  ++nd.nr_slabs;
  s->on_partial = 0;
  auto* base = static_cast<char*>(slab_base(s));
  std::size_t span = std::size_t{objects} * size;
  std::uint32_t free_objs = 0;
  bool ok = s->cache == this && s->objects == objects && s->nid == nid;
  for (auto** o = static_cast<void**>(s->freelist); ok && o;) {
    std::uintptr_t off =
        reinterpret_cast<std::uintptr_t>(o) - reinterpret_cast<std::uintptr_t>(base);
    if (off >= span || off % size != 0 || ++free_objs > objects) ok = false;
    if (ok) o = static_cast<void**>(decode(s, *o, o));
  }
  if (!ok) {
    s->freelist = nullptr;
    s->inuse = objects;
    nd.inuse += objects;
    return;
  }
  s->inuse = objects - free_objs;
  nd.inuse += s->inuse;
  if (s->remote.load(std::memory_order_relaxed) & kSlabFull) return;
  nd.partial.push_back(&s->slab_list);
  s->on_partial = 1;
  ++nd.nr_partial;
}

std::size_t KmemCache::shrink(bool all) {
  std::size_t pages = 0;
  for (unsigned nid = 0; nid < pa->nr_nodes(); ++nid) {
    KmemCacheNode& nd = node[nid];
    LockGuard<Mutex> g(nd.list_lock);
    ListNode* it = nd.partial.next;
    while (it != &nd.partial) {
      Slab* s = list_entry<Slab>(it, offsetof(Slab, slab_list));
      it = it->next;
      collect_remote(s);
      if (s->inuse == 0 && (all || nd.nr_partial > min_partial)) {
        discard_slab(nd, s);
        pages += std::size_t{1} << order;
      }
    }
  }
  return pages;
}

}  // namespace numaslub
