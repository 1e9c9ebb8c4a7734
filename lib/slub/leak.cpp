// The leak check at exit (leak.h has what it sees and what it does not).
//
// Mark phase: a worklist of address ranges, seeded with the roots; each
// aligned word of a range that points into a live heap object marks the
// object (a bit per 16-byte granule of the heap, in a two-level table
// mapped on demand) and, the first time, adds its bytes to the worklist.
// Every piece of working memory is a raw mapping, unmapped at the end:
// nothing here allocates from the heap it is scanning.
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>

#include <cstdarg>
#include <cstring>

#include "lib/base/base.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/leak.h"
#include "lib/slub/prof.h"
#include "lib/slub/slub_internal.h"
#include "lib/slub/vmalloc.h"

namespace numaslub {

namespace {

// A growable array in raw mappings.
template <class T>
class Vec {
 public:
  Vec() = default;
  ~Vec() {
    if (p_) sys::munmap(p_, cap_ * sizeof(T));
  }
  Vec(const Vec&) = delete;
  Vec& operator=(const Vec&) = delete;
  bool push(const T& v) {
    if (n_ == cap_ && !grow()) return false;
    p_[n_++] = v;
    return true;
  }
  T pop() { return p_[--n_]; }
  std::size_t size() const { return n_; }
  T& operator[](std::size_t i) { return p_[i]; }
  T* data() { return p_; }

 private:
  bool grow() {
    std::size_t cap = cap_ ? cap_ * 2 : 4096;
    long err = 0;
    void* m = sys::mmap(nullptr, cap * sizeof(T), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &err);
    if (!m) return false;
    if (p_) {
      std::memcpy(m, p_, n_ * sizeof(T));
      sys::munmap(p_, cap_ * sizeof(T));
    }
    p_ = static_cast<T*>(m);
    cap_ = cap;
    return true;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0, cap_ = 0;
};

// In-place heap sort (no allocation, no recursion).
template <class T, class Less>
void heap_sort(T* a, std::size_t n, Less less) {
  auto sift = [&](std::size_t i, std::size_t end) {
    for (;;) {
      std::size_t c = 2 * i + 1;
      if (c >= end) return;
      if (c + 1 < end && less(a[c], a[c + 1])) ++c;
      if (!less(a[i], a[c])) return;
      T t = a[i];
      a[i] = a[c];
      a[c] = t;
      i = c;
    }
  };
  for (std::size_t i = n / 2; i-- > 0;) sift(i, n);
  for (std::size_t end = n; end-- > 1;) {
    T t = a[0];
    a[0] = a[end];
    a[end] = t;
    sift(0, end);
  }
}

struct Range {
  std::uintptr_t lo, hi;
};

// Mark bits, one per 16-byte granule of the heap window, in 16 MiB chunks
// (128 KiB of bits each) mapped when first touched.
class Marks {
 public:
  Marks(std::uintptr_t base, std::size_t size) : base_(base) {
    chunks_ = (size + kChunk - 1) / kChunk;
    long err = 0;
    dir_ = static_cast<std::uint64_t**>(
        sys::mmap(nullptr, chunks_ * sizeof(void*), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, &err));
  }
  ~Marks() {
    if (!dir_) return;
    for (std::size_t i = 0; i < chunks_; ++i)
      if (dir_[i]) sys::munmap(dir_[i], kChunkBits / 8);
    sys::munmap(dir_, chunks_ * sizeof(void*));
  }
  Marks(const Marks&) = delete;
  Marks& operator=(const Marks&) = delete;
  bool ok() const { return dir_ != nullptr; }
  // Sets a's bit; true when it was set already (or cannot be kept).
  bool test_and_set(std::uintptr_t a) {
    std::uint64_t* w = word(a, true);
    if (!w) return true;
    std::uint64_t bit = std::uint64_t{1} << (((a - base_) >> 4) & 63);
    bool was = *w & bit;
    *w |= bit;
    return was;
  }
  bool test(std::uintptr_t a) {
    std::uint64_t* w = word(a, false);
    return w && (*w & (std::uint64_t{1} << (((a - base_) >> 4) & 63)));
  }

