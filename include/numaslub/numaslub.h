/* numaslub's own API, beside the standard malloc family it exports.
 *
 * Link with -lnumaslub (static or shared) or run under LD_PRELOAD and
 * declare these with this header; every function is safe to call from any
 * thread at any time.
 */
#ifndef NUMASLUB_NUMASLUB_H
#define NUMASLUB_NUMASLUB_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* kmalloc_node: size bytes whose pages lie on NUMA node `node` (a logical
 * node, 0..numaslub_nr_nodes()-1), falling back to the nearest node by
 * distance when that node is exhausted (counted as numa_miss in the stats).
 * node < 0 means the calling CPU's node. Free with free(). NULL with errno
 * ENOMEM when no node can serve, EINVAL for a node that does not exist. */
void* numaslub_malloc_node(size_t size, int node);

/* Number of NUMA nodes the heap manages (fake nodes included). */
int numaslub_nr_nodes(void);

/* The heap's views in the kernel's layouts, written into buf (always
 * NUL-terminated); each returns the length written. */
size_t numaslub_buddyinfo(char* buf, size_t len);
size_t numaslub_zoneinfo(char* buf, size_t len);
size_t numaslub_slabinfo(char* buf, size_t len);
size_t numaslub_vmstat(char* buf, size_t len);

/* Empties every cache and gives all free memory back to the OS; returns
 * the pages released (malloc_trim returns whether this is nonzero). */
size_t numaslub_trim(void);

#ifdef __cplusplus
}
#endif

#endif /* NUMASLUB_NUMASLUB_H */
