// slub_debug: the debug caches (the design and the slab layout are in
// debug.h). Every function here that touches a slab holds its node's
// list_lock; the checks report through debug_report.cpp, which aborts unless
// debug_continue is set, in which case the damage is repaired (red zones
// and poison restored, a bad free skipped, a freelist rebuilt from the
// objects' states) and the operation goes on.
#include <cstring>
#include <new>
#include <utility>

#include "lib/base/base.h"
#include "lib/slub/debug.h"
#include "lib/slub/debug_internal.h"
#include "lib/slub/freeptr.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/obj_index.h"
#include "lib/slub/slub_internal.h"

namespace numaslub {

namespace {

constinit bool g_debug_on = false;
constinit std::uint64_t g_tail_key = 0;  // encodes the size word of a block's tail
constinit Mutex g_meta_lock;             // every debug cache's meta_pool

// Freed objects of debug caches held back from reuse, oldest first, linked
// through their free pointer words (encoded with g_quarantine.key).
struct Quarantine {
  Mutex lock;
  void* head = nullptr;
  void* tail = nullptr;
  std::size_t bytes = 0;
  std::size_t count = 0;
  std::size_t limit = 0;  // config().quarantine
  std::uint64_t key = 0;
};
constinit Quarantine g_quarantine;

// ---- set-up ---------------------------------------------------------------

std::uint8_t parse_flags(const char* s, std::size_t n) {
  std::uint8_t f = 0;
  for (std::size_t i = 0; i < n; ++i) switch (s[i] | 0x20) {
      case 'f':
        f |= kDebugF;
        break;
      case 'z':
        f |= kDebugZ;
        break;
      case 'p':
        f |= kDebugP;
        break;
      case 'u':
        f |= kDebugU;
        break;
      default:
        break;  // '-': none
    }
  return f;
}

// The slab layout of a debug cache (debug.h).
void set_geometry(KmemCache& c, std::uint8_t flags) {
  c.debug = flags;
  DebugLayout& l = lay(c);
  std::uint32_t align = c.size & (0u - c.size);  // objects' alignment, as plain slabs give
  if (align < 16) align = 16;
  l.red_left = (flags & kDebugZ) ? 16 : 0;
  l.fp_off = c.size + l.red_left;
  l.stride = static_cast<std::uint32_t>(align_up(std::size_t{l.red_left} + l.fp_off + 8, align));
  l.slab_off = l.red_left % align ? align - l.red_left % align : 0;
  // At least order 1 (the metadata pointer lives in the second page's
  // descriptor) and 8 objects where the largest order allows.
  unsigned order = 1;
  while (order < kMaxSlabOrder && (kPageSize << order) < l.slab_off + 8 * std::size_t{l.stride})
    ++order;
  c.order = order;
  c.objects = static_cast<std::uint32_t>(((kPageSize << order) - l.slab_off) / l.stride);
  // Debug slabs add nothing to Zone::touched_pages (nor take anything back
  // when discard_slab frees them): thp=auto leaves them out.
  c.touched_pages = 0;
}

DebugMeta* make_meta(const KmemCache& c) {
  std::size_t n = c.objects;
  std::size_t bytes = align_up(sizeof(DebugMeta), 16) + align_up(n, 16) + align_up(4 * n, 16);
  if (c.debug & kDebugU) bytes += 2 * n * sizeof(Track);
  auto* raw = static_cast<char*>(boot_alloc(bytes));
  if (!raw) return nullptr;
  auto* m = new (raw) DebugMeta{};
  char* p = raw + align_up(sizeof(DebugMeta), 16);
  m->state = reinterpret_cast<std::uint8_t*>(p);
  p += align_up(n, 16);
  m->orig = reinterpret_cast<std::uint32_t*>(p);
  p += align_up(4 * n, 16);
  m->tracks = (c.debug & kDebugU) ? reinterpret_cast<Track*>(p) : nullptr;
  return m;
}

// ---- helpers --------------------------------------------------------------

KmemCache& cache_of(const Page* page) {
  return g_kmem.caches[page->slab_class - 1];
}

void to_full(KmemCacheNode& n, Slab* s) {
  if (s->on_partial) --n.nr_partial;
  s->on_partial = 0;
  ListNode::unlink(&s->slab_list);
  n.full.push_back(&s->slab_list);
}

void to_partial(KmemCacheNode& n, Slab* s) {
  if (s->on_partial) return;
  ListNode::unlink(&s->slab_list);
  n.partial.push_front(&s->slab_list);
  s->on_partial = 1;
  ++n.nr_partial;
}

// The first byte of [from, to) that is not `want`, or null.
const std::uint8_t* first_not(const std::uint8_t* from, const std::uint8_t* to, std::uint8_t want) {
  const std::uint64_t pattern = 0x0101010101010101ULL * want;
  for (; from < to && (reinterpret_cast<std::uintptr_t>(from) & 7); ++from)
    if (*from != want) return from;
  for (; to - from >= 32; from += 32) {  // a word at a time, four at once
    const auto* w = reinterpret_cast<const std::uint64_t*>(from);
    if (((w[0] ^ pattern) | (w[1] ^ pattern) | (w[2] ^ pattern) | (w[3] ^ pattern)) != 0) break;
  }
  for (; to - from >= 8; from += 8)
    if (*reinterpret_cast<const std::uint64_t*>(from) != pattern) break;
  for (; from < to; ++from)
    if (*from != want) return from;
  return nullptr;
}

void capture_track(Track* t) {
  t->when_ns = now_ns();
  t->tid = this_thread_id();
  t->cpu = current_cpu();
  unsigned n = debug_user_stack(t->frames, kTrackFrames);
  if (n < kTrackFrames) t->frames[n] = 0;
}

}  // namespace

// The calling thread's stack without the allocator's frames: those up to
// the outermost entry point of this layer (the slow paths the shim's fast
// paths call), then those of the shared library itself.
unsigned debug_user_stack(std::uintptr_t* out, unsigned max) {
  std::uintptr_t pcs[40], fns[40];
  unsigned n = stack_trace_capture(pcs, 40, 0, fns);
  const std::uintptr_t entries[] = {
      reinterpret_cast<std::uintptr_t>(&kmalloc_slow),
      reinterpret_cast<std::uintptr_t>(&kmalloc_slow_asked),
      reinterpret_cast<std::uintptr_t>(&kfree_slow),
      reinterpret_cast<std::uintptr_t>(&kfree_sized_slow),
      reinterpret_cast<std::uintptr_t>(&krealloc),
      reinterpret_cast<std::uintptr_t>(&kcalloc),
      reinterpret_cast<std::uintptr_t>(&kmalloc_aligned),
      reinterpret_cast<std::uintptr_t>(&kmalloc_node),
      reinterpret_cast<std::uintptr_t>(&kcheck_foreign),
  };
  unsigned first = 0;
  for (unsigned i = 0; i < n && i < 16; ++i)
    for (std::uintptr_t e : entries)
      if (fns[i] == e) first = i + 1;
  while (first < n && stack_trace_in_library(pcs[first])) ++first;
  unsigned k = 0;
  for (; first < n && k < max; ++first) out[k++] = pcs[first];
  return k;
}

long SlubDebug::index(const KmemCache& c, const Slab* s, const void* p) {
  std::uintptr_t off =
      reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(slab_base(c, s));
  std::uintptr_t first = std::uintptr_t{lay(c).slab_off} + lay(c).red_left;
  if (off < first) return -1;
  off -= first;
  if (off % lay(c).stride || off / lay(c).stride >= s->objects) return -1;
  return static_cast<long>(off / lay(c).stride);
}

void SlubDebug::release_meta(KmemCache& c, Slab* s) {
  Page* second = reinterpret_cast<Page*>(s) + 1;
  auto* m = reinterpret_cast<DebugMeta*>(second->priv[0]);
  second->priv[0] = 0;
  if (!m) return;
  LockGuard<Mutex> g(g_meta_lock);
  m->next = lay(c).meta_pool;
  lay(c).meta_pool = m;
}

namespace {

// The operations, with the friend's access to KmemCache.
struct Ops : SlubDebug {
  // Fills a free object's red zones and poison (debug.h).
  static void init_free(const KmemCache& c, char* obj) {
    if (c.debug & kDebugZ) {
      std::memset(obj - lay(c).red_left, kRedInactive, lay(c).red_left);
      std::memset(obj + c.size, kRedInactive, lay(c).fp_off - c.size);
      char* pad = obj + lay(c).fp_off + 8;
      std::memset(pad, kRedInactive,
                  static_cast<std::size_t>(obj - lay(c).red_left + lay(c).stride - pad));
    }
    if (c.debug & kDebugP) {
      std::memset(obj, kPoisonFree, c.size - 1);
      obj[c.size - 1] = static_cast<char>(kPoisonEnd);
    }
  }

