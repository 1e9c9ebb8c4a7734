// Stack walking for slub_debug (the rules and the safety argument are in
// stack_trace.h). The call-frame interpreter covers what compilers emit for
// x86-64 code: CFA = rsp or rbp + offset, rbp and the return address saved
// at CFA + offset, remember/restore state; anything else (expressions,
// other encodings) ends the walk at that frame.
#include "lib/base/stack_trace.h"

#include <elf.h>
#include <sys/auxv.h>

#include <atomic>
#include <cstring>

#include "lib/base/compiler.h"
#include "lib/base/format.h"
#include "lib/base/syscall.h"

// This library's own ELF header (the shared object's, or the program's it
// is linked into), from the linker.
extern "C" const char __ehdr_start[] __attribute__((visibility("hidden")));

namespace numaslub {

namespace {

#if defined(__x86_64__)
constexpr int kRegRbp = 6;
constexpr int kRegRsp = 7;
constexpr bool kHaveCfi = true;
#else
constexpr int kRegRbp = 29;  // unused: no call-frame walk on other architectures
constexpr int kRegRsp = 31;
constexpr bool kHaveCfi = false;
#endif

struct Module {
  std::uintptr_t text_lo = 0;  // executable segments, lowest to highest
  std::uintptr_t text_hi = 0;
  const std::uint8_t* hdr = nullptr;    // .eh_frame_hdr
  const std::uint8_t* table = nullptr;  // its sorted (pc, fde) pairs
  std::uint32_t fde_count = 0;
  bool shared = false;  // a shared object, not the program
};
constinit Module g_self;
constinit std::atomic<int> g_self_state{0};  // 0: not read, 1: being read, 2: ready

std::uint32_t rd32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

const Module* self_module() {
  int st = g_self_state.load(std::memory_order_acquire);
  if (st == 2) return &g_self;
  if (st == 1 || !g_self_state.compare_exchange_strong(st, 1, std::memory_order_acquire))
    return nullptr;  // another thread reads it now
  Module m;
  auto* eh = reinterpret_cast<const Elf64_Ehdr*>(__ehdr_start);
  auto* ph = reinterpret_cast<const Elf64_Phdr*>(__ehdr_start + eh->e_phoff);
  std::uintptr_t bias = 0;
  bool have_bias = false;
  for (unsigned i = 0; i < eh->e_phnum; ++i)
    if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0) {
      bias = reinterpret_cast<std::uintptr_t>(__ehdr_start) - ph[i].p_vaddr;
      have_bias = true;
      break;
    }
  const std::uint8_t* hdr = nullptr;
  for (unsigned i = 0; have_bias && i < eh->e_phnum; ++i) {
    if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
      std::uintptr_t lo = bias + ph[i].p_vaddr, hi = lo + ph[i].p_memsz;
      if (!m.text_lo || lo < m.text_lo) m.text_lo = lo;
      if (hi > m.text_hi) m.text_hi = hi;
    }
    if (ph[i].p_type == PT_GNU_EH_FRAME)
      hdr = reinterpret_cast<const std::uint8_t*>(bias + ph[i].p_vaddr);
  }
  // Version 1, fde_count udata4, table datarel|sdata4: what GNU ld and lld
  // write. eh_frame_ptr is 4 or 8 bytes.
  if (kHaveCfi && hdr && hdr[0] == 1 && hdr[2] == 0x03 && hdr[3] == 0x3b) {
    unsigned ptr_size = (hdr[1] & 0x0f) == 0x03 || (hdr[1] & 0x0f) == 0x0b ? 4 : 8;
    m.hdr = hdr;
    m.fde_count = rd32(hdr + 4 + ptr_size);
    m.table = hdr + 8 + ptr_size;
  }
  m.shared = reinterpret_cast<std::uintptr_t>(ph) != getauxval(AT_PHDR);
  g_self = m;
  g_self_state.store(2, std::memory_order_release);
  return &g_self;
}

bool in_text(const Module* m, std::uintptr_t pc) {
  return m && pc >= m->text_lo && pc < m->text_hi;
}

