// The platform contract for address space: what the numa layer needs from the
// OS. The real implementation makes system calls; tests supply their own (a
// fixed region, or one that refuses commits to exercise ENOMEM paths), as
// snmalloc's PAL and tcmalloc's injected "unback" do.
//
// Every function returns 0 on success or a positive errno.
#pragma once

#include <cstddef>

namespace numaslub {

struct OsMem {
  // Reserve len bytes of address space aligned to `align`, inaccessible, not
  // charged against overcommit. *out receives the address; on entry it holds
  // a preferred address (aligned), or null. A preference is only a hint.
  int (*reserve)(std::size_t len, std::size_t align, void** out);
  // Make [addr, addr+len) of a reservation readable and writable.
  int (*commit)(void* addr, std::size_t len);
  // Return [addr, addr+len) to inaccessible (undo a commit that failed half way).
  int (*decommit)(void* addr, std::size_t len);
  // Bind [addr, addr+len) to physical node `node` (preferred policy).
  int (*bind)(void* addr, std::size_t len, unsigned node);
  // Drop the contents of committed pages; they read as zero afterwards.
  int (*release)(void* addr, std::size_t len);
  // Give [addr, addr+len) the memory policy `mode` (MPOL_BIND, MPOL_INTERLEAVE,
  // ...) over the physical nodes set in mask (maxnode bits). Optional: where
  // null, the arena asks `bind` for a preferred node instead.
  int (*set_policy)(void* addr, std::size_t len, int mode, const unsigned long* mask,
                    unsigned long maxnode) = nullptr;
  // Give a reservation (or the part [addr, addr+len) of one) back to the OS.
  // Optional: where null, a reservation that turned out useless is kept.
  int (*unreserve)(void* addr, std::size_t len) = nullptr;
  // Reserve exactly [addr, addr+len), inaccessible like `reserve`, to grow a
  // reservation in place; EEXIST when anything is mapped there, ENOMEM when
  // RLIMIT_AS refuses. Optional: where null, an arena reserves all it may
  // ever use at start-up.
  int (*extend)(void* addr, std::size_t len) = nullptr;
  // True when all of [addr, addr+len) is mapped (by anyone). Optional: a
  // fork child's repair of an extension in flight needs it.
  bool (*probe_mapped)(void* addr, std::size_t len) = nullptr;
  // Ask for [addr, addr+len) (committed, 2 MiB aligned) to be backed by huge
  // pages where the OS can (MADV_HUGEPAGE). Advice only: an error (EINVAL
  // from a kernel without transparent huge pages) changes nothing else.
  // Optional: where null, the heap stays on base pages.
  int (*advise_huge)(void* addr, std::size_t len) = nullptr;
};

// System calls: mmap(PROT_NONE, MAP_NORESERVE), mprotect, mbind, madvise
// (MADV_DONTNEED, MADV_HUGEPAGE).
const OsMem& os_mem_linux();

}  // namespace numaslub
