// include/numaslub/numaslub.h: the library's own exported API.
#include "numaslub/numaslub.h"

#include <cerrno>
#include <cstring>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"
#include "lib/slub/slub.h"
#include "lib/views/views.h"

using namespace numaslub;

extern "C" {

NS_EXPORT void* numaslub_malloc_node(size_t size, int node) {
  return kmalloc_node(size, node);
}

NS_EXPORT int numaslub_nr_nodes(void) {
  PageAllocator* pa = slub_init() ? page_allocator_if_ready() : nullptr;
  return pa ? static_cast<int>(pa->nr_nodes()) : 0;
}

NS_EXPORT int numaslub_node_stats(int node, struct numaslub_node_stat* out, size_t size) {
  PageAllocator* pa = slub_init() ? page_allocator_if_ready() : nullptr;
  if (!pa || node < 0 || static_cast<unsigned>(node) >= pa->nr_nodes() || !out) {
    errno = EINVAL;
    return -1;
  }
  const unsigned nid = static_cast<unsigned>(node);
  numaslub_node_stat st = {};
  st.phys_node = static_cast<int>(pa->arena().node(nid).phys_node);
  st.allowed = pa->arena().policy().allows(nid) ? 1 : 0;
  Zone& z = pa->zone(nid);
  {
    LockGuard<Mutex> g(z.lock);
    st.present_bytes = z.present_pages << kPageShift;
    st.free_bytes = z.free_pages << kPageShift;
  }
  for (unsigned c = 0; c < pa->nr_cpus(); ++c)
    if (PerCpuPages* p = pa->pcp(c, nid)) st.free_bytes += p->pages() << kPageShift;
  st.allocated_bytes = st.present_bytes > st.free_bytes ? st.present_bytes - st.free_bytes : 0;
  const NodeStats& ns = pa->node_stats(nid);
  st.numa_hit = ns.alloc_local;
  st.numa_miss = ns.alloc_fallback;
  st.numa_fail = ns.alloc_fail;
  st.pages_remote_freed = ns.remote_free.load(std::memory_order_relaxed);
  CacheNodeCounts k;
  for (unsigned cls = 0; kmem_cache_node_counts(cls, nid, &k); ++cls) {
    st.objects_remote_freed += k.remote_frees;
    st.slab_objects += k.inuse;
  }
  std::memcpy(out, &st, size < sizeof st ? size : sizeof st);
  return 0;
}

NS_EXPORT size_t numaslub_numa_policy(char* buf, size_t len) {
  PageAllocator* pa = slub_init() ? page_allocator_if_ready() : nullptr;
  if (!pa) return len ? (buf[0] = '\0', 0) : 0;
  return pa->arena().policy().describe(buf, len);
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

NS_EXPORT size_t numaslub_validate(void) {
  return kmem_validate();
}

NS_EXPORT size_t numaslub_trim(void) {
  return kmem_trim();
}

NS_EXPORT int numaslub_publish(void) {
  if (!slub_init()) {
    errno = ENOMEM;
    return -1;
  }
  if (int e = publish_now()) {
    errno = e;
    return -1;
  }
  return 0;
}

}  // extern "C"
