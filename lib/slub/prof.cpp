// The heap profiler's sampler and its record region (prof.h has the design).
//
// Invariants (g_prof_lock held for every write):
// - records [0, hwm) have been used; a record is live iff its addr is not
//   0, and then its page's priv[3] (or, for a mapping, its address) leads
//   to it; free records are on the free list through next_free;
// - a record is written only between an odd and the next even value of its
//   seq, with release stores, so a reader that sees the same even seq
//   before and after its copy has a consistent record;
// - with a file attached, every record below hwm lies inside the file's
//   allocated blocks (no store into a hole: no SIGBUS on a full tmpfs).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <cstring>

#include "lib/base/base.h"
#include "lib/slub/debug_internal.h"
#include "lib/slub/prof.h"

namespace numaslub {

bool g_prof_on = false;

namespace {

constexpr std::size_t kFileChunk = 64 << 10;  // the file grows by this much

constinit Mutex g_prof_lock;
constinit ProfFileHeader* g_region = nullptr;  // never moves once reserved
constinit std::size_t g_reserve = 0;           // bytes of address space reserved
constinit int g_fd = -1;                       // the attached file, or -1
constinit std::size_t g_file_bytes = 0;        // blocks allocated in it
constinit std::uint64_t g_free_head = 0;       // index + 1 of a free record, 0: none
constinit std::uint64_t g_mappings = 0;        // live records of direct mappings

// The sampler of one thread. left: bytes until the next sample; 0 before
// the first draw (a new thread draws at its first allocation, which is then
// charged like any other).
struct ProfThread {
  std::int64_t left;
  std::uint64_t rng;
};
constinit thread_local ProfThread t_prof NS_TLS_IE = {0, 0};

ProfRecord* records(ProfFileHeader* h) {
  return reinterpret_cast<ProfRecord*>(reinterpret_cast<char*>(h) + kProfHeaderBytes);
}

// ln(x) for x in (0, 1], without libm: x = m * 2^e with m in [1, 2), and
// ln(m) = 2 atanh(t), t = (m - 1) / (m + 1) <= 1/3, by its series (error
// below 1e-6, plenty for drawing intervals).
double ln_unit(double x) {
  std::uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((std::uint64_t{1} << 52) - 1)) | (std::uint64_t{1023} << 52);
  double m;
  std::memcpy(&m, &bits, sizeof m);
  double t = (m - 1) / (m + 1), t2 = t * t;
  double s = t * (1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9)))));
  return e * 0.6931471805599453 + 2 * s;
}

// A draw of the exponential distribution of mean prof_sample, in bytes (at
// least 1).
std::int64_t draw_interval() {
  ProfThread& t = t_prof;
  if (t.rng == 0) t.rng = sys::random_u64() | 1;
  t.rng ^= t.rng >> 12;  // xorshift64*
  t.rng ^= t.rng << 25;
  t.rng ^= t.rng >> 27;
  std::uint64_t r = t.rng * 0x2545F4914F6CDD1DULL;
  double u = (static_cast<double>(r >> 11) + 1) * (1.0 / 9007199254740992.0);  // (0, 1]
  double mean = static_cast<double>(config().prof_sample);
  double v = -ln_unit(u) * mean;
  if (v > 4e18) v = 4e18;
  return v < 1 ? 1 : static_cast<std::int64_t>(v);
}

// Reserves the region and writes its header (lock held). False when there
// is no address space for it.
bool ensure_region() {
  if (g_region) return true;
  std::uint32_t cap = config().prof_max ? config().prof_max : 1;
  std::size_t bytes = (kProfHeaderBytes + std::size_t{cap} * sizeof(ProfRecord) + 4095) & ~4095ul;
  long err = 0;
  void* m = sys::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0, &err);
  if (!m) return false;
  auto* h = static_cast<ProfFileHeader*>(m);
  h->magic = kProfMagic;
  h->version = kProfVersion;
  h->record_size = sizeof(ProfRecord);
  h->header_size = kProfHeaderBytes;
  h->capacity = cap;
  h->pid = static_cast<std::int32_t>(sys::getpid());
  h->interval = config().prof_sample ? config().prof_sample : 1;
  g_reserve = bytes;
  g_region = h;
  return true;
}

