// Process and thread lifecycle: the library constructor (finding the next
// allocator, fork handlers), fork safety, and the NUMASLUB_STATS report at
// exit.
//
// Fork: the prepare handler takes every allocator lock in the one global
// order below, so no lock is held by a thread that will not exist in the
// child; the parent then releases them and the child resets them (it is the
// only thread left, and it holds them all).
//   slub set-up -> reclaim set-up -> page allocator set-up -> topology -> config
//   -> per-CPU sheaf sets -> barns -> partial lists
//   -> per-CPU page lists -> zones -> node hotplug
//   -> huge-mapping table -> thread-set pool -> metadata (boot_alloc)
// This is the runtime nesting order of those locks (see the lock comments in
// lib/buddy/zone.h, lib/slub/slab.h), so the handler cannot deadlock with a
// thread that is mid-allocation.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>

#include <cstring>

#include "lib/base/boot_alloc.h"
#include "lib/base/config.h"
#include "lib/base/format.h"
#include "lib/base/lock.h"
#include "lib/base/log.h"
#include "lib/base/syscall.h"
#include "lib/buddy/page_alloc.h"
#include "lib/numa/topology.h"
#include "lib/reclaim/kswapd.h"
#include "lib/slub/huge.h"
#include "lib/slub/kmalloc.h"
#include "shim/shim.h"

// Weak: a fully static program has no dynamic linker to ask.
extern "C" void* dlsym(void*, const char*) __attribute__((weak));

using namespace numaslub;

namespace {

void for_each_fork_lock(void (*fn)(Mutex&), bool reverse) {
  // Collected first so the parent can release in reverse order.
  static Mutex* locks[1 << 16];
  static unsigned n;
  static void (*apply)(Mutex&);
  n = 0;
  auto collect = [](Mutex& m) {
    if (n < sizeof locks / sizeof locks[0]) locks[n++] = &m;
  };
  collect(slub_init_lock());
  collect(reclaim_init_lock());
  collect(page_allocator_init_lock());
  collect(topology_lock());
  collect(config_lock());
  slub_for_each_lock(collect);
  if (PageAllocator* pa = page_allocator_if_ready()) pa->for_each_lock(collect);
  collect(huge_lock());
  collect(slub_thread_pool_lock());
  collect(boot_alloc_lock());
  apply = fn;
  if (reverse)
    for (unsigned i = n; i-- > 0;) apply(*locks[i]);
  else
    for (unsigned i = 0; i < n; ++i) apply(*locks[i]);
}

void fork_prepare() {
  for_each_fork_lock([](Mutex& m) { m.lock(); }, false);
}
void fork_parent() {
  for_each_fork_lock([](Mutex& m) { m.unlock(); }, true);
}
void fork_child() {
  for_each_fork_lock([](Mutex& m) { m.reset_after_fork(); }, false);
  reclaim_fork_child();  // the kswapd threads did not survive; restart on demand
}

void foreign_free(void* p) {
  if (shim::g_next.free) shim::g_next.free(p);
}

__attribute__((constructor(101))) void numaslub_constructor() {
  // Set the heap up now, before the program's threads start, and register
  // the fork handlers (pthread_atfork may allocate: not on a malloc path).
  slub_init();
  reclaim_init();
  if (dlsym) {
    shim::g_next.free = reinterpret_cast<void (*)(void*)>(dlsym(RTLD_NEXT, "free"));
    shim::g_next.realloc =
        reinterpret_cast<void* (*)(void*, std::size_t)>(dlsym(RTLD_NEXT, "realloc"));
    shim::g_next.usable_size =
        reinterpret_cast<std::size_t (*)(void*)>(dlsym(RTLD_NEXT, "malloc_usable_size"));
    set_foreign_free(foreign_free);
  }
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((destructor)) void numaslub_destructor() {
  const char* v = env_lookup("NUMASLUB_STATS");
  if (!v || !*v || std::strcmp(v, "0") == 0) return;
  if (std::strcmp(v, "1") == 0) {
    shim::write_report(2);
    return;
  }
  long fd = sys::call(SYS_openat, AT_FDCWD, v, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    log_msg("NUMASLUB_STATS: cannot open %s (errno %ld)", v, -fd);
    return;
  }
  shim::write_report(static_cast<int>(fd));
  sys::close(static_cast<int>(fd));
}

}  // namespace

namespace numaslub::shim {

void write_report(int fd) {
  static Mutex lock;
  static char buf[1 << 17];
  LockGuard<Mutex> g(lock);
  PageAllocator* pa = page_allocator_if_ready();
  auto section = [&](const char* title, std::size_t n) {
    write_all(fd, title, std::strlen(title));
    write_all(fd, buf, n);
  };
  if (pa) {
    section("== buddyinfo ==\n", pa->buddyinfo(buf, sizeof buf));
    section("== zoneinfo ==\n", pa->zoneinfo(buf, sizeof buf));
  }
  section("== slabinfo ==\n", slabinfo(buf, sizeof buf));
  std::size_t n = vmstat(buf, sizeof buf);
  BufWriter w(buf + n, sizeof buf - n);
  w.printf(
      "mmap_calls %lu\nmunmap_calls %lu\nmremap_calls %lu\nmmap_bytes %lu\nmmap_failures %lu\n",
      static_cast<unsigned long>(g_mmap_stats.mmaps.load()),
      static_cast<unsigned long>(g_mmap_stats.munmaps.load()),
      static_cast<unsigned long>(g_mmap_stats.mremaps.load()),
      static_cast<unsigned long>(g_mmap_stats.bytes_mapped.load()),
      static_cast<unsigned long>(g_mmap_stats.failures.load()));
  w.printf("metadata_bytes %zu\n", boot_alloc_bytes());
  std::size_t used = n + w.size();
  used += reclaim_vmstat(buf + used, sizeof buf - used);
  section("== vmstat ==\n", used);
}

}  // namespace numaslub::shim