 private:
  static constexpr std::size_t kChunk = std::size_t{16} << 20;
  static constexpr std::size_t kChunkBits = kChunk / 16;
  std::uint64_t* word(std::uintptr_t a, bool make) {
    std::size_t off = a - base_, c = off / kChunk;
    if (c >= chunks_) return nullptr;
    if (!dir_[c]) {
      if (!make) return nullptr;
      long err = 0;
      dir_[c] =
          static_cast<std::uint64_t*>(sys::mmap(nullptr, kChunkBits / 8, PROT_READ | PROT_WRITE,
                                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &err));
      if (!dir_[c]) return nullptr;
    }
    return dir_[c] + (off % kChunk) / 16 / 64;
  }
  std::uintptr_t base_;
  std::size_t chunks_ = 0;
  std::uint64_t** dir_ = nullptr;
};

class Scanner {
 public:
  Scanner(const Arena& a, Vec<std::uintptr_t>* maps)
      : arena_(a), base_(a.base()), size_(a.size()), marks_(a.base(), a.size()), maps_(maps) {
    nmaps_ = maps->size() / 2;
  }
  bool ok() const { return marks_.ok(); }

  void add_root(std::uintptr_t lo, std::uintptr_t hi) { scan(lo, hi); }

  // Scans the worklist until it is empty.
  void drain() {
    while (work_.size()) {
      Range r = work_.pop();
      scan(r.lo, r.hi);
    }
  }

  bool heap_marked(std::uintptr_t a) { return marks_.test(a); }
  bool mapping_marked(std::uintptr_t a) {
    long i = find_mapping(a);
    return i >= 0 && (*maps_)[2 * static_cast<std::size_t>(i) + 1] & kMappingMark;
  }

 private:
  // A mapping's length word keeps its mark in the top bit.
  static constexpr std::uintptr_t kMappingMark = std::uintptr_t{1} << 63;

  void scan(std::uintptr_t lo, std::uintptr_t hi) {
    for (lo = (lo + 7) & ~std::uintptr_t{7}; lo + 8 <= hi; lo += 8)
      consider(*reinterpret_cast<const std::uintptr_t*>(lo));
  }

  void consider(std::uintptr_t v) {
    if (v - base_ < size_) return heap_word(v);
    if (nmaps_) {
      long i = find_mapping(v);
      if (i < 0) return;
      std::uintptr_t& len = (*maps_)[2 * static_cast<std::size_t>(i) + 1];
      if (len & kMappingMark) return;
      len |= kMappingMark;
      std::uintptr_t start = (*maps_)[2 * static_cast<std::size_t>(i)];
      work_.push({start, start + (len & ~kMappingMark)});
    }
  }

  // The mapping containing a, by binary search (sorted by start), or -1.
  long find_mapping(std::uintptr_t a) {
    std::size_t lo = 0, hi = nmaps_;
    while (lo < hi) {
      std::size_t mid = (lo + hi) / 2;
      if ((*maps_)[2 * mid] <= a)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo == 0) return -1;
    std::size_t i = lo - 1;
    std::uintptr_t len = (*maps_)[2 * i + 1] & ~kMappingMark;
    return a - (*maps_)[2 * i] < len ? static_cast<long>(i) : -1;
  }

