// Live views from another process: the publisher.
//
// A process under numaslub keeps its heap's views (the counters behind
// buddyinfo, zoneinfo, slabinfo and vmstat) in one small shared file,
// $TMPDIR/numaslub-<euid>/<pid> (snapshot.h has the format), so that
// numaslub-info --pid and numaslub-top can read them at any moment: no
// signal, no ptrace, and nothing the target does for a reader (it takes no
// lock and allocates nothing on a reader's behalf; a reader only copies
// the file).
//
// When it is written: views_tick() (lib/base/views_hook.h) runs on the
// allocator's slow paths and after each kswapd pass. At most every
// publish_ms (50) it takes a snapshot (under the allocator's own locks, one
// at a time, as the in-process views do) into a private staging buffer and
// copies it into the file's idle copy; a reader that added to FileHeader::request gets one
// at the next slow path, at most every 10 ms; numaslub_publish() takes one
// at once. Without a thread of its own the publisher runs only when the
// program reaches a slow path. While allocations stay in the per-CPU
// sheaves nothing is published, but then the views' counters, which change
// on slow paths, stand still too; what a burst changed in its last
// publish_ms (and up to 15 slow paths of a thread, views_hook.h) waits for
// the next slow path. Readers show the snapshot's age.
//
// The file's life:
// - created lazily, by a program thread's slow path at least 1 s (or
//   publish_ms, if longer) after start, never by kswapd and never with a
//   thread of its own (a short command, or a fork child that execs, makes
//   none);
//   created under a temporary name, filled, then renamed into place, with
//   its blocks allocated up front (fallocate: a full file system cannot
//   turn a later write into SIGBUS). The directory must be the user's own
//   and mode 0700; files of dead processes in it are removed then;
// - checked at every publish: if it was removed or replaced (a tmp
//   cleaner, a reader that judged it stale), it is made again;
// - a fork child publishes a file of its own, under its own pid: its
//   handler swaps the inherited shared mapping for private memory (so
//   nothing in the child can write the parent's file) and the child
//   creates its own file by the same lazy rule. A process whose fork we
//   did not see (vfork, raw clone) never writes (its pid is checked);
// - removed at exit (the library destructor). After a crash, _exit or exec
//   the file stays: readers find it stale (reader.h) and remove it.
//
// Locks: the writer flag (`owner`, a thread id) is only ever tried, never
// waited for, except by numaslub_publish(), a bounded yield; a publish
// holds it while it takes allocator locks one at a time, and nobody holding
// an allocator lock takes it (callers are not nested: allocator_busy()).
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaslub {

// The "name value" lines of the vmstat view. The shim passes its report's
// (with the mmap and metadata counters); null means vmstat() plus
// reclaim_vmstat().
using VmstatTextFn = std::size_t (*)(char* buf, std::size_t cap);

// Turns publishing on when config().publish is set (the library constructor
// calls it): installs the tick hook; the file comes later. Idempotent.
void publish_init(VmstatTextFn vmstat_text);

// Publishes now, creating the file if there is none. Returns 0, or an
// errno: ENOTSUP (publish=0, or at exit), EAGAIN (called from inside the
// allocator, or another thread kept the writer flag), ESRCH (a process
// whose fork numaslub did not see), or why the file could not be made.
int publish_now();

// In a fork child, before anything allocates (`self`: the forking thread's
// id in the parent).
void publish_fork_child(std::uint32_t self);

// At exit: stops publishing and removes the file.
void publish_exit();

// This process's file while it is published, else null (tests, tools).
const char* publish_path();

// Snapshots this process published, and the time they took (for vmstat).
struct PublishStats {
  std::uint64_t published = 0;
  std::uint64_t ns = 0;
};
PublishStats publish_stats();

// The per-user directory: "$TMPDIR/numaslub-<euid>", TMPDIR when it is an
// absolute path, else /tmp. Returns the length (0 if it does not fit).
std::size_t publish_dir(char* buf, std::size_t cap, std::uint32_t euid);

}  // namespace numaslub
