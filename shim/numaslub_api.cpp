// include/numaslub/numaslub.h: the library's own exported API.
#include "numaslub/numaslub.h"

#include "lib/base/compiler.h"
#include "lib/buddy/page_alloc.h"
#include "lib/slub/kmalloc.h"

using namespace numaslub;

extern "C" {

NS_EXPORT void* numaslub_malloc_node(size_t size, int node) {
  return kmalloc_node(size, node);
}

NS_EXPORT int numaslub_nr_nodes(void) {
  PageAllocator* pa = slub_init() ? page_allocator_if_ready() : nullptr;
  return pa ? static_cast<int>(pa->nr_nodes()) : 0;
}

NS_EXPORT size_t numaslub_buddyinfo(char* buf, size_t len) {
  PageAllocator* pa = page_allocator_if_ready();
  if (!pa) return len ? (buf[0] = '\0', 0) : 0;
  return pa->buddyinfo(buf, len);
}

NS_EXPORT size_t numaslub_zoneinfo(char* buf, size_t len) {
  PageAllocator* pa = page_allocator_if_ready();
  if (!pa) return len ? (buf[0] = '\0', 0) : 0;
  return pa->zoneinfo(buf, len);
}

NS_EXPORT size_t numaslub_slabinfo(char* buf, size_t len) {
  return slabinfo(buf, len);
}

NS_EXPORT size_t numaslub_vmstat(char* buf, size_t len) {
  return vmstat(buf, len);
}

NS_EXPORT size_t numaslub_trim(void) {
  return kmem_trim();
}

}  // extern "C"