  // Fills a newly allocated object (asked for with req bytes).
  static void init_live(const KmemCache& c, char* obj, std::size_t req) {
    if (c.debug & kDebugP) std::memset(obj, kPoisonInuse, c.size);
    if (c.debug & kDebugZ) {
      std::memset(obj - lay(c).red_left, kRedActive, lay(c).red_left);
      std::size_t used = debug_usable(static_cast<std::uint32_t>(req));
      std::memset(obj + used, kRedActive, c.size - used);  // the kmalloc red zone
      std::memset(obj + c.size, kRedActive, lay(c).stride - lay(c).red_left - c.size);
    }
  }

  // Checks [from, to) against want; a mismatch is reported (as `what`) and
  // restored. Returns 1 for a problem, else 0.
  static unsigned check_bytes(const KmemCache& c, const Slab* s, unsigned idx, const char* what,
                              std::uint8_t* from, std::uint8_t* to, std::uint8_t want) {
    const std::uint8_t* bad = first_not(from, to, want);
    if (!bad) return 0;
    const std::uint8_t* end = to;
    while (end[-1] == want) --end;
    char* slot = object(c, s, idx) - lay(c).red_left;
    DebugReport r(c, "%s overwritten", what);
    r.mismatch(slot, bad, end, want);
    r.object(s, idx);
    std::memset(from, want, static_cast<std::size_t>(to - from));
    r.line("FIX %s: Restoring %s %p-%p=0x%x", c.name, what, static_cast<void*>(from),
           static_cast<void*>(to - 1), want);
    r.done();
    return 1;
  }