// ---- /proc/self/maps ---------------------------------------------------

struct MapLine {
  std::uintptr_t lo, hi, off;
  const char* perms;
  const char* path;  // "" for anonymous
};

std::uintptr_t parse_hex(const char** s) {
  std::uintptr_t v = 0;
  for (;; ++*s) {
    char c = **s;
    unsigned d = c >= '0' && c <= '9'   ? static_cast<unsigned>(c - '0')
                 : c >= 'a' && c <= 'f' ? static_cast<unsigned>(c - 'a' + 10)
                                        : 16u;
    if (d == 16) return v;
    v = v * 16 + d;
  }
}

bool parse_map_line(const char* s, MapLine* l) {
  l->lo = parse_hex(&s);
  if (*s++ != '-') return false;
  l->hi = parse_hex(&s);
  if (*s++ != ' ') return false;
  l->perms = s;
  while (*s && *s != ' ') ++s;
  if (*s++ != ' ') return false;
  l->off = parse_hex(&s);
  for (int field = 0; field < 2; ++field) {  // dev, inode
    while (*s == ' ') ++s;
    while (*s && *s != ' ') ++s;
  }
  while (*s == ' ') ++s;
  l->path = s;
  return true;
}

constinit std::atomic<bool> g_no_proc{false};

// Calls f(line) for each line of /proc/self/maps until it returns true.
// False when the file cannot be read.
template <class F>
bool for_each_map(F&& f) {
  if (g_no_proc.load(std::memory_order_relaxed)) return false;
  long fd = sys::open("/proc/self/maps", 02000000 /*O_CLOEXEC*/);
  if (fd < 0) {
    g_no_proc.store(true, std::memory_order_relaxed);
    return false;
  }
  char buf[1024];
  std::size_t len = 0;
  bool skipping = false;  // inside a line longer than the buffer
  for (bool done = false; !done;) {
    long r = sys::read(static_cast<int>(fd), buf + len, sizeof buf - 1 - len);
    if (r <= 0) break;
    len += static_cast<std::size_t>(r);
    std::size_t start = 0;
    for (std::size_t i = 0; i < len && !done; ++i) {
      if (buf[i] != '\n') continue;
      buf[i] = '\0';
      MapLine l;
      if (!skipping && parse_map_line(buf + start, &l)) done = f(l);
      skipping = false;
      start = i + 1;
    }
    if (start == 0 && len == sizeof buf - 1) {
      skipping = true;  // drop the line's start, keep looking for its end
      len = 0;
      continue;
    }
    std::memmove(buf, buf + start, len - start);
    len -= start;
  }
  sys::close(static_cast<int>(fd));
  return true;
}

// ---- the calling thread's stack ------------------------------------------

struct Bounds {
  std::uintptr_t lo, hi;
};
constinit thread_local Bounds t_stack NS_TLS_IE = {0, 0};

// The mapping holding sp: every byte from sp to its end can be read.
// A signal handler on this thread may walk its stack while the cache is
// being updated: hi is cleared first and set last, so the handler sees the
// old bounds, no bounds (hi = 0: it reads the maps itself) or the new ones,
// never a mix.
bool stack_bounds(std::uintptr_t sp, Bounds* out) {
  Bounds b{__atomic_load_n(&t_stack.lo, __ATOMIC_RELAXED),
           __atomic_load_n(&t_stack.hi, __ATOMIC_RELAXED)};
  if (!(b.lo <= sp && sp < b.hi)) {
    b = {0, 0};
    for_each_map([&](const MapLine& l) {
      if (l.lo <= sp && sp < l.hi) b = {l.lo, l.hi};
      return b.hi != 0;
    });
    if (!b.hi) return false;
    __atomic_store_n(&t_stack.hi, 0, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&t_stack.lo, b.lo, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&t_stack.hi, b.hi, __ATOMIC_RELAXED);
  }
  *out = b;
  return true;
}