// Stores of a record's words, between an odd and an even seq (lock held).
void write_record(ProfRecord* r, const ProfRecord& v) {
  std::uint64_t seq = r->seq;
  __atomic_store_n(&r->seq, seq + 1, __ATOMIC_RELAXED);
  const auto* src = reinterpret_cast<const std::uint64_t*>(&v);
  auto* dst = reinterpret_cast<std::uint64_t*>(r);
  for (std::size_t i = 1; i < sizeof(ProfRecord) / 8; ++i)
    __atomic_store_n(&dst[i], src[i], __ATOMIC_RELEASE);
  __atomic_store_n(&r->seq, seq + 2, __ATOMIC_RELEASE);
}

// A record to fill (lock held), or null when the region or the file is full.
ProfRecord* take_record() {
  ProfFileHeader* h = g_region;
  if (g_free_head) {
    ProfRecord* r = records(h) + (g_free_head - 1);
    g_free_head = r->next_free;
    return r;
  }
  std::uint64_t i = h->hwm;
  if (i >= h->capacity) return nullptr;
  std::size_t end = kProfHeaderBytes + (i + 1) * sizeof(ProfRecord);
  if (g_fd >= 0 && end > g_file_bytes) {
    if (sys::call(SYS_fallocate, g_fd, 0, g_file_bytes, kFileChunk) < 0) return nullptr;
    g_file_bytes += kFileChunk;
  }
  __atomic_store_n(&h->hwm, i + 1, __ATOMIC_RELEASE);
  return records(h) + i;
}

void free_record(ProfRecord* r) {
  ProfRecord v{};
  v.next_free = g_free_head;
  write_record(r, v);
  g_free_head = static_cast<std::uint64_t>(r - records(g_region)) + 1;
  __atomic_store_n(&g_region->live, g_region->live - 1, __ATOMIC_RELAXED);
}

void count(std::uint64_t* field) {
  __atomic_store_n(field, *field + 1, __ATOMIC_RELAXED);
}

}  // namespace

bool prof_sample_now(std::size_t bytes) {
  ProfThread& t = t_prof;
  t.left -= static_cast<std::int64_t>(bytes);
  if (NS_LIKELY(t.left > 0)) return false;
  if (t.left + static_cast<std::int64_t>(bytes) == 0 && t.rng == 0) {
    // This thread's first allocation: draw, then charge it.
    t.left = draw_interval() - static_cast<std::int64_t>(bytes);
    if (t.left > 0) return false;
  }
  t.left = draw_interval();
  return true;
}

ProfRecord* prof_record(const void* p, std::size_t size, bool mapping) {
  ProfRecord v{};
  v.addr = reinterpret_cast<std::uintptr_t>(p);
  v.size = size;
  v.when_ns = now_ns();
  v.tid = this_thread_id();
  std::uintptr_t frames[kProfFrames];
  v.nframes = debug_user_stack(frames, kProfFrames);
  for (unsigned i = 0; i < v.nframes; ++i) v.frames[i] = frames[i];
  LockGuard<Mutex> g(g_prof_lock);
  if (!ensure_region()) return nullptr;
  count(&g_region->sampled);
  ProfRecord* r = take_record();
  if (!r) {
    count(&g_region->dropped);
    return nullptr;
  }
  write_record(r, v);
  count(&g_region->live);
  if (mapping) ++g_mappings;
  return r;
}

void prof_release(ProfRecord* r, const void* p) {
  LockGuard<Mutex> g(g_prof_lock);
  if (r->addr == reinterpret_cast<std::uintptr_t>(p)) free_record(r);
}

void prof_release_mapping(const void* p) {
  if (__atomic_load_n(&g_mappings, __ATOMIC_RELAXED) == 0) return;
  LockGuard<Mutex> g(g_prof_lock);
  ProfRecord* rs = records(g_region);
  for (std::uint64_t i = 0; i < g_region->hwm; ++i)
    if (rs[i].addr == reinterpret_cast<std::uintptr_t>(p)) {
      free_record(&rs[i]);
      --g_mappings;
      return;
    }
}

void prof_moved(ProfRecord* r, const void* from, const void* to, std::size_t size) {
  LockGuard<Mutex> g(g_prof_lock);
  if (!r) {
    if (!g_mappings) return;
    ProfRecord* rs = records(g_region);
    for (std::uint64_t i = 0; i < g_region->hwm && !r; ++i)
      if (rs[i].addr == reinterpret_cast<std::uintptr_t>(from)) r = &rs[i];
    if (!r) return;
  }
  if (r->addr != reinterpret_cast<std::uintptr_t>(from)) return;
  ProfRecord v = *r;
  v.addr = reinterpret_cast<std::uintptr_t>(to);
  v.size = size;
  write_record(r, v);
}

