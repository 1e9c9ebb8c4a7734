// The C allocation API, exported for LD_PRELOAD and static linking. Thin
// forwarders to lib/slub's kmalloc family; what is here is POSIX and glibc
// semantics: argument checks, errno, and pointers the heap does not own.
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "lib/base/base.h"
#include "lib/numa/numa.h"
#include "lib/slub/slub.h"  // the inline fast paths (kmalloc.h)
#include "shim/shim.h"

using namespace numaslub;

namespace numaslub::shim {
constinit NextAllocator g_next;
}  // namespace numaslub::shim

namespace {

// A live small object of ours that leaves its class: moved with the fast
// paths (out of line: its frame and memcpy would cost the in-place case).
NS_NOINLINE void* realloc_small_move(void* p, std::size_t have, std::size_t size) {
  void* q = kmalloc(size);
  if (!q) return nullptr;  // errno set; p intact
  std::memcpy(q, p, have < size ? have : size);
  kfree(p);
  return q;
}

// Everything but a live small object: size 0, large blocks, mappings, debug
// caches, misuse (krealloc), and pointers that are not ours.
NS_NOINLINE void* realloc_other(void* p, std::size_t size) {
  if (p && !kowns(p)) {
    kcheck_foreign(p, "realloc");  // a freed or interior pointer of ours aborts here
    // Not ours (an RTLD_DEEPBIND library's, or from before the preload):
    // move it into our heap if we can learn its size, else let its
    // allocator resize it.
    if (shim::g_next.usable_size) {
      std::size_t old = shim::g_next.usable_size(p);
      void* q = kmalloc(size ? size : 1);
      if (!q) return nullptr;
      std::memcpy(q, p, old < size ? old : size);
      shim::g_next.free(p);
      if (size == 0) {
        kfree(q);
        return nullptr;
      }
      return q;
    }
    if (shim::g_next.realloc) return shim::g_next.realloc(p, size);
  }
  return krealloc(p, size);
}

// A live small object (checked as free checks it) that stays in its class
// is kept at once, without a lock or a call (ksize_small).
NS_ALWAYS_INLINE void* realloc_impl(void* p, std::size_t size) {
  if (std::size_t have = ksize_small(p); NS_LIKELY(have)) {
    if (realloc_keeps(have, size)) return p;  // never for size 0
    if (size) return realloc_small_move(p, have, size);
  }
  return realloc_other(p, size);
}

// glibc's rules: an alignment that is not a power of two (0 included) is
// rounded up to one; only one above 2^63 (SIZE_MAX / 2 + 1), which has no
// power of two to round up to, is EINVAL. Any power of two is valid, and a
// request that cannot be met (an impossible size or alignment) is ENOMEM, as for
// aligned_alloc and posix_memalign.
void* memalign_impl(std::size_t align, std::size_t size) {
  if (align > (SIZE_MAX >> 1) + 1) {
    errno = EINVAL;
    return nullptr;
  }
  if (!is_pow2(align)) align = std::size_t{1} << ilog2_ceil(align);
  return kmalloc_aligned(align, size);
}

}  // namespace