struct Walk {
  std::uintptr_t lo, hi;  // readable stack words lie in [lo, hi)
  bool bounded;           // hi is the stack mapping's end
};

bool read_word(const Walk& w, std::uintptr_t a, std::uintptr_t* v) {
  if ((a & 7) || a < w.lo || a > w.hi - 8) return false;
  *v = *reinterpret_cast<const std::uintptr_t*>(a);
  return true;
}

// ---- call-frame information ----------------------------------------------

struct Rule {
  std::uint8_t how;  // 0: same value, 1: saved at CFA + off, 2: undefined, 3: unsupported
  std::int64_t off;
};

struct Row {
  int cfa_reg;
  std::int64_t cfa_off;
  bool cfa_expr;
  Rule rbp, ra;
};

struct Cie {
  std::uint64_t code_align;
  std::int64_t data_align;
  std::uint64_t ra_reg;
  std::uint8_t fde_enc;
  bool has_z;  // FDEs carry augmentation data
  const std::uint8_t* insns;
  const std::uint8_t* end;
};

bool uleb(const std::uint8_t** p, const std::uint8_t* end, std::uint64_t* v) {
  std::uint64_t r = 0;
  for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
    std::uint8_t b = *(*p)++;
    r |= std::uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

bool sleb(const std::uint8_t** p, const std::uint8_t* end, std::int64_t* v) {
  std::uint64_t r = 0;
  unsigned shift = 0;
  for (; *p < end && shift < 64;) {
    std::uint8_t b = *(*p)++;
    r |= std::uint64_t{b & 0x7fu} << shift;
    shift += 7;
    if (!(b & 0x80)) {
      if (shift < 64 && (b & 0x40)) r |= ~std::uint64_t{0} << shift;
      *v = static_cast<std::int64_t>(r);
      return true;
    }
  }
  return false;
}

// A pointer in encoding enc (absolute or pc-relative, no indirection).
bool read_encoded(const std::uint8_t** p, const std::uint8_t* end, std::uint8_t enc,
                  std::uintptr_t* out) {
  const std::uint8_t* field = *p;
  std::uint64_t v = 0;
  std::int64_t sv;
  auto fixed = [&](unsigned n, bool sign) {
    if (end - *p < static_cast<long>(n)) return false;
    std::uint64_t x = 0;
    std::memcpy(&x, *p, n);
    if (sign && n < 8 && (x >> (8 * n - 1)) & 1) x |= ~std::uint64_t{0} << (8 * n);
    *p += n;
    v = x;
    return true;
  };
  bool ok;
  switch (enc & 0x0f) {
    case 0x00:
    case 0x04:
      ok = fixed(8, false);
      break;
    case 0x01:
      ok = uleb(p, end, &v);
      break;
    case 0x02:
      ok = fixed(2, false);
      break;
    case 0x03:
      ok = fixed(4, false);
      break;
    case 0x09:
      ok = sleb(p, end, &sv);
      v = static_cast<std::uint64_t>(sv);
      break;
    case 0x0a:
      ok = fixed(2, true);
      break;
    case 0x0b:
      ok = fixed(4, true);
      break;
    case 0x0c:
      ok = fixed(8, true);
      break;
    default:
      return false;
  }
  if (!ok || (enc & 0x80)) return false;
  if ((enc & 0x70) == 0x10)
    v += reinterpret_cast<std::uintptr_t>(field);
  else if (enc & 0x70)
    return false;
  *out = v;
  return true;
}

bool parse_cie(const std::uint8_t* cie, Cie* out) {
  std::uint32_t len = rd32(cie);
  if (len == 0 || len == 0xffffffffu) return false;
  const std::uint8_t* end = cie + 4 + len;
  const std::uint8_t* p = cie + 8;
  std::uint8_t version = *p++;
  const char* aug = reinterpret_cast<const char*>(p);
  std::size_t alen = std::strlen(aug);
  p += alen + 1;
  if (std::strstr(aug, "eh")) return false;
  if (!uleb(&p, end, &out->code_align) || !sleb(&p, end, &out->data_align)) return false;
  if (version == 1)
    out->ra_reg = *p++;
  else if (!uleb(&p, end, &out->ra_reg))
    return false;
  out->fde_enc = 0;  // absptr
  out->has_z = aug[0] == 'z';
  if (aug[0] == 'z') {
    std::uint64_t n;
    if (!uleb(&p, end, &n)) return false;
    const std::uint8_t* aend = p + n;
    for (const char* a = aug + 1; *a && p < aend; ++a) {
      if (*a == 'R') {
        out->fde_enc = *p++;
      } else if (*a == 'P') {
        std::uint8_t enc = *p++;
        std::uintptr_t ignored;
        if (!read_encoded(&p, aend, enc & 0x7f, &ignored)) return false;
      } else if (*a == 'L') {
        ++p;
      } else if (*a != 'S' && *a != 'B') {
        break;
      }
    }
    p = aend;
  } else if (aug[0]) {
    return false;
  }
  out->insns = p;
  out->end = end;
  return true;
}

void set_rule(Row* r, const Cie& cie, std::uint64_t reg, Rule rule) {
  if (reg == kRegRbp) r->rbp = rule;
  if (reg == cie.ra_reg) r->ra = rule;
}

void restore_rule(Row* r, const Cie& cie, std::uint64_t reg, const Row& init) {
  if (reg == kRegRbp) r->rbp = init.rbp;
  if (reg == cie.ra_reg) r->ra = init.ra;
}

// Runs call-frame instructions [p, end) from location loc until the row
// for `target` is reached. False on anything it cannot follow.
bool run_cfa(const std::uint8_t* p, const std::uint8_t* end, const Cie& cie, std::uintptr_t loc,
             std::uintptr_t target, Row* row, const Row& init) {
  Row saved[4];
  unsigned depth = 0;
  std::uint64_t reg, u;
  std::int64_t s;
  while (p < end) {
    std::uint8_t op = *p++;
    switch (op & 0xc0) {
      case 0x40:
        loc += (op & 0x3f) * cie.code_align;
        if (loc > target) return true;
        continue;
      case 0x80:
        if (!uleb(&p, end, &u)) return false;
        set_rule(row, cie, op & 0x3f, {1, static_cast<std::int64_t>(u) * cie.data_align});
        continue;
      case 0xc0:
        restore_rule(row, cie, op & 0x3f, init);
        continue;
      default:
        break;
    }
    std::uintptr_t delta = 0;
    switch (op) {
      case 0x00:  // nop
        break;
      case 0x01:  // set_loc
        if (!read_encoded(&p, end, cie.fde_enc, &loc)) return false;
        if (loc > target) return true;
        break;
      case 0x02:
      case 0x03:
      case 0x04: {  // advance_loc1/2/4
        unsigned n = op == 0x02 ? 1 : op == 0x03 ? 2 : 4;
        if (end - p < static_cast<long>(n)) return false;
        std::memcpy(&delta, p, n);
        p += n;
        loc += delta * cie.code_align;
        if (loc > target) return true;
        break;
      }
      case 0x05:  // offset_extended
        if (!uleb(&p, end, &reg) || !uleb(&p, end, &u)) return false;
        set_rule(row, cie, reg, {1, static_cast<std::int64_t>(u) * cie.data_align});
        break;
      case 0x06:  // restore_extended
        if (!uleb(&p, end, &reg)) return false;
        restore_rule(row, cie, reg, init);
        break;
      case 0x07:  // undefined
        if (!uleb(&p, end, &reg)) return false;
        set_rule(row, cie, reg, {2, 0});
        break;
      case 0x08:  // same_value
        if (!uleb(&p, end, &reg)) return false;
        set_rule(row, cie, reg, {0, 0});
        break;
      case 0x09:  // register
        if (!uleb(&p, end, &reg) || !uleb(&p, end, &u)) return false;
        set_rule(row, cie, reg, {3, 0});
        break;
      case 0x0a:  // remember_state
        if (depth == 4) return false;
        saved[depth++] = *row;
        break;
      case 0x0b:  // restore_state
        if (depth == 0) return false;
        *row = saved[--depth];
        break;
      case 0x0c:  // def_cfa
        if (!uleb(&p, end, &reg) || !uleb(&p, end, &u)) return false;
        row->cfa_reg = static_cast<int>(reg);
        row->cfa_off = static_cast<std::int64_t>(u);
        row->cfa_expr = false;
        break;
      case 0x0d:  // def_cfa_register
        if (!uleb(&p, end, &reg)) return false;
        row->cfa_reg = static_cast<int>(reg);
        row->cfa_expr = false;
        break;
      case 0x0e:  // def_cfa_offset
        if (!uleb(&p, end, &u)) return false;
        row->cfa_off = static_cast<std::int64_t>(u);
        break;
      case 0x0f:  // def_cfa_expression
        if (!uleb(&p, end, &u) || static_cast<std::uint64_t>(end - p) < u) return false;
        p += u;
        row->cfa_expr = true;
        break;
      case 0x10:  // expression
      case 0x16:  // val_expression
        if (!uleb(&p, end, &reg) || !uleb(&p, end, &u) || static_cast<std::uint64_t>(end - p) < u)
          return false;
        p += u;
        set_rule(row, cie, reg, {3, 0});
        break;
      case 0x11:  // offset_extended_sf
        if (!uleb(&p, end, &reg) || !sleb(&p, end, &s)) return false;
        set_rule(row, cie, reg, {1, s * cie.data_align});
        break;
      case 0x12:  // def_cfa_sf
        if (!uleb(&p, end, &reg) || !sleb(&p, end, &s)) return false;
        row->cfa_reg = static_cast<int>(reg);
        row->cfa_off = s * cie.data_align;
        row->cfa_expr = false;
        break;
      case 0x13:  // def_cfa_offset_sf
        if (!sleb(&p, end, &s)) return false;
        row->cfa_off = s * cie.data_align;
        break;
      case 0x14:  // val_offset
        if (!uleb(&p, end, &reg) || !uleb(&p, end, &u)) return false;
        set_rule(row, cie, reg, {3, 0});
        break;
      case 0x15:  // val_offset_sf
        if (!uleb(&p, end, &reg) || !sleb(&p, end, &s)) return false;
        set_rule(row, cie, reg, {3, 0});
        break;
      case 0x2e:  // GNU_args_size
        if (!uleb(&p, end, &u)) return false;
        break;
      case 0x2f:  // GNU_negative_offset_extended
        if (!uleb(&p, end, &reg) || !uleb(&p, end, &u)) return false;
        set_rule(row, cie, reg, {1, -static_cast<std::int64_t>(u) * cie.data_align});
        break;
      default:
        return false;
    }
  }
  return true;
}

// The row of the frame whose return address (or pc) is pc; *fn gets the
// function's start.
bool find_row(const Module& m, std::uintptr_t pc, Row* row, std::uintptr_t* fn) {
  if (!m.hdr || m.fde_count == 0) return false;
  std::uintptr_t target = pc - 1;  // inside the call instruction
  std::uint32_t lo = 0, hi = m.fde_count;
  auto hdr = reinterpret_cast<std::uintptr_t>(m.hdr);
  while (lo < hi) {
    std::uint32_t mid = lo + (hi - lo) / 2;
    std::uintptr_t start = hdr + static_cast<std::int32_t>(rd32(m.table + 8 * mid));
    if (start <= target)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0) return false;
  const std::uint8_t* fde = m.hdr + static_cast<std::int32_t>(rd32(m.table + 8 * (lo - 1) + 4));
  std::uint32_t len = rd32(fde);
  if (len == 0 || len == 0xffffffffu) return false;
  const std::uint8_t* end = fde + 4 + len;
  const std::uint8_t* p = fde + 4;
  const std::uint8_t* cie_p = p - rd32(p);
  p += 4;
  Cie cie;
  if (!parse_cie(cie_p, &cie)) return false;
  std::uintptr_t begin, range;
  if (!read_encoded(&p, end, cie.fde_enc, &begin) ||
      !read_encoded(&p, end, cie.fde_enc & 0x0f, &range) || target < begin ||
      target - begin >= range)
    return false;
  std::uint64_t aug = 0;
  if (cie.has_z && !uleb(&p, end, &aug)) return false;
  p += aug;
  Row init{kRegRsp, 8, false, {0, 0}, {2, 0}};
  if (!run_cfa(cie.insns, cie.end, cie, begin, ~std::uintptr_t{0}, &init, init)) return false;
  *row = init;
  if (!run_cfa(p, end, cie, begin, target, row, init)) return false;
  *fn = begin;
  return true;
}

// Rows found for return addresses, cached (finding one runs the function's
// call-frame program from its start: most of a walk's cost). A
// direct-mapped table of seqlocked entries: a reader that sees a writer at
// work (odd sequence, or a sequence that changed) misses and computes the
// row itself; so does a signal handler on the writer's own thread.
struct RowCacheEntry {
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint64_t> pc{0}, fn{0}, cfa_off{0}, rbp_off{0}, ra_off{0};
  std::atomic<std::uint32_t> packed{0};  // cfa_reg | cfa_expr << 8 | rbp.how << 16 | ra.how << 24
};
constexpr unsigned kRowCacheSize = 512;
RowCacheEntry g_row_cache[kRowCacheSize];

RowCacheEntry& row_slot(std::uintptr_t pc) {
  return g_row_cache[(pc ^ (pc >> 9) ^ (pc >> 18)) % kRowCacheSize];
}

// A seqlock whose fields are atomics: the reader's loads are acquire
// (none of them may move after the second read of seq), the writer's
// stores release (none may move before its odd seq). No fences: on x86-64
// these orders cost nothing, and ThreadSanitizer does not model fences.
bool row_cached(std::uintptr_t pc, Row* row, std::uintptr_t* fn) {
  RowCacheEntry& e = row_slot(pc);
  std::uint32_t v = e.seq.load(std::memory_order_acquire);
  if ((v & 1) || e.pc.load(std::memory_order_acquire) != pc) return false;
  std::uint32_t packed = e.packed.load(std::memory_order_acquire);
  Row r;
  r.cfa_reg = static_cast<int>(packed & 0xff);
  r.cfa_expr = (packed >> 8) & 1;
  r.rbp = {static_cast<std::uint8_t>((packed >> 16) & 0xff),
           static_cast<std::int64_t>(e.rbp_off.load(std::memory_order_acquire))};
  r.ra = {static_cast<std::uint8_t>(packed >> 24),
          static_cast<std::int64_t>(e.ra_off.load(std::memory_order_acquire))};
  r.cfa_off = static_cast<std::int64_t>(e.cfa_off.load(std::memory_order_acquire));
  std::uintptr_t f = e.fn.load(std::memory_order_acquire);
  if (e.seq.load(std::memory_order_acquire) != v) return false;
  *row = r;
  *fn = f;
  return true;
}

void row_store(std::uintptr_t pc, const Row& r, std::uintptr_t fn) {
  RowCacheEntry& e = row_slot(pc);
  std::uint32_t v = e.seq.load(std::memory_order_relaxed);
  if ((v & 1) || !e.seq.compare_exchange_strong(v, v + 1, std::memory_order_acquire)) return;
  e.pc.store(pc, std::memory_order_release);
  e.fn.store(fn, std::memory_order_release);
  e.cfa_off.store(static_cast<std::uint64_t>(r.cfa_off), std::memory_order_release);
  e.rbp_off.store(static_cast<std::uint64_t>(r.rbp.off), std::memory_order_release);
  e.ra_off.store(static_cast<std::uint64_t>(r.ra.off), std::memory_order_release);
  e.packed.store(static_cast<std::uint32_t>(r.cfa_reg & 0xff) | (r.cfa_expr ? 1u << 8 : 0u) |
                     std::uint32_t{r.rbp.how} << 16 | std::uint32_t{r.ra.how} << 24,
                 std::memory_order_release);
  e.seq.store(v + 2, std::memory_order_release);
}

// find_row through the cache.
bool lookup_row(const Module& m, std::uintptr_t pc, Row* row, std::uintptr_t* fn) {
  if (row_cached(pc, row, fn)) return true;
  if (!find_row(m, pc, row, fn)) return false;
  row_store(pc, *row, *fn);
  return true;
}

}  // namespace