int prof_attach(int fd) {
  LockGuard<Mutex> g(g_prof_lock);
  if (!ensure_region()) return 12;  // ENOMEM
  ProfFileHeader* h = g_region;
  std::size_t used = kProfHeaderBytes + h->hwm * sizeof(ProfRecord);
  std::size_t bytes = (used + kFileChunk - 1) / kFileChunk * kFileChunk;
  long r = sys::call(SYS_fallocate, fd, 0, 0, bytes);
  if (r < 0) return static_cast<int>(-r);
  h->pid = static_cast<std::int32_t>(sys::getpid());
  for (std::size_t off = 0; off < used;) {
    r = sys::call(SYS_pwrite64, fd, reinterpret_cast<char*>(h) + off, used - off, off);
    if (r <= 0) return r < 0 ? static_cast<int>(-r) : 5;  // EIO
    off += static_cast<std::size_t>(r);
  }
  long err = 0;
  if (!sys::mmap(h, g_reserve, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0, &err))
    return static_cast<int>(err);
  if (g_fd >= 0) sys::close(g_fd);
  g_fd = fd;
  g_file_bytes = bytes;
  return 0;
}

void prof_fork_child(std::uint32_t self) {
  bool orphaned = g_prof_lock.reset_if_orphaned(self);
  ProfFileHeader* h = g_region;
  if (!h) return;
  if (g_fd >= 0) {
    // The parent's file stays the parent's: the child's records move to
    // private memory at the same address (its views publisher attaches a
    // file of its own later).
    std::size_t used = kProfHeaderBytes + h->hwm * sizeof(ProfRecord);
    long err = 0;
    void* tmp =
        sys::mmap(nullptr, used, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &err);
    if (tmp) std::memcpy(tmp, h, used);
    sys::mmap(h, g_reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0,
              &err);
    if (tmp) {
      std::memcpy(h, tmp, used);
      sys::munmap(tmp, used);
    } else {
      h->magic = kProfMagic;  // the records are lost; the header is rebuilt below
      h->hwm = 0;
    }
    sys::close(g_fd);
    g_fd = -1;
    g_file_bytes = 0;
    orphaned = true;
  }
  h->pid = static_cast<std::int32_t>(sys::getpid());
  if (!orphaned) return;
  // A writer gone with the fork may have left a record half written and the
  // free list half updated: rebuild both from the records (a record half
  // written is dropped; its object stays allocated, unsampled).
  g_free_head = 0;
  g_mappings = 0;
  std::uint64_t live = 0;
  ProfRecord* rs = records(h);
  for (std::uint64_t i = h->hwm; i-- > 0;) {
    if ((rs[i].seq & 1) || rs[i].addr == 0) {
      rs[i].seq = (rs[i].seq + 1) & ~std::uint64_t{1};
      rs[i].addr = 0;
      rs[i].next_free = g_free_head;
      g_free_head = i + 1;
    } else {
      ++live;
    }
  }
  h->live = live;
  // Mappings are few: count them as those not in the heap's pages is not
  // known here; a release then scans whenever any record may be one.
  g_mappings = live;
}

const ProfFileHeader* prof_region(std::size_t* bytes) {
  ProfFileHeader* h = __atomic_load_n(&g_region, __ATOMIC_ACQUIRE);
  if (bytes) *bytes = h ? kProfHeaderBytes + h->capacity * sizeof(ProfRecord) : 0;
  return h;
}

bool prof_read_record(const ProfFileHeader* h, std::size_t i, ProfRecord* out) {
  const auto* r =
      reinterpret_cast<const ProfRecord*>(reinterpret_cast<const char*>(h) + h->header_size) + i;
  const auto* src = reinterpret_cast<const std::uint64_t*>(r);
  auto* dst = reinterpret_cast<std::uint64_t*>(out);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::uint64_t s1 = __atomic_load_n(&src[0], __ATOMIC_ACQUIRE);
    if (s1 & 1) {
      cpu_relax();
      continue;
    }
    for (std::size_t k = 1; k < sizeof(ProfRecord) / 8; ++k)
      dst[k] = __atomic_load_n(&src[k], __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&src[0], __ATOMIC_RELAXED) == s1) {
      dst[0] = s1;
      return out->addr != 0 && out->nframes <= kProfFrames;
    }
  }
  return false;
}

}  // namespace numaslub