  // A free (or quarantined) object's red zones and poison.
  static unsigned check_free_object(const KmemCache& c, const Slab* s, unsigned idx) {
    auto* obj = reinterpret_cast<std::uint8_t*>(object(c, s, idx));
    unsigned bad = 0;
    if (c.debug & kDebugZ) {
      bad += check_bytes(c, s, idx, "Left Redzone", obj - lay(c).red_left, obj, kRedInactive);
      bad +=
          check_bytes(c, s, idx, "Right Redzone", obj + c.size, obj + lay(c).fp_off, kRedInactive);
      bad += check_bytes(c, s, idx, "Object padding", obj + lay(c).fp_off + 8,
                         obj - lay(c).red_left + lay(c).stride, kRedInactive);
    }
    if (c.debug & kDebugP) {
      bad += check_bytes(c, s, idx, "Poison", obj, obj + c.size - 1, kPoisonFree);
      bad += check_bytes(c, s, idx, "Poison", obj + c.size - 1, obj + c.size, kPoisonEnd);
    }
    return bad;
  }

  // A live object's red zones (the kmalloc red zone included).
  static unsigned check_live_object(const KmemCache& c, const Slab* s, unsigned idx) {
    if (!(c.debug & kDebugZ)) return 0;
    auto* obj = reinterpret_cast<std::uint8_t*>(object(c, s, idx));
    std::size_t used = debug_usable(meta(s)->orig[idx]);
    unsigned bad = check_bytes(c, s, idx, "Left Redzone", obj - lay(c).red_left, obj, kRedActive);
    bad += check_bytes(c, s, idx, "kmalloc Redzone", obj + used, obj + c.size, kRedActive);
    bad += check_bytes(c, s, idx, "Right Redzone", obj + c.size,
                       obj - lay(c).red_left + lay(c).stride, kRedActive);
    return bad;
  }

  // The slab's padding (before the first slot, after the last).
  static unsigned check_padding(const KmemCache& c, const Slab* s) {
    if (!(c.debug & (kDebugZ | kDebugP))) return 0;
    auto* base = reinterpret_cast<std::uint8_t*>(slab_base(c, s));
    unsigned bad = 0;
    std::uint8_t* tail = base + lay(c).slab_off + std::size_t{c.objects} * lay(c).stride;
    for (auto [from, to] : {std::pair{base, base + lay(c).slab_off},
                            std::pair{tail, base + (kPageSize << c.order)}}) {
      const std::uint8_t* p = first_not(from, to, kPoisonInuse);
      if (!p) continue;
      const std::uint8_t* end = to;
      while (end[-1] == kPoisonInuse) --end;
      DebugReport r(c, "Padding overwritten");
      r.mismatch(base, p, end, kPoisonInuse);
      r.slab(s);
      const std::uint8_t* line = p - (reinterpret_cast<std::uintptr_t>(p) & 15);
      std::size_t n = static_cast<std::size_t>(to - line);
      r.hexdump("Padding ", line, n < 64 ? n : 64);
      std::memset(from, kPoisonInuse, static_cast<std::size_t>(to - from));
      r.line("FIX %s: Restoring Padding %p-%p=0x%x", c.name, static_cast<void*>(from),
             static_cast<void*>(to - 1), kPoisonInuse);
      r.done();
      ++bad;
    }
    return bad;
  }

  // The next pointer in free object obj, checked: null or an object of s.
  // False (reported) when it is neither.
  static bool next_free(const KmemCache& c, const Slab* s, void* obj, void** next) {
    void** w = fp_word(c, obj);
    *next = decode(c, s, *w, w);
    if (!*next || index(c, s, *next) >= 0) return true;
    long idx = index(c, s, obj);
    DebugReport r(c, "Freepointer corrupt");
    r.line("INFO: free object %p holds next %p, not an object of slab %p", obj, *next,
           static_cast<void*>(slab_base(c, s)));
    r.object(s, static_cast<unsigned>(idx));
    r.done();
    return false;
  }

