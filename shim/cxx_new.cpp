// Every form of C++ operator new and delete (plain, array, nothrow, sized,
// std::align_val_t), forwarded to the kmalloc family. The throwing forms
// follow [new.delete.single]: on failure call the new_handler and retry,
// and throw std::bad_alloc when there is none.
#include <new>

#include "lib/base/base.h"
#include "lib/slub/slub.h"  // the inline fast paths (kmalloc.h)

using numaslub::kfree;
using numaslub::kfree_sized;
using numaslub::kmalloc;
using numaslub::kmalloc_aligned;

namespace {

NS_NOINLINE void* new_slow(std::size_t size, std::size_t align, bool nothrow) {
  for (;;) {
    void* p = align ? kmalloc_aligned(align, size) : kmalloc(size);
    if (p) return p;
    std::new_handler h = std::get_new_handler();
    if (!h) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    h();
  }
}

// A miss of the fast path: the slow path, then the new_handler loop. Out of
// line and reached by a tail call, so that operator new's fast path is
// malloc's, with no frame to set up for the failure case.
NS_NOINLINE void* new_miss(std::size_t size) {
  if (void* p = numaslub::kmalloc_slow(size); NS_LIKELY(p)) return p;
  return new_slow(size, 0, false);
}

NS_NOINLINE void* new_miss_nothrow(std::size_t size) noexcept {
  if (void* p = numaslub::kmalloc_slow(size); NS_LIKELY(p)) return p;
  try {
    return new_slow(size, 0, true);
  } catch (...) {
    return nullptr;
  }
}

NS_ALWAYS_INLINE void* new_impl(std::size_t size) {
  return numaslub::kmalloc_or(size, [size] { return new_miss(size); });
}

NS_ALWAYS_INLINE void* new_nothrow(std::size_t size) noexcept {
  return numaslub::kmalloc_or(size, [size] { return new_miss_nothrow(size); });
}

void* new_aligned(std::size_t size, std::align_val_t al, bool nothrow) {
  auto align = static_cast<std::size_t>(al);
  if (void* p = kmalloc_aligned(align, size)) return p;
  if (!nothrow) return new_slow(size, align, false);
  try {
    return new_slow(size, align, true);
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

NS_EXPORT void* operator new(std::size_t size) {
  return new_impl(size);
}
NS_EXPORT void* operator new[](std::size_t size) {
  return new_impl(size);
}
NS_EXPORT void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return new_nothrow(size);
}
NS_EXPORT void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return new_nothrow(size);
}
NS_EXPORT void* operator new(std::size_t size, std::align_val_t al) {
  return new_aligned(size, al, false);
}
NS_EXPORT void* operator new[](std::size_t size, std::align_val_t al) {
  return new_aligned(size, al, false);
}
NS_EXPORT void* operator new(std::size_t size, std::align_val_t al,
                             const std::nothrow_t&) noexcept {
  return new_aligned(size, al, true);
}
NS_EXPORT void* operator new[](std::size_t size, std::align_val_t al,
                               const std::nothrow_t&) noexcept {
  return new_aligned(size, al, true);
}

NS_EXPORT void operator delete(void* p) noexcept {
  kfree(p);
}
NS_EXPORT void operator delete[](void* p) noexcept {
  kfree(p);
}
NS_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept {
  kfree(p);
}
NS_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept {
  kfree(p);
}
NS_EXPORT void operator delete(void* p, std::size_t size) noexcept {
  kfree_sized(p, size);
}
NS_EXPORT void operator delete[](void* p, std::size_t size) noexcept {
  kfree_sized(p, size);
}
NS_EXPORT void operator delete(void* p, std::align_val_t) noexcept {
  kfree(p);
}
NS_EXPORT void operator delete[](void* p, std::align_val_t) noexcept {
  kfree(p);
}
NS_EXPORT void operator delete(void* p, std::size_t size, std::align_val_t) noexcept {
  kfree_sized(p, size);
}
NS_EXPORT void operator delete[](void* p, std::size_t size, std::align_val_t) noexcept {
  kfree_sized(p, size);
}
NS_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  kfree(p);
}
NS_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  kfree(p);
}