  void heap_word(std::uintptr_t v) {
    const void* p = reinterpret_cast<const void*>(v);
    if (!arena_.is_online(p)) return;
    const Page* pg = arena_.virt_to_page(p);
    if (unsigned cls = pg->slab_class) {
      const KmemCache& c = g_kmem.caches[cls - 1];
      const Page* head = pg - pg->head_off;
      auto base = reinterpret_cast<std::uintptr_t>(arena_.page_to_virt(head));
      // Descriptors another thread is changing may be stale: never follow
      // one off the online heap.
      if (base > v || !arena_.is_online(reinterpret_cast<void*>(base))) return;
      std::uintptr_t start = base, len = kPageSize << c.order;
      if (!c.debug) {  // a debug slab's layout is debug.cpp's: scanned whole
        std::uintptr_t idx = (v - base) / c.size;
        if (idx >= c.objects) return;
        start = base + idx * c.size;
        len = c.size;
        if (kHardened && reinterpret_cast<const std::uintptr_t*>(start)[1] ==
                             free_tag(reinterpret_cast<void*>(start)))
          return;  // a free object
      }
      if (!marks_.test_and_set(start)) work_.push({start, start + len});
      return;
    }
    const Page* head = pg->flags & PG_tail ? pg - pg->head_off : pg;
    auto start = reinterpret_cast<std::uintptr_t>(arena_.page_to_virt(head));
    if (start > v || !arena_.is_online(reinterpret_cast<void*>(start))) return;
    if ((head->flags & (PG_head | PG_large)) != (PG_head | PG_large)) return;
    std::uintptr_t len = head->priv[0] << kPageShift;
    if (v - start >= len) return;
    if (marks_.test_and_set(start)) return;
    // A sampled block holds the size asked for: the rest of its page is
    // old contents of the page, not the object's (stale pointers).
    if (head->flags & PG_sampled)
      if (const auto* r = reinterpret_cast<const ProfRecord*>(head->priv[3]))
        if (r->addr == start && r->size < len) len = (r->size + 7) & ~std::uintptr_t{7};
    work_.push({start, start + len});
  }

  const Arena& arena_;
  std::uintptr_t base_;
  std::size_t size_;
  Marks marks_;
  Vec<std::uintptr_t>* maps_;
  std::size_t nmaps_ = 0;
  Vec<Range> work_;
};

// One line of /proc/self/maps.
struct MapLine {
  std::uintptr_t lo, hi, offset;
  char perms[5];
  bool anon;     // no inode
  bool special;  // [stack], [vdso], [vvar], [heap]...
  bool stack;    // [stack]
};

std::uintptr_t hex(const char*& s) {
  std::uintptr_t v = 0;
  for (;; ++s) {
    unsigned d;
    if (*s >= '0' && *s <= '9')
      d = static_cast<unsigned>(*s - '0');
    else if (*s >= 'a' && *s <= 'f')
      d = static_cast<unsigned>(*s - 'a' + 10);
    else
      return v;
    v = v * 16 + d;
  }
}

bool parse_line(const char* s, MapLine* m) {
  m->lo = hex(s);
  if (*s++ != '-') return false;
  m->hi = hex(s);
  if (*s++ != ' ') return false;
  for (int i = 0; i < 4; ++i) m->perms[i] = *s ? *s++ : '-';
  m->perms[4] = '\0';
  while (*s == ' ') ++s;
  m->offset = hex(s);
  while (*s == ' ') ++s;
  while (*s && *s != ' ') ++s;  // device
  while (*s == ' ') ++s;
  bool inode = false;
  for (; *s >= '0' && *s <= '9'; ++s) inode |= *s != '0';
  while (*s == ' ') ++s;
  m->anon = !inode;
  m->special = *s == '[';
  m->stack = std::strncmp(s, "[stack]", 7) == 0;
  return true;
}

// Reads /proc/self/maps whole into buf (a raw mapping); false without /proc.
bool read_maps(Vec<char>* buf) {
  long fd = sys::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char chunk[4096];
  long n;
  while ((n = sys::read(static_cast<int>(fd), chunk, sizeof chunk)) > 0)
    for (long i = 0; i < n; ++i) buf->push(chunk[i]);
  sys::close(static_cast<int>(fd));
  buf->push('\0');
  return true;
}

// The writable PT_LOAD segments of the ELF module whose first mapping is m.
template <class Fn>
void module_segments(const MapLine& m, Fn fn) {
  auto* eh = reinterpret_cast<const Elf64_Ehdr*>(m.lo);
  if (m.hi - m.lo < sizeof(Elf64_Ehdr) || std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
      eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_phentsize != sizeof(Elf64_Phdr) ||
      eh->e_phoff + std::size_t{eh->e_phnum} * sizeof(Elf64_Phdr) > m.hi - m.lo)
    return;
  auto* ph = reinterpret_cast<const Elf64_Phdr*>(m.lo + eh->e_phoff);
  std::uintptr_t first = ~std::uintptr_t{0};
  for (unsigned i = 0; i < eh->e_phnum; ++i)
    if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < first) first = ph[i].p_vaddr;
  if (first == ~std::uintptr_t{0}) return;
  std::uintptr_t bias = m.lo - (first & ~(kPageSize - 1));
  for (unsigned i = 0; i < eh->e_phnum; ++i)
    if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_W))
      fn(bias + ph[i].p_vaddr, bias + ph[i].p_vaddr + ph[i].p_memsz);
}