  // Rebuilds s's freelist and counts from its objects' states (the repair
  // of a corrupt freelist).
  static void rebuild_freelist(KmemCache& c, KmemCacheNode& nd, Slab* s) {
    DebugMeta* m = meta(s);
    void* head = nullptr;
    std::uint32_t nfree = 0;
    for (unsigned i = s->objects; i-- > 0;) {
      if (m->state[i] != kObjFree) continue;
      char* obj = object(c, s, i);
      void** w = fp_word(c, obj);
      *w = encode(c, s, head, w);
      head = obj;
      ++nfree;
    }
    s->freelist = head;
    std::uint32_t inuse = s->objects - nfree;
    nd.inuse = nd.inuse - s->inuse + inuse;
    s->inuse = inuse;
    if (nfree)
      to_partial(nd, s);
    else
      to_full(nd, s);
  }

  // F: the whole freelist of s, each step checked; a bad one is reported
  // and the list rebuilt. Returns the number of problems (0 or 1).
  static unsigned check_freelist(KmemCache& c, KmemCacheNode& nd, Slab* s) {
    DebugMeta* m = meta(s);
    unsigned n = 0;
    const char* why = nullptr;
    void* bad = nullptr;
    for (void* o = s->freelist; o;) {
      long idx = index(c, s, o);
      if (idx < 0) {
        why = "points at";
        bad = o;
        break;
      }
      if (m->state[idx] != kObjFree) {
        why = "holds an object that is not free:";
        bad = o;
        break;
      }
      if (++n > s->objects) {
        why = "loops back to";
        bad = o;
        break;
      }
      void** w = fp_word(c, o);
      void* next = decode(c, s, *w, w);
      if (next && index(c, s, next) < 0) {
        why = "has a free object whose free pointer is corrupt:";
        bad = o;
        break;
      }
      o = next;
    }
    std::uint32_t nfree = 0;
    for (unsigned i = 0; i < s->objects; ++i) nfree += m->state[i] == kObjFree;
    if (!why && n == nfree && s->inuse == s->objects - nfree) return 0;
    DebugReport r(c, "Freechain corrupt");
    if (why)
      r.line("INFO: the freelist of slab %p %s %p", static_cast<void*>(slab_base(c, s)), why, bad);
    else
      r.line("INFO: Wrong object count. Counter is %u but counted were %u (on the freelist: %u)",
             s->objects - s->inuse, nfree, n);
    r.slab(s);
    long idx = bad ? index(c, s, bad) : -1;
    if (idx >= 0) r.object(s, static_cast<unsigned>(idx));
    rebuild_freelist(c, nd, s);
    r.line("FIX %s: Rebuilt the freelist from the objects' states (%u free)", c.name,
           s->objects - s->inuse);
    r.done();
    return 1;
  }

  static Slab* new_slab(KmemCache& c, unsigned nid) {
    DebugMeta* m;
    {
      LockGuard<Mutex> g(g_meta_lock);
      m = lay(c).meta_pool;
      if (m) lay(c).meta_pool = m->next;
    }
    if (!m && !(m = make_meta(c))) return nullptr;
    Page* head = c.pa->alloc_pages(static_cast<int>(nid), c.order);
    if (!head) {
      LockGuard<Mutex> g(g_meta_lock);
      m->next = lay(c).meta_pool;
      lay(c).meta_pool = m;
      return nullptr;
    }
    std::size_t pages = std::size_t{1} << c.order;
    for (std::size_t i = 0; i < pages; ++i) {
      head[i].flags = i ? PG_tail : 0u;  // the head's PG_slab comes last
      head[i].head_off = static_cast<std::uint32_t>(i);
      head[i].slab_class = static_cast<std::uint8_t>(c.cls + 1);
      head[i].sheaf_off = 0;  // never a fast path's (debug.h)
    }
    head[1].priv[0] = reinterpret_cast<std::uintptr_t>(m);
    auto* s = reinterpret_cast<Slab*>(head);
    s->order = static_cast<std::uint8_t>(c.order);
    s->cache = &c;
    s->remote.store(0, std::memory_order_relaxed);
    s->secret_gen = c.secret_gen;
    s->inuse = 0;
    s->objects = static_cast<std::uint16_t>(c.objects);
    s->on_partial = 0;
    s->slab_list.init();
    s->nid = static_cast<std::uint8_t>(c.pa->page_to_nid(head));
    std::memset(m->state, kObjFree, c.objects);
    std::memset(m->orig, 0, 4 * std::size_t{c.objects});
    if (m->tracks) std::memset(m->tracks, 0, 2 * sizeof(Track) * c.objects);
    char* base = slab_base(c, s);
    if (c.debug & (kDebugZ | kDebugP)) {
      std::memset(base, kPoisonInuse, lay(c).slab_off);
      char* tail = base + lay(c).slab_off + std::size_t{c.objects} * lay(c).stride;
      std::memset(tail, kPoisonInuse,
                  static_cast<std::size_t>(base + (kPageSize << c.order) - tail));
    }
    void* next = nullptr;
    for (unsigned i = c.objects; i-- > 0;) {
      char* obj = object(c, s, i);
      init_free(c, obj);
      void** w = fp_word(c, obj);
      *w = encode(c, s, next, w);
      next = obj;
    }
    s->freelist = next;
    signal_fence();
    head->flags = PG_head | PG_slab;
    return s;
  }

