// Sampled heap profiles (prof=1): jemalloc's prof, the kernel's page_owner.
//
// Sampling. Each thread counts down the bytes it asks for; the allocation
// that takes the count to zero or below is sampled and the count is drawn
// again from an exponential distribution of mean prof_sample (512 KiB). So
// a request of s bytes is sampled with probability 1 - exp(-s / prof_sample)
// whatever came before it (the draw is memoryless): large blocks always,
// small ones in proportion. A profile scales each sample back up by the
// inverse of that probability (prof_dump.cpp), as gperftools and jemalloc do.
//
// Where the countdown lives. The fast paths of kmalloc.h have no counter,
// and stay the same instructions with prof=0. With prof=1 (or leak_check=1)
// no main sheaf is ever installed, so every small malloc and free misses
// the fast path; the slow path counts, then pops or pushes the CPU's spare
// sheaf under the set's lock (slub.cpp, "prof=1"). Large blocks and
// mappings always take the slow path.
//
// A sampled small allocation is served as a large block of its own (one
// page for most classes): its head page carries PG_sampled and the record
// (priv[3]), so its free misses the fast path by itself (a page of no
// slab) and kfree_slow finds the record. Sampled large blocks carry the
// same; sampled direct mappings are found by address in the records.
//
// Records. Each live sample has a 256-byte ProfRecord (size asked for,
// address, call stack captured without allocating: stack_trace.h) in one
// region reserved at the first sample. Once the process publishes its views
// (lib/views), the region is a shared file next to the views file,
// `<dir>/<pid>.heap` (prof_attach), which numaslub-info --heap-profile
// copies from outside without stopping the target: each record has a
// sequence word, odd while its owner writes it (the kernel's seqcount), and
// the header's `hwm` bounds the records ever used.
//
// Lock: g_prof_lock (a leaf: nothing else is taken while it is held) guards
// the free list, the counts and every record write; it is taken only on
// the slow path of a sampled allocation or free. A signal handler nested in
// the allocator (allocator_busy) is not sampled (its allocations are
// mappings of their own, reentry.h) and defers its frees, so it never waits
// for the lock. A fork child frees the lock of a thread gone with the fork
// and rebuilds the free list from the records (prof_fork_child).
#pragma once

#include <cstddef>
#include <cstdint>

namespace numaslub {

inline constexpr std::uint64_t kProfMagic = 0x3170616568736e00ULL;  // "\0nsheap1"
inline constexpr std::uint32_t kProfVersion = 1;
inline constexpr unsigned kProfFrames = 26;
inline constexpr std::size_t kProfHeaderBytes = 4096;

struct ProfRecord {
  std::uint64_t seq;        // odd while being written
  std::uint64_t addr;       // the object; 0: a free record
  std::uint64_t size;       // bytes asked for
  std::uint64_t next_free;  // while free: index + 1 of the next free record
  std::uint64_t when_ns;    // monotonic time of the allocation
  std::uint32_t tid;
  std::uint32_t nframes;
  std::uint64_t frames[kProfFrames];  // return addresses, innermost first
};
static_assert(sizeof(ProfRecord) == 256);

// The first kProfHeaderBytes of the region (and of the file).
struct ProfFileHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t record_size;
  std::uint32_t header_size;
  std::uint32_t capacity;  // records the region holds at most
  std::int32_t pid;
  std::uint32_t reserved;
  std::uint64_t interval;  // prof_sample
  std::uint64_t hwm;       // records [0, hwm) have been used (release store)
  std::uint64_t live;      // live records
  std::uint64_t sampled;   // samples taken since start
  std::uint64_t dropped;   // samples with no room for a record
};

// prof or leak_check; set once at set-up (slub.cpp).
extern bool g_prof_on;

// Charges `bytes` to the calling thread's countdown; true when this
// allocation is to be sampled.
bool prof_sample_now(std::size_t bytes);

// Records a sample of `size` bytes at p with the caller's stack. Returns
// the record, or null when there is no room (counted as dropped).
ProfRecord* prof_record(const void* p, std::size_t size, bool mapping);
// The object of record r (at p) is freed. A record that is not p's any
// more (a fork child's repair) is left alone.
void prof_release(ProfRecord* r, const void* p);
// A direct mapping at p is freed: drops its record, if it has one.
void prof_release_mapping(const void* p);
// The sampled object at `from` (record r, null for a mapping) is now at
// `to` with `size` bytes (realloc in place, mremap).
void prof_moved(ProfRecord* r, const void* from, const void* to, std::size_t size);

// Makes the region the shared file fd (empty, opened read-write): its
// contents are copied in and the file is mapped over the region. Returns 0
// or an errno. The views publisher calls it when it makes its file.
int prof_attach(int fd);
// In a fork child, before anything allocates.
void prof_fork_child(std::uint32_t self);

// The region (header, then records) and its readable size, for this
// process's own dump and leak check; null before the first sample.
const ProfFileHeader* prof_region(std::size_t* bytes);

// Copies record i of a region consistently (seqcount). False when the
// record is free or kept changing.
bool prof_read_record(const ProfFileHeader* h, std::size_t i, ProfRecord* out);

// How many allocations of `size` bytes one sample stands for:
// 1 / (1 - exp(-size / interval)).
double prof_scale(std::uint64_t size, std::uint64_t interval);

// Writes a heap profile in gperftools' legacy text format ("heap profile:
// ... @ heapprofile", one line per sample scaled up by its sampling
// probability, then MAPPED_LIBRARIES: and the maps text read from maps_fd),
// which google-pprof reads. No allocation. Returns 0 or an errno.
int prof_write_profile(int out_fd, const ProfFileHeader* h, std::size_t bytes, int maps_fd);

// At exit (the library destructor): the prof_final profile, then the leak
// check (leak.h). Returns the exit status to force (leak_exitcode when
// leaks were found), or 0.
int prof_exit();

}  // namespace numaslub