// The roots (leak.h), scanned into s. `sp` is the exiting thread's stack
// pointer (its registers were spilled above it).
// `skip` (sorted by lo) are the allocator's own memory: never roots.
void scan_roots(Scanner* s, const char* maps, std::uintptr_t sp, const Range* skip,
                unsigned nskip) {
  auto skipped = [&](std::uintptr_t lo, std::uintptr_t hi) {
    for (unsigned i = 0; i < nskip; ++i)
      if (lo < skip[i].hi && hi > skip[i].lo) return true;
    return false;
  };
  // [lo, hi) less the skipped ranges inside it (the allocator's globals
  // that hold the heap's base, in a module's data).
  auto add = [&](std::uintptr_t lo, std::uintptr_t hi) {
    for (unsigned i = 0; i < nskip && lo < hi; ++i) {
      if (skip[i].hi <= lo || skip[i].lo >= hi) continue;
      if (skip[i].lo > lo) s->add_root(lo, skip[i].lo);
      lo = skip[i].hi;
    }
    if (lo < hi) s->add_root(lo, hi);
  };
  // The calling thread's static TLS (below the thread pointer, x86-64's
  // variant II) and its TCB: libc keeps pointers to its own blocks there
  // (dlerror's result, for one), in memory the rules below may not cover
  // (the [heap] of a static program, ld.so's early mappings). Bounded by the
  // mapping that holds the thread pointer.
  const auto tp = reinterpret_cast<std::uintptr_t>(__builtin_thread_pointer());
  constexpr std::uintptr_t kStaticTlsScan = 64 << 10, kTcbScan = 4 << 10;
  MapLine prev{};
  bool have_prev = false;
  for (const char* line = maps; *line;) {
    MapLine m{};
    bool ok = parse_line(line, &m);
    while (*line && *line != '\n') ++line;
    if (*line) ++line;
    if (!ok) continue;
    bool readable = m.perms[0] == 'r', writable = m.perms[1] == 'w', priv = m.perms[3] == 'p';
    if (tp - m.lo < m.hi - m.lo && readable && writable) {
      std::uintptr_t lo = tp - m.lo > kStaticTlsScan ? tp - kStaticTlsScan : m.lo;
      std::uintptr_t hi = m.hi - tp > kTcbScan ? tp + kTcbScan : m.hi;
      add(lo, hi);
    }
    if (!m.anon && m.offset == 0 && readable) {
      module_segments(m, add);
    } else if (sp - m.lo < m.hi - m.lo) {
      s->add_root(sp, m.hi);  // the exiting thread's stack
    } else if (m.stack && readable && writable) {
      s->add_root(m.lo, m.hi);  // the main thread's, when another thread exits
    } else if (m.anon && !m.special && readable && writable && priv && have_prev && prev.anon &&
               prev.hi == m.lo && prev.perms[0] == '-' && prev.perms[1] == '-' &&
               !skipped(m.lo, m.hi)) {
      s->add_root(m.lo, m.hi);  // a thread stack above its guard page
    }
    s->drain();
    prev = m;
    have_prev = true;
  }
}