  // Takes the first free object of s (under nd's list_lock), checking it;
  // null when s turns out to have none.
  static void* take(KmemCache& c, KmemCacheNode& nd, Slab* s) {
    DebugMeta* m = meta(s);
    for (int attempt = 0; attempt < 4; ++attempt) {
      if (c.debug & kDebugF) check_freelist(c, nd, s);
      void* obj = s->freelist;
      if (!obj) {
        to_full(nd, s);
        return nullptr;
      }
      long idx = index(c, s, obj);  // the freelist holds objects of s only
      void* next;
      if (idx < 0 || m->state[idx] != kObjFree) {
        DebugReport r(c, "Freechain corrupt");
        r.line("INFO: the freelist of slab %p starts at %p, which is not a free object",
               static_cast<void*>(slab_base(c, s)), obj);
        r.slab(s);
        rebuild_freelist(c, nd, s);
        r.done();
        continue;
      }
      if (!next_free(c, s, obj, &next)) {
        rebuild_freelist(c, nd, s);
        continue;
      }
      check_free_object(c, s, static_cast<unsigned>(idx));
      s->freelist = next;
      m->state[idx] = kObjLive;
      ++s->inuse;
      ++nd.inuse;
      if (!next) to_full(nd, s);
      return obj;
    }
    return nullptr;
  }

  // Puts object idx of s (checked and poisoned already) on its freelist.
  static void release(KmemCache& c, KmemCacheNode& nd, Slab* s, unsigned idx) {
    char* obj = object(c, s, idx);
    void** w = fp_word(c, obj);
    *w = encode(c, s, s->freelist, w);
    s->freelist = obj;
    meta(s)->state[idx] = kObjFree;
    --s->inuse;
    --nd.inuse;
    to_partial(nd, s);
    if (s->inuse == 0 && nd.nr_partial > c.min_partial) discard(c, nd, s);
  }

  // Reports a free or realloc (op) of p, which starts no object of s.
  static void report_invalid(const KmemCache& c, const Slab* s, const void* p, const char* op) {
    std::uintptr_t off =
        reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(slab_base(c, s));
    std::uintptr_t first = lay(c).slab_off;
    if (off < first || (off - first) / lay(c).stride >= s->objects) {
      DebugReport r(c, "Invalid object pointer %p: %s of a pointer in the padding of slab %p", p,
                    op, static_cast<void*>(slab_base(c, s)));
      r.slab(s);
      r.done();
      return;
    }
    unsigned idx = static_cast<unsigned>((off - first) / lay(c).stride);
    const char* obj = object(c, s, idx);
    const char* cp = static_cast<const char*>(p);
    if (cp >= obj && cp < obj + c.size) {
      DebugReport r(c, "Invalid object pointer %p: %s of a pointer %zu bytes into object %p", p, op,
                    static_cast<std::size_t>(cp - obj), static_cast<const void*>(obj));
      r.object(s, idx);
      r.done();
    } else {
      DebugReport r(c, "Invalid object pointer %p: %s of a pointer into the red zone of object %p",
                    p, op, static_cast<const void*>(obj));
      r.object(s, idx);
      r.done();
    }
  }

  static void report_not_live(const KmemCache& c, const Slab* s, unsigned idx, const char* op) {
    const void* p = object(c, s, idx);
    if (op[0] == 'f') {
      DebugReport r(c, "Object already free: double free of %p%s", p,
                    meta(s)->state[idx] == kObjQuarantined ? " (in quarantine)" : "");
      r.object(s, idx);
      r.done();
    } else {
      DebugReport r(c, "Object already free: %s of %p, a freed object (use after free)", op, p);
      r.object(s, idx);
      r.done();
    }
  }

