// Live views from another process: the reader's side (numaslub-info --pid,
// --list and numaslub-top; snapshot.h has the format, publish.h the
// writer).
//
// A reader maps a target's file, copies the latest complete snapshot out of
// it without any help from the target (the latch in snapshot.h), and can
// ask for a fresher one by adding to FileHeader::request, which the target
// serves at its next slow path. Like the publisher, nothing here calls
// malloc: the caller gives the buffer a snapshot is copied into.
//
// Staleness. A file outlives its process after a crash, _exit or exec. A
// file is live only while all of these hold: the target has not marked it
// exiting; its pid exists and is ours to signal; /proc/<pid>/stat gives
// the start time the file recorded (a reused pid gives another); and, where
// /proc/<pid>/maps can be read, the process still maps the file (after an
// exec it does not). list_targets removes the files that fail, and the
// temporary files of dead pids.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lib/views/snapshot.h"

namespace numaslub::pub {

struct Target {
  int pid = 0;
  void* map = nullptr;
  std::size_t size = 0;
  bool writable = false;  // mapped read-write: request_snapshot works
  std::uint64_t ino = 0;
  std::uint64_t snap_off[2] = {};  // as checked at open (the file's own may change)
  std::uint64_t snap_size = 0;
  const FileHeader* hdr() const { return static_cast<const FileHeader*>(map); }
};

// The per-user directory this reader looks in: publish_dir for its euid.
std::size_t default_dir(char* buf, std::size_t cap);

// Opens and maps dir/<pid> after checking that it is a regular file of
// this user's with a header of this version whose sizes add up. Returns 0
// or an errno: ENOENT (no file), EPERM (the file or directory belongs to
// someone else, or others may write it), EPROTO (not a numaslub views file
// of this version, or the pid in it is not its name).
int target_open(const char* dir, int pid, Target* t);
void target_close(Target* t);

// Bytes read_snapshot needs: a copy of the header and of one snapshot.
std::size_t snapshot_bytes(const Target& t);

// Copies the latest complete snapshot into buf and points *out at its
// parts. Returns 0, or ENODATA (nothing published yet), EAGAIN (no
// consistent copy after many tries), EBADMSG (a copy whose checksum or
// counts do not check out), ENOSPC (buf too small).
int read_snapshot(const Target& t, void* buf, std::size_t cap, Snapshot* out);

// Asks the target for a fresh snapshot. Returns the seq now published:
// wait_snapshot(t, seq, ms) then waits for a newer one.
std::uint64_t request_snapshot(const Target& t);
// Waits up to timeout_ms for a snapshot newer than `after`; true if one came.
bool wait_snapshot(const Target& t, std::uint64_t after, unsigned timeout_ms);

// Writes the heap profile of live sampled memory that process pid (prof=1)
// keeps in dir/<pid>.heap (lib/slub/prof.h) to out_fd, in the text format
// google-pprof reads, with /proc/<pid>/maps as its MAPPED_LIBRARIES. The
// records are copied as they are, each consistent by its sequence word: the
// target is not stopped, signalled or asked for anything. Returns 0 or an
// errno: ENOENT (no such file: prof=0, publish=0, or not published yet),
// EPERM (not this user's, or others may write it), EPROTO (not a heap file
// of this version, or of another pid), ESRCH (the process is gone).
int write_heap_profile(const char* dir, int pid, int out_fd);

enum class Liveness { kLive, kExiting, kDead, kReused, kNotMapped };
Liveness target_liveness(const Target& t);
const char* liveness_name(Liveness l);

// The internal checks a consistent snapshot passes: for every zone,
// free_pages and clean_pages are the sums over the orders and pcp_pages the
// sum of its CPUs' lists; for every cache, the totals are the sums of its
// node parts. Returns true, or false with the first mismatch in why.
bool check_snapshot(const Snapshot& s, char* why, std::size_t cap);

// Visits every live target in dir (opened; the callback must not keep it).
// With `clean`, the files of processes that are gone or not the same any
// more are removed (checked to be the same file right before), and the
// temporary files of dead pids.
struct ListStats {
  unsigned live = 0;
  unsigned removed = 0;  // stale files removed
  unsigned stale = 0;    // stale files left (clean off, or not removable)
  unsigned bad = 0;      // files that are not views files, of live pids
};
using ListFn = void (*)(Target& t, void* ctx);
ListStats list_targets(const char* dir, bool clean, ListFn fn, void* ctx);

}  // namespace numaslub::pub