extern "C" {

NS_EXPORT void* malloc(std::size_t size) {
  return kmalloc(size);
}

NS_EXPORT void free(void* p) {
  kfree(p);
}

NS_EXPORT void cfree(void* p) {
  kfree(p);
}

NS_EXPORT void* calloc(std::size_t n, std::size_t size) {
  return kcalloc(n, size);
}

NS_EXPORT void* realloc(void* p, std::size_t size) {
  return realloc_impl(p, size);
}

NS_EXPORT void* reallocarray(void* p, std::size_t n, std::size_t size) {
  std::size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc_impl(p, total);
}

NS_EXPORT int posix_memalign(void** out, std::size_t align, std::size_t size) {
  if (!is_pow2(align) || align % sizeof(void*) != 0) return EINVAL;
  int saved = errno;
  void* p = kmalloc_aligned(align, size);
  errno = saved;  // posix_memalign reports through its result, not errno
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

NS_EXPORT void* aligned_alloc(std::size_t align, std::size_t size) {
  if (!is_pow2(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return kmalloc_aligned(align, size);
}

NS_EXPORT void* memalign(std::size_t align, std::size_t size) {
  return memalign_impl(align, size);
}

NS_EXPORT void* valloc(std::size_t size) {
  return kmalloc_aligned(kPageSize, size);
}

NS_EXPORT void* pvalloc(std::size_t size) {
  std::size_t rounded = align_up(size ? size : 1, kPageSize);
  if (rounded < size) {
    errno = ENOMEM;
    return nullptr;
  }
  return kmalloc_aligned(kPageSize, rounded);
}

NS_EXPORT std::size_t malloc_usable_size(void* p) {
  if (!p) return 0;
  if (std::size_t n = ksize(p)) return n;
  return shim::g_next.usable_size ? shim::g_next.usable_size(p) : 0;
}

// C23.
NS_EXPORT void free_sized(void* p, std::size_t size) {
  kfree_sized(p, size);
}
NS_EXPORT void free_aligned_sized(void* p, std::size_t align, std::size_t size) {
  (void)align;
  kfree_sized(p, size);
}

NS_EXPORT int malloc_trim(std::size_t pad) {
  (void)pad;
  return kmem_trim() > 0 ? 1 : 0;
}

NS_EXPORT int mallopt(int param, int value) {
  // Accepted for compatibility; glibc's arena and threshold tunables have no
  // counterpart here (see README). Returns 1, glibc's "success".
  (void)param;
  (void)value;
  return 1;
}

NS_EXPORT struct mallinfo2 mallinfo2() {
  HeapTotals t = heap_totals();
  struct mallinfo2 mi = {};
  mi.arena = t.heap_bytes;
  mi.ordblks = t.free_blocks;
  mi.hblks = t.vmalloc_count;
  mi.hblkhd = t.vmalloc_bytes;
  mi.uordblks = t.heap_bytes - t.free_bytes;
  mi.fordblks = t.free_bytes;
  mi.keepcost = 0;
  return mi;
}

NS_EXPORT struct mallinfo mallinfo() {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi = {};
  mi.arena = static_cast<int>(m2.arena);
  mi.ordblks = static_cast<int>(m2.ordblks);
  mi.hblks = static_cast<int>(m2.hblks);
  mi.hblkhd = static_cast<int>(m2.hblkhd);
  mi.uordblks = static_cast<int>(m2.uordblks);
  mi.fordblks = static_cast<int>(m2.fordblks);
  return mi;
}

NS_EXPORT void malloc_stats() {
  shim::write_report(2);
}

NS_EXPORT int malloc_info(int options, FILE* fp) {
  (void)options;
  (void)fp;
  errno = EINVAL;  // glibc's XML format is not provided; see NUMASLUB_STATS
  return -1;
}

// glibc's internal names, so a static link never pulls in glibc's malloc.o
// (its fork and thread-exit code refer to some of them).
NS_EXPORT void* __libc_malloc(std::size_t size) {
  return kmalloc(size);
}
NS_EXPORT void __libc_free(void* p) {
  kfree(p);
}
NS_EXPORT void* __libc_calloc(std::size_t n, std::size_t size) {
  return kcalloc(n, size);
}
NS_EXPORT void* __libc_realloc(void* p, std::size_t size) {
  return realloc_impl(p, size);
}
NS_EXPORT void* __libc_memalign(std::size_t align, std::size_t size) {
  return memalign_impl(align, size);
}
NS_EXPORT void* __libc_valloc(std::size_t size) {
  return valloc(size);
}
NS_EXPORT void* __libc_pvalloc(std::size_t size) {
  return pvalloc(size);
}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
NS_EXPORT struct mallinfo __libc_mallinfo() {
  return mallinfo();
}
#pragma GCC diagnostic pop
NS_EXPORT struct mallinfo2 __libc_mallinfo2() {
  return mallinfo2();
}
NS_EXPORT int __libc_mallopt(int param, int value) {
  return mallopt(param, value);
}
NS_EXPORT int __posix_memalign(void** out, std::size_t align, std::size_t size) {
  return posix_memalign(out, align, size);
}
NS_EXPORT void __malloc_fork_lock_parent() {}  // fork safety is pthread_atfork's (lifecycle.cpp)
NS_EXPORT void __malloc_fork_unlock_parent() {}
NS_EXPORT void __malloc_fork_unlock_child() {}
NS_EXPORT void __malloc_arena_thread_freeres() {}

}  // extern "C"