struct Sample {
  std::uintptr_t addr;
  std::uint64_t size;
  std::uint32_t index;  // the record's
};

bool same_stack(const ProfRecord& a, const ProfRecord& b) {
  return a.nframes == b.nframes &&
         std::memcmp(a.frames, b.frames, a.nframes * sizeof a.frames[0]) == 0;
}

bool stack_less(const ProfRecord& a, const ProfRecord& b) {
  if (a.nframes != b.nframes) return a.nframes < b.nframes;
  return std::memcmp(a.frames, b.frames, a.nframes * sizeof a.frames[0]) < 0;
}

struct Group {
  std::size_t first, count;
  std::uint64_t bytes;  // as sampled
  double scaled_bytes, scaled_count;
};

void line(int fd, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void line(int fd, const char* fmt, ...) {
  char buf[512];
  BufWriter w(buf, sizeof buf);
  std::va_list ap;
  va_start(ap, fmt);
  w.vprintf(fmt, ap);
  va_end(ap);
  write_all(fd, buf, w.size());
}

// The report of the leaked samples in `leaked` (sorted here).
void report(int fd, Vec<ProfRecord>* leaked, std::uint64_t interval, std::size_t reach_n,
            double reach_bytes, std::size_t tracked) {
  bool all = interval <= 1;
  ProfRecord* a = leaked->data();
  std::size_t n = leaked->size();
  heap_sort(a, n, stack_less);
  Vec<Group> groups;
  for (std::size_t i = 0; i < n;) {
    Group g{i, 0, 0, 0, 0};
    for (; i < n && same_stack(a[g.first], a[i]); ++i) {
      double s = prof_scale(a[i].size, interval);
      ++g.count;
      g.bytes += a[i].size;
      g.scaled_bytes += s * static_cast<double>(a[i].size);
      g.scaled_count += s;
    }
    groups.push(g);
  }
  heap_sort(groups.data(), groups.size(),
            [](const Group& x, const Group& y) { return x.scaled_bytes > y.scaled_bytes; });
  line(fd, "=================================================================\n");
  if (all)
    line(fd, "numaslub: leak check at exit (prof_sample=1: %zu allocations tracked)\n", tracked);
  else
    line(fd,
         "numaslub: leak check at exit (%zu sampled allocations tracked, prof_sample=%lu; "
         "bytes and counts below are estimates, scaled by the sampling probability)\n",
         tracked, static_cast<unsigned long>(interval));
  double total = 0, total_n = 0;
  for (std::size_t k = 0; k < groups.size(); ++k) {
    const Group& g = groups[k];
    total += g.scaled_bytes;
    total_n += g.scaled_count;
    if (all)
      line(fd, "\nLeak of %lu byte(s) in %zu object(s) allocated from:\n",
           static_cast<unsigned long>(g.bytes), g.count);
    else
      line(fd, "\nLeak of ~%lu byte(s) in ~%lu object(s) (%zu sampled) allocated from:\n",
           static_cast<unsigned long>(g.scaled_bytes + 0.5),
           static_cast<unsigned long>(g.scaled_count + 0.5), g.count);
    const ProfRecord& r = a[g.first];
    for (unsigned f = 0; f < r.nframes; ++f) {
      char where[320];
      stack_trace_describe(r.frames[f], where, sizeof where);
      line(fd, "    #%u %s\n", f, where);
    }
    if (r.nframes == 0) line(fd, "    (no frames)\n");
  }
  line(fd,
       "\nSUMMARY: numaslub: %s%lu byte(s) leaked in %s%lu allocation(s) from %zu stack(s); "
       "still reachable: %s%lu byte(s) in %zu %sallocation(s).\n",
       all ? "" : "~", static_cast<unsigned long>(total + 0.5), all ? "" : "~",
       static_cast<unsigned long>(total_n + 0.5), groups.size(), all ? "" : "~",
       static_cast<unsigned long>(reach_bytes + 0.5), reach_n, all ? "" : "sampled ");
  if (n)
    line(fd,
         "Frames are return addresses: symbolize one with\n"
         "    addr2line -f -C -i -e /path 0xOFF   (the file and +offset in parentheses)\n");
}

// The check, run from leak_check_report, whose frame keeps the exiting
// thread's callee-saved registers.
NS_NOINLINE std::size_t check(int fd, const ProfFileHeader* h, std::size_t bytes) {
  // The stack is scanned from the caller's frame up (its registers are
  // spilled there), not from this one: the locals below name the heap.
  std::uintptr_t sp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)) + 16;
  const Arena& arena = g_kmem.pa->arena();
  Vec<std::uintptr_t> huge;
  for (std::size_t want = vmalloc_list(nullptr, 0) + 16;;) {
    Vec<std::uintptr_t> tmp;
    for (std::size_t i = 0; i < 2 * want; ++i) tmp.push(0);
    std::size_t n = vmalloc_list(tmp.data(), want);
    if (n > want) {
      want = n + 16;
      continue;
    }
    for (std::size_t i = 0; i < 2 * n; ++i) huge.push(tmp[i]);
    break;
  }
  struct Pair {
    std::uintptr_t a, l;
  };
  heap_sort(reinterpret_cast<Pair*>(huge.data()), huge.size() / 2,
            [](const Pair& x, const Pair& y) { return x.a < y.a; });
  Scanner s(arena, &huge);
  Vec<char> maps;
  if (!s.ok() || !read_maps(&maps)) {
    line(fd, "numaslub: leak check: cannot run (no memory for its marks, or no /proc)\n");
    return 0;
  }
  std::size_t pages = arena.size() >> kPageShift;
  auto range_of = [](const void* p, std::size_t n) {
    return Range{reinterpret_cast<std::uintptr_t>(p), reinterpret_cast<std::uintptr_t>(p) + n};
  };
  // The heap, its descriptors, the records (which name every tracked
  // object), and the globals that keep the heap's base (which may be an
  // object's address).
  Range skip[] = {
      {arena.base(), arena.base() + arena.size()},
      range_of(arena.mem_map(), pages * sizeof(Page)),
      range_of(h, bytes),
      range_of(&g_fastpath, sizeof g_fastpath),
      range_of(&arena, sizeof arena),
  };
  heap_sort(skip, sizeof skip / sizeof skip[0],
            [](const Range& x, const Range& y) { return x.lo < y.lo; });
  scan_roots(&s, maps.data(), sp, skip, sizeof skip / sizeof skip[0]);
  Vec<ProfRecord> leaked;
  std::size_t tracked = 0, reach_n = 0;
  double reach_bytes = 0;
  ProfRecord r;
  std::uint64_t n = __atomic_load_n(&h->hwm, __ATOMIC_ACQUIRE);
  for (std::uint64_t i = 0; i < n; ++i) {
    if (!prof_read_record(h, i, &r)) continue;
    ++tracked;
    bool reached =
        r.addr - arena.base() < arena.size() ? s.heap_marked(r.addr) : s.mapping_marked(r.addr);
    if (reached) {
      ++reach_n;
      reach_bytes += prof_scale(r.size, h->interval) * static_cast<double>(r.size);
    } else {
      leaked.push(r);
    }
  }
  report(fd, &leaked, h->interval, reach_n, reach_bytes, tracked);
  return leaked.size();
}

}  // namespace

std::size_t leak_check_report(int fd) {
  std::size_t bytes;
  const ProfFileHeader* h = prof_region(&bytes);
  if (!h || !g_kmem.pa) {
    line(fd, "numaslub: leak check at exit: nothing tracked\n");
    return 0;
  }
  __builtin_unwind_init();  // callee-saved registers to this frame's stack
  std::size_t n = check(fd, h, bytes);
  __asm__ volatile("" ::: "memory");
  return n;
}

}  // namespace numaslub
