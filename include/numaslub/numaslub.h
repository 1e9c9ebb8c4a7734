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

/* One node's share of the heap. Block counts are page-allocator blocks
 * (slabs, large blocks); a node-directed small object served by another
 * node counts as one miss too. */
struct numaslub_node_stat {
  int phys_node;                           /* the kernel's id of the node */
  int allowed;                             /* 1 if the memory policy lets the heap use it */
  size_t present_bytes;                    /* heap onlined on the node */
  size_t free_bytes;                       /* of that, free (buddy and per-CPU lists) */
  size_t allocated_bytes;                  /* present - free: slabs and large blocks */
  unsigned long long numa_hit;             /* blocks asked of this node and served by it */
  unsigned long long numa_miss;            /* asked of this node, served by another */
  unsigned long long numa_fail;            /* asked of this node, no node could serve */
  unsigned long long pages_remote_freed;   /* its blocks freed by another node's CPU */
  unsigned long long objects_remote_freed; /* its slab objects freed on another node
                                              and sent home */
  unsigned long long slab_objects;         /* its slab objects in use or cached per CPU */
};

/* Fills *out (size: sizeof *out, for compatibility) for logical node
 * `node`. Returns 0, or -1 with errno EINVAL for a node that does not exist. */
int numaslub_node_stats(int node, struct numaslub_node_stat* out, size_t size);

/* The heap's memory policy as text ("local", "interleave:0-3", "bind:1",
 * "preferred:1"; " (process policy N)" when taken from numactl's). Returns
 * the length written; buf is always NUL-terminated. */
size_t numaslub_numa_policy(char* buf, size_t len);

/* The heap's views in the kernel's layouts, written into buf (always
 * NUL-terminated); each returns the length written. */
size_t numaslub_buddyinfo(char* buf, size_t len);
size_t numaslub_zoneinfo(char* buf, size_t len);
size_t numaslub_slabinfo(char* buf, size_t len);
size_t numaslub_vmstat(char* buf, size_t len);

/* slub_debug's validation, as the kernel's /sys/kernel/slab/<cache>/validate:
 * walks every slab of every debug cache (NUMASLUB_CONF=slub_debug=...) and
 * checks each object's state, red zones (Z), poison (P), the slab's
 * freelist and counters and its padding. Each problem is reported (to
 * stderr or debug_log, in the kernel's layout, without aborting whatever
 * debug_continue says) and repaired. Returns the number of problems; 0
 * when no cache is a debug cache. */
size_t numaslub_validate(void);

/* Empties every cache and gives all free memory back to the OS; returns
 * the pages released (malloc_trim returns whether this is nonzero). */
size_t numaslub_trim(void);

/* Publishes the views above now, for readers in other processes
 * (`numaslub-info --pid`, `numaslub-top`). The process keeps them in
 * $TMPDIR/numaslub-<uid>/<pid> (made at a slow path 1 s after start, or by
 * this call; removed at exit) and updates them from its slow paths, at
 * most every publish_ms. A program whose allocations then stay in the
 * per-CPU caches reaches no slow path, and the last changes of a phase may
 * wait there unpublished: it calls this so readers see the state it ended in.
 * Returns 0, or -1 with errno ENOTSUP (publish=0), EAGAIN (called from a
 * signal handler that interrupted the allocator, or busy), or why the file
 * could not be made. */
int numaslub_publish(void);

#ifdef __cplusplus
}
#endif

#endif /* NUMASLUB_NUMASLUB_H */
