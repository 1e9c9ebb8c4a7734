// The leak check at exit (leak_check=1): the kernel's kmemleak, run once.
//
// The tracked objects are the live samples of the heap profiler (prof.h;
// every allocation with prof_sample=1). A tracked object is leaked when no
// live memory points into it. "Live memory" is found the way kmemleak and
// LeakSanitizer find it, conservatively (any aligned word whose value
// points into an object, its start or inside, counts):
// - roots: the writable PT_LOAD segments (data, bss, relro) of every ELF
//   module mapped, found from /proc/self/maps and the program headers in
//   memory; the exiting thread's stack from its stack pointer up, with its
//   callee-saved registers spilled there first; the main thread's stack
//   mapping; and glibc's other thread stacks, seen as anonymous read-write
//   mappings right above a PROT_NONE guard mapping (their TLS lies at their
//   top, so it is scanned too); and the exiting thread's static TLS and TCB
//   (up to 64 KiB below the thread pointer and 4 KiB above, within its
//   mapping: libc keeps its own blocks there, dlerror's result for one);
// - then, transitively, the contents of every live heap object a scanned
//   word points into: slab objects (a free one, tagged free, is no
//   object), large blocks and direct mappings, sampled or not.
// Not seen: other threads' registers (they keep running: nothing is
// stopped), the static TLS of a thread other than the exiting one, memory
// the program mapped itself with mmap, shared mappings. A pointer kept only there makes its object
// look leaked; stale words (a dead frame, a freed object's old contents in a thread's stack) can
// make a leaked one look reachable, as with any conservative scan. Objects of slub_debug caches are
// scanned a slab at a time.
//
// The report (to fd 2) groups the leaked samples by allocation stack, the
// largest first, with counts and bytes (scaled up by the sampling
// probability when prof_sample > 1), each frame as "0xADDR (/path+0xOFF)",
// then the total and the still reachable samples. Other threads may run
// during the scan; what they change meanwhile may be misjudged.
#pragma once

#include <cstddef>

namespace numaslub {

// Runs the check and writes the report to fd. Returns the number of leaked
// samples (0: no leak, or nothing tracked).
std::size_t leak_check_report(int fd);

}  // namespace numaslub
