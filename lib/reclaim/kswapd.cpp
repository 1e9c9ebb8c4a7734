#include "lib/reclaim/kswapd.h"

#include <linux/futex.h>
#include <sys/mman.h>

#include <atomic>
#include <new>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"
#include "lib/reclaim/pressure.h"
#include "lib/slub/slub.h"

namespace numaslub {

namespace {

// kIdle: no thread (never started, or lost to a fork); kStarting: being
// started by a wake; kRunning: the thread exists; kFailed: clone failed
// (seccomp, limits): this process stays without one.
enum State : int { kIdle = 0, kStarting, kRunning, kFailed };

struct alignas(64) Kswapd {
  std::atomic<std::uint32_t> seq{0};  // futex word: bumped by every wake
  std::atomic<int> state{kIdle};
  unsigned nid = 0;
  bool bursting = false;  // the last pass found the zone above its high mark
  RawThread thread;
  std::atomic<std::uint64_t> wakeups{0}, passes{0}, released{0}, pressure_events{0}, idle_drains{0};
};

constinit Kswapd* g_kswapd = nullptr;
constinit PageAllocator* g_pa = nullptr;
constinit std::atomic<bool> g_ready{false};
constinit Mutex g_init_lock;

[[noreturn]] void kswapd_main(void* arg);

// Whether node nid holds enough free resident memory to be worth a thread:
// its zone's dirty free pages, and on node 0 (whose thread ages them) the
// cached direct mappings, whose pages stay resident (vmalloc.h), reach
// `reclaim_start`. Zone lock held (vmalloc_cache_bytes takes no lock).
bool worth_a_thread(unsigned nid, const Zone& z) {
  std::uint64_t bytes = std::uint64_t{z.dirty_pages()} << kPageShift;
  if (nid == 0) bytes += vmalloc_cache_bytes();
  return bytes >= config().reclaim_start;
}

// Zone::wake_fn: runs with node nid's zone lock held (the vmalloc cache hook
// takes it first). No allocation and no lock; starting the thread is two
// raw system calls (mmap on first use, clone).
void kswapd_wake(void*, unsigned nid) {
  Kswapd& k = g_kswapd[nid];
  int st = k.state.load(std::memory_order_acquire);
  if (st == kRunning) {
    k.wakeups.fetch_add(1, std::memory_order_relaxed);
    k.seq.fetch_add(1, std::memory_order_release);
    sys::futex(&k.seq, FUTEX_WAKE_PRIVATE, 1);
    return;
  }
  Zone& z = g_pa->zone(nid);
  if (st == kIdle && worth_a_thread(nid, z)) {
    int idle = kIdle;
    if (!k.state.compare_exchange_strong(idle, kStarting, std::memory_order_acq_rel)) return;
    // The new thread's first pass covers this wake (wake_pending stays set
    // until that pass clears it).
    int e = raw_thread_start(&k.thread, kswapd_main, &k);
    k.state.store(e ? kFailed : kRunning, std::memory_order_release);
    if (!e) return;
    log_msg("reclaim: cannot start the node %u reclaim thread (errno %d)", nid, e);
  }
  if (st == kFailed || k.state.load(std::memory_order_relaxed) == kFailed) return;  // no more wakes
  // Not worth a thread yet: stay armed, so the next free that leaves
  // resident pages asks again.
  z.wake_pending = false;
  z.kswapd_armed = true;
}

// The direct-mapping cache's hook (no lock held): as a zone wake of node 0.
// A running thread needs only the first (it then sleeps at most decay_ms
// while the cache holds anything); one not started yet is asked at every
// entry, since the cache's pages count towards starting it.
void vmalloc_wake(bool first) {
  if (!first && g_kswapd[0].state.load(std::memory_order_acquire) == kRunning) return;
  Zone& z = g_pa->zone(0);
  LockGuard<Mutex> g(z.lock);
  kswapd_wake(nullptr, 0);
}

// Gives the thread the process's affinity (its main thread's: the creating
// thread may have been pinned narrower), narrowed to the node's CPUs where
// they intersect; never wider than the process allows.
void set_affinity_to_node(unsigned nid) {
  const Topology& t = g_pa->topo();
  unsigned long allowed[kMaxCpus / 64] = {};
  if (sys::call(SYS_sched_getaffinity, sys::getpid(), sizeof allowed, allowed) <= 0 &&
      sys::call(SYS_sched_getaffinity, 0, sizeof allowed, allowed) <= 0)
    return;
  unsigned long mask[kMaxCpus / 64] = {};
  bool any = false;
  for (unsigned c = 0; c < t.nr_cpus && c < kMaxCpus; ++c)
    if (t.node_cpus[nid].test(c) && (allowed[c / 64] & (1UL << (c % 64)))) {
      mask[c / 64] |= 1UL << (c % 64);
      any = true;
    }
  sys::call(SYS_sched_setaffinity, 0, sizeof mask, any ? mask : allowed);
}

// Drains the caches of this node's CPUs that have been idle for idle_ns
// (all of them when idle_ns == 0). Returns true if any CPU still caches
// objects or large blocks (run lists) afterwards (a reason to look again
// later).
bool drain_idle_cpus(unsigned nid, std::uint64_t now, std::uint64_t idle_ns) {
  const Topology& t = g_pa->topo();
  bool still_cached = false, runs_cached = false;
  for (unsigned c = 0; c < t.nr_cpus && c < g_pa->nr_cpus(); ++c) {
    if (!t.node_cpus[nid].test(c)) continue;
    std::uint64_t last = 0;
    std::size_t cached = kmem_cpu_cached(c, &last);
    bool idle = idle_ns == 0 || now - last >= idle_ns;
    if (cached && idle) {
      kmem_drain_cpu(c);                                     // from here: no migration (slub.cpp)
      if (kmem_cpu_cached(c, nullptr)) still_cached = true;  // a main it could not take
      g_kswapd[nid].idle_drains.fetch_add(1, std::memory_order_relaxed);
    } else if (cached) {
      still_cached = true;
    }
    if (PerCpuPages* p = g_pa->pcp(c, nid)) {
      if (idle) {
        p->drain(g_pa->zone(nid));
      } else {
        // Large blocks on its run lists: look again when it may be idle.
        LockGuard<Mutex> g(p->lock);
        runs_cached |= p->run_pages != 0;
      }
    }
  }
  // The barn's full sheaves belong to no CPU: flush them once every CPU of
  // the node has gone idle.
  if (!still_cached) kmem_flush_barns(nid);
  return still_cached || runs_cached;
}

std::uint64_t ms_to_ns(std::uint32_t ms) {
  return std::uint64_t{ms} * 1000000ULL;
}

// Look again after half the decay period (at least 10 ms): a block freed
// right after a pass is then released at most 1.5 periods after its free.
std::uint64_t decay_ms_or_min(std::uint32_t decay_ms) {
  std::uint64_t ns = ms_to_ns(decay_ms) / 2;
  return ns < 10000000ULL ? 10000000ULL : ns;
}

// When the oldest resident free block reaches decay_ms: the next pass then
// releases it on time (a burst's memory is back decay_ms after its free, not
// up to 1.5 periods later), but no sooner than a tenth of the period after
// this pass (at least 10 ms), so a steady trickle of frees costs at most ten
// passes per period. Zone lock held.
std::uint64_t next_decay_ns(const Zone& z, std::uint64_t now, std::uint32_t decay_ms) {
  std::uint64_t decay = ms_to_ns(decay_ms), lo = decay / 10, hi = decay_ms_or_min(decay_ms);
  if (lo < 10000000ULL) lo = 10000000ULL;
  std::uint64_t oldest = z.oldest_dirty_stamp_locked();
  // + 5 ms: the coarse clock's stamps and reads differ by up to a tick.
  std::uint64_t due = oldest == ~0ULL ? now + hi : oldest + decay + 5000000ULL;
  std::uint64_t wait = due > now ? due - now : 0;
  return wait < lo ? lo : wait > hi ? hi : wait;
}

constexpr std::uint64_t kBurstRecheckNs = 50000000ULL;  // 50 ms

// One pass; returns the futex timeout for the next sleep in ns (0: none).
std::uint64_t do_pass(unsigned nid, std::size_t* released_out) {
  const Config& cfg = config();
  Kswapd& k = g_kswapd[nid];
  Zone& z = g_pa->zone(nid);
  std::uint64_t now = now_coarse_ns();
  std::size_t released = 0, dirty, high, min;
  bool thp;
  {
    LockGuard<Mutex> g(z.lock);
    z.wake_pending = false;
    thp = z.thp_enabled();
    // Pages kept whole in huge ranges do not count toward a burst: they
    // would be seen (and kept) again at every pass.
    dirty =
        z.dirty_pages() - (z.thp_kept_pages < z.dirty_pages() ? z.thp_kept_pages : z.dirty_pages());
    high = z.wmark_high;
    min = z.wmark_min;
  }
  k.passes.fetch_add(1, std::memory_order_relaxed);
  bool still_cached;
  if (reclaim_pressure_source()()) {
    k.pressure_events.fetch_add(1, std::memory_order_relaxed);
    still_cached = drain_idle_cpus(nid, now, 0);
    kmem_shrink_shared();
    released += release_cold_pages(g_pa, nid, ~std::size_t{0}, ~0ULL, HugeSplit::kAll);
    if (nid == 0) released += vmalloc_cache_release(~0ULL);
  } else {
    // Above the high mark a burst of frees is under way: give back all but
    // a reserve for the next allocations, and look again soon while the
    // burst lasts (its tail may stay below high, which wakes no one, until
    // decay). The reserve is the min mark, but at most reclaim_start, what
    // a small program keeps without a thread anyway: the min mark alone is
    // 10% of the zone, so after a 1 GiB burst 116 MiB stayed for decay_ms
    // (memreturn: RSS 10.7% of the peak 0.5 s after the last free; issue 14
    // asks for 10% by then).
    // A burst goes on, at the next look, until only the reserve is left:
    // frees that came while a pass was releasing (its count of resident
    // pages taken before them) would otherwise wait for decay as soon as
    // they are below the low mark (Reclaim.BurstKeepsAtMostReclaimStart
    // kept 36 MiB for a reserve of 8 MiB when the thread's pass began in
    // the middle of the frees).
    // A burst releases no block younger than kYoungBlockNs (zone.h): at
    // instants a program that churns big blocks keeps more than the high
    // mark free, and takes it back within milliseconds. At 50 ms mstress,
    // whose rounds of threads last 18 ms, kept its freed memory past the
    // next round (peak RSS 66 -> 70 MB); at 5 ms 66 MB, and large gains as
    // much.
    std::size_t keep =
        cfg.reclaim_start >> kPageShift < min ? cfg.reclaim_start >> kPageShift : min;
    bool burst = dirty > high || (k.bursting && dirty > keep);
    std::size_t burst_released = 0;
    if (burst)
      burst_released = release_cold_pages(
          g_pa, nid, dirty - keep, now > kYoungBlockNs ? now - kYoungBlockNs : 0, HugeSplit::kNone);
    released += burst_released;
    // With huge ranges a burst pass may find only blocks to keep: no
    // reason to look again soon, unless blocks too young to go are left
    // (asked only then: it takes the zone lock).
    auto young_left = [&z] {
      LockGuard<Mutex> g(z.lock);
      return z.oldest_dirty_stamp_locked() != ~0ULL;
    };
    k.bursting = burst && (!thp || burst_released > 0 || young_left());
    std::uint64_t decay = ms_to_ns(cfg.decay_ms);
    if (now > decay) {
      released += release_cold_pages(g_pa, nid, ~std::size_t{0}, now - decay);
      // Node 0's thread also ages the cache of freed direct mappings.
      if (nid == 0) released += vmalloc_cache_release(now - decay);
    }
    still_cached = drain_idle_cpus(nid, now, ms_to_ns(cfg.idle_drain_ms));
  }
  k.released.fetch_add(released, std::memory_order_relaxed);
  *released_out = released;
  // Sleep: until the next block can have aged, or until cached objects can
  // have gone idle; with neither, until a free arms us again. Node 0 also
  // looks at the direct-mapping cache every half period while it holds
  // anything, but that never delays the zone's own deadline (it once did:
  // a cached mapping made the thread sleep half a period whatever was due,
  // and a burst's reserve went back 150 ms late).
  std::uint64_t map_wait =
      nid == 0 && vmalloc_cache_bytes() > 0 ? decay_ms_or_min(cfg.decay_ms) : 0;
  auto sooner = [map_wait](std::uint64_t t) { return map_wait && map_wait < t ? map_wait : t; };
  LockGuard<Mutex> g(z.lock);
  // With huge ranges, resident free pages may all be blocks kept whole:
  // then nothing will age, and the thread sleeps armed (the next free
  // that leaves resident pages wakes it) rather than polling them.
  if (z.dirty_pages() > 0 && !(thp && z.oldest_dirty_stamp_locked() == ~0ULL)) {
    std::uint64_t t = next_decay_ns(z, now_coarse_ns(), cfg.decay_ms);
    return sooner(k.bursting && t > kBurstRecheckNs ? kBurstRecheckNs : t);
  }
  if (still_cached) return sooner(ms_to_ns(cfg.idle_drain_ms ? cfg.idle_drain_ms : 1));
  if (map_wait) return map_wait;
  z.kswapd_armed = true;
  // The next run a CPU caches wakes it (zone.h).
  z.run_wake_seq.store(z.run_wake_seq.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
  return 0;
}

// The thread (raw_thread.h: no libc that locks or uses TLS, no malloc, no
// rseq; every signal blocked). Everything a pass calls keeps to that.
void kswapd_main(void* arg) {
  auto* k = static_cast<Kswapd*>(arg);
  char name[16];
  format(name, sizeof name, "ns-kswapd%u", k->nid);
  raw_thread_set_name(name);
  set_affinity_to_node(k->nid);
  for (;;) {
    std::uint32_t seen = k->seq.load(std::memory_order_acquire);
    std::size_t released;
    std::uint64_t timeout = do_pass(k->nid, &released);
    views_tick(false);  // the published views, when due (never makes the file)
    if (k->seq.load(std::memory_order_acquire) != seen) continue;  // woken meanwhile
    if (timeout) {
      timespec ts{static_cast<time_t>(timeout / 1000000000ULL),
                  static_cast<long>(timeout % 1000000000ULL)};
      sys::futex(&k->seq, FUTEX_WAIT_PRIVATE, seen, &ts);
    } else {
      sys::futex(&k->seq, FUTEX_WAIT_PRIVATE, seen, nullptr);
    }
  }
}

}  // namespace

std::size_t release_cold_pages(PageAllocator* pa, unsigned nid, std::size_t max_pages,
                               std::uint64_t before_ns, HugeSplit split) {
  Zone& z = pa->zone(nid);
  const bool lazy = config().madv_free;
  std::size_t done = 0;
  Page* blocks[64];
  while (done < max_pages) {
    std::size_t pages = 0;
    unsigned n;
    {
      LockGuard<Mutex> g(z.lock);
      n = z.isolate_cold_locked(max_pages - done, before_ns, blocks, 64, &pages, split);
    }
    if (n == 0) break;
    if (std::uint32_t hold = config().reclaim_hold_ms) {
      // Test seam: keep the pass open with its blocks isolated.
      timespec ts{static_cast<time_t>(hold / 1000), static_cast<long>(hold % 1000) * 1000000L};
      sys::call(SYS_nanosleep, &ts, nullptr);
    }
    bool zeroed = true;
    unsigned ok = 0;
    Page* failed[64];
    unsigned nfailed = 0;
    for (unsigned i = 0; i < n; ++i) {
      void* addr = z.address(blocks[i]);
      std::size_t len = kPageSize << blocks[i]->order;
      int e = 0;
      if (lazy) {
        long r = sys::madvise(addr, len, MADV_FREE);
        e = r < 0 ? static_cast<int>(-r) : 0;
        zeroed = false;
      } else {
        e = pa->arena().os().release(addr, len);
      }
      if (e) {
        failed[nfailed++] = blocks[i];
        continue;
      }
      blocks[ok++] = blocks[i];
      // A free block needs only its head descriptor: the descriptor pages
      // past the first are released too (they read back as zero, the state
      // of a tail of a free block). 1.5% of a large released block.
      std::size_t desc = (std::size_t{1} << blocks[i]->order) * sizeof(Page);
      if (desc > 2 * kPageSize)
        pa->arena().os().release(reinterpret_cast<char*>(blocks[i]) + kPageSize, desc - kPageSize);
    }
    LockGuard<Mutex> g(z.lock);
    z.putback_released_locked(blocks, ok, zeroed);
    for (unsigned i = 0; i < nfailed; ++i) z.unisolate_locked(failed[i]);
    for (unsigned i = 0; i < ok; ++i) done += std::size_t{1} << blocks[i]->order;
    if (nfailed) break;
  }
  return done;
}

void reclaim_init() {
  if (g_ready.load(std::memory_order_acquire)) return;
  LockGuard<Mutex> g(g_init_lock);
  if (g_ready.load(std::memory_order_relaxed) || !config().reclaim) return;
  PageAllocator* pa = page_allocator();
  if (!pa) return;
  auto* ks = static_cast<Kswapd*>(boot_alloc(sizeof(Kswapd) * pa->nr_nodes()));
  if (!ks) return;
  for (unsigned n = 0; n < pa->nr_nodes(); ++n) (new (&ks[n]) Kswapd())->nid = n;
  g_kswapd = ks;
  g_pa = pa;
  for (unsigned n = 0; n < pa->nr_nodes(); ++n) {
    Zone& z = pa->zone(n);
    LockGuard<Mutex> zg(z.lock);
    z.wake_fn = kswapd_wake;
    z.wake_ctx = nullptr;
    z.kswapd_armed = true;  // the first free that leaves resident pages wakes it
  }
  g_ready.store(true, std::memory_order_release);
  vmalloc_set_wake_hook(vmalloc_wake);
}

Mutex& reclaim_init_lock() {
  return g_init_lock;
}

std::size_t reclaim_pass(unsigned nid, std::uint64_t* sleep_ns) {
  if (!g_ready.load(std::memory_order_acquire) || nid >= g_pa->nr_nodes()) return 0;
  std::size_t released;
  std::uint64_t ns = do_pass(nid, &released);
  if (sleep_ns) *sleep_ns = ns;
  return released;
}

void reclaim_fork_child() {
  if (!g_ready.load(std::memory_order_acquire)) return;
  for (unsigned n = 0; n < g_pa->nr_nodes(); ++n) {
    // The thread did not survive; its stack region did and is reused. A
    // start in flight at the fork (under a zone lock that a thread gone
    // with the fork held) is abandoned: its zone was repaired before this.
    g_kswapd[n].state.store(kIdle, std::memory_order_relaxed);
    g_kswapd[n].thread.tid = 0;
    Zone& z = g_pa->zone(n);
    z.wake_pending = false;
    z.kswapd_armed = true;  // restarted lazily, by the same rule as at start-up
  }
}

bool kswapd_running(unsigned nid) {
  return g_ready.load(std::memory_order_acquire) && nid < g_pa->nr_nodes() &&
         g_kswapd[nid].state.load(std::memory_order_acquire) == kRunning;
}

std::size_t reclaim_vmstat(char* buf, std::size_t cap) {
  BufWriter w(buf, cap);
  std::uint64_t wake = 0, passes = 0, released = 0, pressure = 0, drains = 0;
  for (unsigned n = 0; g_ready.load(std::memory_order_acquire) && n < g_pa->nr_nodes(); ++n) {
    wake += g_kswapd[n].wakeups.load(std::memory_order_relaxed);
    passes += g_kswapd[n].passes.load(std::memory_order_relaxed);
    released += g_kswapd[n].released.load(std::memory_order_relaxed);
    pressure += g_kswapd[n].pressure_events.load(std::memory_order_relaxed);
    drains += g_kswapd[n].idle_drains.load(std::memory_order_relaxed);
  }
  w.printf("kswapd_wakeups %lu\nkswapd_passes %lu\nkswapd_released %lu\n",
           static_cast<unsigned long>(wake), static_cast<unsigned long>(passes),
           static_cast<unsigned long>(released));
  w.printf("pressure_events %lu\nsheaf_idle_drains %lu\n", static_cast<unsigned long>(pressure),
           static_cast<unsigned long>(drains));
  return w.size();
}

}  // namespace numaslub
