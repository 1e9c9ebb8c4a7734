// Process and thread lifecycle: the library constructor (finding the next
// allocator, fork handlers), fork safety, and the NUMASLUB_STATS report at
// exit.
//
// Fork (DESIGN rule 5): no handler takes an allocator lock. Holding our
// locks from the prepare handler to the fork deadlocks against locks that
// glibc takes after the handlers (stdio's list lock, NSS's) while another
// thread holding one of those is in malloc; against a concurrent fork; and
// against the forking thread's own frame when a signal handler forks. So
// the parent does nothing, and the child (one thread, before anything else
// it runs allocates) frees every lock held by a thread that did not survive
// the fork and repairs what that lock guarded, layer by layer; locks held
// by the child's own interrupted frame stay held (lib/base/lock.h). Any
// number of threads may fork at once: there is no shared fork-time state.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cstdio>

#include <cstring>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"
#include "lib/numa/numa.h"
#include "lib/reclaim/reclaim.h"
#include "lib/slub/slub.h"
#include "lib/views/views.h"
#include "shim/shim.h"

// Weak: a fully static program has no dynamic linker to ask.
extern "C" void* dlsym(void*, const char*) __attribute__((weak));

using namespace numaslub;

namespace {

// The write_report lock (a leaf, below).
constinit Mutex g_report_lock;

void fork_child() {
  // t_ctx.tid still holds this thread's id in the parent: the owner of the
  // locks the child's own interrupted frame holds.
  std::uint32_t self = t_ctx.tid;
  config_lock().reset_if_orphaned(self);
  topology_lock().reset_if_orphaned(self);
  boot_alloc_fork_child(self);
  page_allocator_fork_child(self);
  slub_fork_child(self);
  vmalloc_fork_child(self);
  prof_fork_child(self);  // before publish's: the child's records go private
  reclaim_init_lock().reset_if_orphaned(self);
  g_report_lock.reset_if_orphaned(self);
  publish_fork_child(self);  // the child publishes its own file, later
  t_ctx.tid = static_cast<std::uint32_t>(sys::gettid());
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
  pthread_atfork(nullptr, nullptr, fork_child);
  publish_init(shim::report_vmstat);  // the file itself comes later, lazily
}

__attribute__((destructor)) void numaslub_destructor() {
  // The profile and the leak check first, while the views file (and the
  // heap file beside it) still exist. A leak_exitcode ends the process
  // here, with stdio flushed: destructors after ours do not run.
  if (int status = prof_exit()) {
    publish_exit();
    fflush(nullptr);
    _exit(status);
  }
  publish_exit();
  const char* v = env_lookup("NUMASLUB_STATS");
  if (!v || !*v || std::strcmp(v, "0") == 0) return;
  if (std::strcmp(v, "1") == 0) {
    shim::write_report(2);
    return;
  }
  // "%p" stands for the pid: a tool run under the same environment (time,
  // strace, a shell's children) would otherwise overwrite the report.
  char path[256];
  if (!format_pid_path(path, sizeof path, v, sys::getpid())) {
    log_msg("NUMASLUB_STATS: path too long: %s", v);
    return;
  }
  long fd = sys::call(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    log_msg("NUMASLUB_STATS: cannot open %s (errno %ld)", path, -fd);
    return;
  }
  shim::write_report(static_cast<int>(fd));
  sys::close(static_cast<int>(fd));
}

}  // namespace

namespace numaslub::shim {

void write_report(int fd) {
  static char buf[1 << 17];
  LockGuard<Mutex> g(g_report_lock);
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
  section("== vmstat ==\n", report_vmstat(buf, sizeof buf));
}

std::size_t report_vmstat(char* buf, std::size_t cap) {
  std::size_t n = vmstat(buf, cap);
  BufWriter w(buf + n, cap - n);
  w.printf(
      "mmap_calls %lu\nmunmap_calls %lu\nmremap_calls %lu\nmmap_bytes %lu\nmmap_failures %lu\n",
      static_cast<unsigned long>(g_mmap_stats.mmaps.load()),
      static_cast<unsigned long>(g_mmap_stats.munmaps.load()),
      static_cast<unsigned long>(g_mmap_stats.mremaps.load()),
      static_cast<unsigned long>(g_mmap_stats.bytes_mapped.load()),
      static_cast<unsigned long>(g_mmap_stats.failures.load()));
  w.printf("metadata_bytes %zu\n", boot_alloc_bytes());
  PublishStats ps = publish_stats();
  w.printf("views_published %lu\nviews_publish_us %lu\n", static_cast<unsigned long>(ps.published),
           static_cast<unsigned long>(ps.ns / 1000));
  std::size_t used = n + w.size();
  return used + reclaim_vmstat(buf + used, cap - used);
}

}  // namespace numaslub::shim