  static void quarantine_put(KmemCache& c, void* p);
  static void quarantine_release(void* obj);
};

// ---- quarantine -------------------------------------------------------------

void** qlink(void* obj) {
  Page* page = g_kmem.pa->virt_to_page(obj);
  return SlubDebug::fp_word(cache_of(page), obj);
}
void* qencode(void* ptr, void** where) {
  return freeptr_encode(ptr, g_quarantine.key, where);
}
void* qdecode(void* stored, void** where) {
  return freeptr_decode(stored, g_quarantine.key, where);
}

// Whether p can be a quarantined object: the start of an object of a debug
// slab (its state is checked under its node's lock when it leaves).
bool quarantine_candidate(const void* p) {
  if (!g_kmem.pa->owns(p)) return false;
  Page* page = g_kmem.pa->virt_to_page(p);
  if (!page->slab_class || !debug_page(page)) return false;
  KmemCache& c = cache_of(page);
  return SlubDebug::index(c, c.obj_to_slab(p), p) >= 0;
}

// Takes the oldest quarantined object (under the quarantine lock), or null.
// A corrupt link is reported and the rest of the queue dropped (its objects
// stay quarantined: leaked, never handed out).
void* quarantine_pop_locked() {
  Quarantine& q = g_quarantine;
  void* obj = q.head;
  if (!obj) return nullptr;
  void** w = qlink(obj);
  void* next = qdecode(*w, w);
  if (next && !quarantine_candidate(next)) {
    Page* page = g_kmem.pa->virt_to_page(obj);
    KmemCache& c = cache_of(page);
    DebugReport r(c, "Quarantine corrupt: quarantined object %p links to %p", obj, next);
    Slab* s = c.obj_to_slab(obj);
    r.object(s, static_cast<unsigned>(SlubDebug::index(c, s, obj)));
    r.line("FIX %s: Dropped the rest of the quarantine (%zu objects, leaked)", c.name, q.count - 1);
    r.done();
    next = nullptr;
    q.count = 1;
    q.bytes = c.size;
  }
  q.head = next;
  if (!next) q.tail = nullptr;
  --q.count;
  q.bytes -= cache_of(g_kmem.pa->virt_to_page(obj)).size;
  return obj;
}

void Ops::quarantine_put(KmemCache& c, void* p) {
  Quarantine& q = g_quarantine;
  void* evict[16];
  unsigned n = 0;
  {
    LockGuard<Mutex> g(q.lock);
    void** w = fp_word(c, p);
    *w = qencode(nullptr, w);
    if (q.tail) {
      void** tw = qlink(q.tail);
      *tw = qencode(p, tw);
    } else {
      q.head = p;
    }
    q.tail = p;
    q.bytes += c.size;
    ++q.count;
    while (q.bytes > q.limit && n < 16)
      if (void* o = quarantine_pop_locked()) evict[n++] = o;
  }
  for (unsigned i = 0; i < n; ++i) quarantine_release(evict[i]);
}

// A quarantined object goes to its slab's freelist, checked first: a
// write after free while it waited shows in its poison or red zones.
void Ops::quarantine_release(void* obj) {
  Page* page = g_kmem.pa->virt_to_page(obj);
  KmemCache& c = cache_of(page);
  Slab* s = c.obj_to_slab(obj);
  KmemCacheNode& nd = c.node[s->nid];
  LockGuard<Mutex> g(nd.list_lock);
  long idx = index(c, s, obj);
  if (idx < 0 || meta(s)->state[idx] != kObjQuarantined) {
    DebugReport r(c, "Quarantine corrupt: %p is not a quarantined object", obj);
    r.slab(s);
    r.done();
    return;
  }
  check_free_object(c, s, static_cast<unsigned>(idx));
  release(c, nd, s, static_cast<unsigned>(idx));
}

}  // namespace

// ---- the API ----------------------------------------------------------------

constinit DebugLayout g_debug_layout[kNrClasses];

constinit bool g_debug_tails = false;

void debug_setup(KmemCache* caches, unsigned nr) {
  const char* text = config().slub_debug;
  std::size_t len = std::strlen(text);
  if (len == 0) return;
  std::uint8_t flags[kNrClasses] = {};
  std::uint8_t all = 0;
  bool named[kNrClasses] = {};
  for (int pass = 0; pass < 2; ++pass) {  // unnamed blocks first, then named ones
    for (std::size_t i = 0; i < len;) {
      std::size_t j = i;
      while (j < len && text[j] != ';') ++j;
      std::size_t k = i;
      while (k < j && text[k] != ':') ++k;
      std::uint8_t f = parse_flags(text + i, k - i);
      if (k == j && pass == 0) all = f;
      while (k < j && pass == 1) {
        std::size_t e = ++k;
        while (e < j && text[e] != ':') ++e;
        unsigned c = 0;
        for (; c < nr; ++c)
          if (std::strlen(caches[c].name) == e - k && !std::memcmp(caches[c].name, text + k, e - k))
            break;
        if (c < nr) {
          flags[c] = f;
          named[c] = true;
        } else {
          char name[32] = {};
          std::memcpy(name, text + k, e - k < 31 ? e - k : 31);
          log_msg("slub_debug: no cache '%s' (ignored)", name);
        }
        k = e;
      }
      i = j + 1;
    }
  }
  for (unsigned c = 0; c < nr; ++c) {
    std::uint8_t f = named[c] ? flags[c] : all;
    if (!f) continue;
    set_geometry(caches[c], f);
    g_debug_on = true;
  }
  g_quarantine.limit = config().quarantine;
  g_quarantine.key = random_secret();
  g_tail_key = random_secret();
  if (all & kDebugZ) g_debug_tails = true;  // Z for every cache: large blocks too
}

// A block's tail: [size, len - 8) holds kRedActive, the last word size ^
// key ^ the block's address.
void debug_tail_init(void* p, std::size_t size, std::size_t len) {
  auto* b = static_cast<std::uint8_t*>(p);
  std::size_t used = size ? size : 1;  // a usable size of 0 would read "not ours"
  std::memset(b + used, kRedActive, len - 8 - used);
  std::uint64_t word = size ^ g_tail_key ^ reinterpret_cast<std::uintptr_t>(p);
  std::memcpy(b + len - 8, &word, 8);
}

std::size_t debug_tail_size(const void* p, std::size_t len) {
  std::uint64_t word;
  std::memcpy(&word, static_cast<const std::uint8_t*>(p) + len - 8, 8);
  std::uint64_t size = word ^ g_tail_key ^ reinterpret_cast<std::uintptr_t>(p);
  if (size + kTailBytes > len) return len - kTailBytes;  // a torn word: the most it can be
  return size ? size : 1;
}

void debug_tail_check(void* p, std::size_t len, const char* kind) {
  auto* b = static_cast<std::uint8_t*>(p);
  std::uint64_t word;
  std::memcpy(&word, b + len - 8, 8);
  std::uint64_t size = word ^ g_tail_key ^ reinterpret_cast<std::uintptr_t>(p);
  bool word_ok = size + kTailBytes <= len;
  std::uint8_t* from = b + (word_ok ? (size ? size : 1) : len - kTailBytes);
  const std::uint8_t* bad = first_not(from, b + len - 8, kRedActive);
  if (word_ok && !bad) return;
  std::uint8_t* end = b + len - 8;
  DebugReport r(kind, "Right Redzone overwritten");
  if (bad) {
    const std::uint8_t* last = end;
    while (last[-1] == kRedActive) --last;
    r.mismatch(b, bad, last, kRedActive);
  }
  if (!word_ok) r.line("INFO: the size word at %p after the red zone is overwritten too", end);
  r.line("INFO: Block %p length=%zu asked=%zu", p, len,
         static_cast<std::size_t>(word_ok ? size : len - kTailBytes));
  const std::uint8_t* focus = bad ? bad : end;
  const std::uint8_t* line = focus - (reinterpret_cast<std::uintptr_t>(focus) & 15);
  if (line - 16 >= b) line -= 16;
  std::size_t shown = static_cast<std::size_t>(b + len - line);
  r.hexdump("Redzone", line, shown < 64 ? shown : 64);
  r.line("FIX %s: Restoring Right Redzone %p-%p=0x%x", kind, static_cast<void*>(from),
         static_cast<void*>(end - 1), kRedActive);
  debug_tail_init(p, word_ok ? size : len - kTailBytes, len);
  r.done();
}

bool debug_enabled() {
  return g_debug_on;
}

void* debug_alloc(KmemCache& c, std::size_t req, int nid) {
  Track t;
  if (c.debug & kDebugU) capture_track(&t);
  unsigned n = nid < 0 ? static_cast<unsigned>(c.pa->local_node()) : static_cast<unsigned>(nid);
  for (int attempt = 0; attempt < 8; ++attempt) {
    KmemCacheNode* nd = &c.node[n];
    nd->list_lock.lock();
    if (nd->partial.empty()) {
      nd->list_lock.unlock();
      Slab* s = Ops::new_slab(c, n);
      if (!s) return nullptr;
      nd = Ops::list_new(c, s);
    }
    Slab* s = list_entry<Slab>(nd->partial.next, offsetof(Slab, slab_list));
    if (void* obj = Ops::take(c, *nd, s)) {
      long idx = SlubDebug::index(c, s, obj);
      DebugMeta* m = SlubDebug::meta(s);
      m->orig[idx] = static_cast<std::uint32_t>(req);
      if (m->tracks) m->tracks[2 * idx] = t;
      Ops::init_live(c, static_cast<char*>(obj), req);
      nd->list_lock.unlock();
      return obj;
    }
    nd->list_lock.unlock();
  }
  return nullptr;
}

void debug_free(Page* page, void* p, std::size_t sized) {
  KmemCache& c = cache_of(page);
  Slab* s = c.obj_to_slab(p);
  Track t;
  if (c.debug & kDebugU) capture_track(&t);
  bool quarantined = false;
  {
    KmemCacheNode& nd = c.node[s->nid];
    LockGuard<Mutex> g(nd.list_lock);
    long idx = SlubDebug::index(c, s, p);
    if (idx < 0) return Ops::report_invalid(c, s, p, "free");
    unsigned i = static_cast<unsigned>(idx);
    DebugMeta* m = SlubDebug::meta(s);
    if (m->state[i] != kObjLive) return Ops::report_not_live(c, s, i, "free");
    // Exact, both ways (kmalloc_aligned passes the size asked for too).
    if ((c.debug & kDebugF) && sized != kNoSize && sized != m->orig[i]) {
      DebugReport r(c, "Wrong size on sized free: %p freed with size %zu, allocated with %u", p,
                    sized, m->orig[i]);
      r.object(s, i);
      r.done();
    }
    Ops::check_live_object(c, s, i);
    if (c.debug & kDebugF) Ops::check_freelist(c, nd, s);
    if (m->tracks) m->tracks[2 * i + 1] = t;
    Ops::init_free(c, static_cast<char*>(p));
    if (g_quarantine.limit) {
      m->state[i] = kObjQuarantined;
      quarantined = true;
    } else {
      Ops::release(c, nd, s, i);
    }
  }
  if (quarantined) Ops::quarantine_put(c, p);
}

bool debug_check_live(Page* page, void* p, const char* op) {
  KmemCache& c = cache_of(page);
  Slab* s = c.obj_to_slab(p);
  LockGuard<Mutex> g(c.node[s->nid].list_lock);
  long idx = SlubDebug::index(c, s, p);
  if (idx < 0) {
    Ops::report_invalid(c, s, p, op);
    return false;
  }
  if (SlubDebug::meta(s)->state[idx] != kObjLive) {
    Ops::report_not_live(c, s, static_cast<unsigned>(idx), op);
    return false;
  }
  return true;
}

void debug_unlink_deferred(void* p) {
  if (!g_kmem.pa || !g_kmem.pa->owns(p)) return;
  Page* page = g_kmem.pa->virt_to_page(p);
  if (!page->slab_class || !debug_page(page)) return;
  KmemCache& c = cache_of(page);
  if (!(c.debug & kDebugZ)) return;
  Slab* s = c.obj_to_slab(p);
  long idx = SlubDebug::index(c, s, p);
  if (idx < 0) return;  // the free reports it
  std::size_t used = debug_usable(SlubDebug::meta(s)->orig[idx]);
  if (used < sizeof(void*))
    std::memset(static_cast<char*>(p) + used, kRedActive, sizeof(void*) - used);
}

std::size_t debug_ksize(const Page* page, const void* p) {
  KmemCache& c = cache_of(page);
  Slab* s = c.obj_to_slab(p);
  long idx = SlubDebug::index(c, s, p);
  return idx < 0 ? 0 : debug_usable(SlubDebug::meta(s)->orig[idx]);
}

std::size_t debug_quarantine_drain() {
  std::size_t n = 0;
  for (;;) {
    void* batch[16];
    unsigned k = 0;
    {
      LockGuard<Mutex> g(g_quarantine.lock);
      while (k < 16)
        if (void* o = quarantine_pop_locked())
          batch[k++] = o;
        else
          break;
    }
    if (k == 0) return n;
    for (unsigned i = 0; i < k; ++i) Ops::quarantine_release(batch[i]);
    n += k;
  }
}

std::size_t debug_validate() {
  if (!g_debug_on || !slub_ready()) return 0;
  std::size_t problems = 0;
  debug_set_validating(true);
  for (unsigned cls = 0; cls < kNrClasses; ++cls) {
    KmemCache& c = g_kmem.caches[cls];
    if (!c.debug) continue;
    for (unsigned nid = 0; nid < c.pa->nr_nodes(); ++nid) {
      KmemCacheNode& nd = c.node[nid];
      LockGuard<Mutex> g(nd.list_lock);
      for (ListNode* head : {&nd.partial, &nd.full}) {
        for (ListNode* it = head->next; it != head;) {
          Slab* s = list_entry<Slab>(it, offsetof(Slab, slab_list));
          it = it->next;  // a repair may move s to the other list
          problems += Ops::check_freelist(c, nd, s);
          problems += Ops::check_padding(c, s);
          DebugMeta* m = SlubDebug::meta(s);
          for (unsigned i = 0; i < s->objects; ++i)
            problems += m->state[i] == kObjLive ? Ops::check_live_object(c, s, i)
                                                : Ops::check_free_object(c, s, i);
        }
      }
    }
  }
  debug_set_validating(false);
  return problems;
}

void debug_fork_child(std::uint32_t self) {
  g_meta_lock.reset_if_orphaned(self);
  if (g_quarantine.lock.reset_if_orphaned(self)) {
    // Half-linked maybe: its objects stay quarantined (leaked in the child).
    g_quarantine.head = g_quarantine.tail = nullptr;
    g_quarantine.bytes = g_quarantine.count = 0;
  }
  debug_report_fork_child(self);
}

void debug_fork_adopt_slab(KmemCache& c, unsigned nid, Slab* s) {
  KmemCacheNode& nd = c.node[nid];
  ++nd.nr_slabs;
  s->on_partial = 0;
  s->slab_list.init();
  s->inuse = 0;
  Ops::rebuild_freelist(c, nd, s);  // counts it and lists it on partial or full
}

}  // namespace numaslub