NS_NOINLINE unsigned stack_trace_capture(std::uintptr_t* out, unsigned max, unsigned skip,
                                         std::uintptr_t* fn) {
  const Module* m = self_module();
  // This function has a frame pointer (it asks for its frame address):
  // [fp] is the caller's rbp, [fp + 8] the return address into it.
  auto fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  std::uintptr_t pc = reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
  std::uintptr_t rsp = fp + 16;
  std::uintptr_t rbp = *reinterpret_cast<const std::uintptr_t*>(fp);
  Walk w{fp, fp + (1u << 20), false};  // unbounded: the library's own frames only
  Bounds b;
  if (stack_bounds(fp, &b)) w = {fp, b.hi, true};
  unsigned n = 0;
  for (unsigned depth = 0; n < max && depth < 128 && pc; ++depth) {
    Row row;
    std::uintptr_t start = 0;
    bool cfi = in_text(m, pc - 1) && lookup_row(*m, pc, &row, &start);
    if (skip)
      --skip;
    else {
      out[n] = pc;
      if (fn) fn[n] = start;
      ++n;
    }
    std::uintptr_t next_pc, cfa;
    if (cfi) {
      if (row.cfa_expr || (row.cfa_reg != kRegRsp && row.cfa_reg != kRegRbp)) break;
      cfa = (row.cfa_reg == kRegRsp ? rsp : rbp) + static_cast<std::uintptr_t>(row.cfa_off);
      if (cfa <= rsp || row.ra.how != 1 ||
          !read_word(w, cfa + static_cast<std::uintptr_t>(row.ra.off), &next_pc))
        break;
      if (row.rbp.how == 1) {
        if (!read_word(w, cfa + static_cast<std::uintptr_t>(row.rbp.off), &rbp)) break;
      } else if (row.rbp.how != 0) {
        rbp = 0;
      }
    } else {
      // Frame pointers: [rbp] the caller's rbp, [rbp + 8] the return address.
      if (!w.bounded || rbp < rsp || !read_word(w, rbp + 8, &next_pc)) break;
      cfa = rbp + 16;
      if (!read_word(w, rbp, &rbp)) break;
    }
    rsp = cfa;
    pc = next_pc;
  }
  return n;
}

bool stack_trace_in_library(std::uintptr_t pc) {
  const Module* m = self_module();
  return m && m->shared && in_text(m, pc - 1);
}

std::size_t stack_trace_describe(std::uintptr_t pc, char* buf, std::size_t cap) {
  BufWriter w(buf, cap);
  w.printf("%p", reinterpret_cast<void*>(pc));
  // The address as addr2line takes it: relative to the module's load bias
  // (pc itself in a program that is not position independent, ET_EXEC).
  // The module's first mapping (file offset 0, its ELF header) comes
  // before its others in the maps.
  std::uintptr_t first = 0;
  for_each_map([&](const MapLine& l) {
    if (l.path[0] && l.off == 0 && l.perms[0] == 'r') first = l.lo;
    if (pc < l.lo || pc >= l.hi) return false;
    if (!l.path[0]) return true;
    std::uintptr_t addr = pc - l.lo + l.off;
    if (first) {
      auto* eh = reinterpret_cast<const Elf64_Ehdr*>(first);
      if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_type == ET_EXEC) addr = pc;
    }
    w.printf(" (%s+0x%lx)", l.path, static_cast<unsigned long>(addr));
    return true;
  });
  return w.size();
}

}  // namespace numaslub
