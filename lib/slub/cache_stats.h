// The kmalloc caches' figures for readers outside lib/slub: the exported
// node statistics (numaslub_node_stats) and the published views' snapshot
// (lib/views/collect.cpp), besides slabinfo. They read the caches only
// through these calls, so the caches' structures stay the slub layer's own.
//
// Each node's part is read under the locks slabinfo takes: the list
// counters under the node's list_lock, the barn's count under the barn lock,
// one lock at a time (never both, slab.h). So one node's list counters agree
// with each other; different nodes, caches and the barn count are read at
// different instants.
#pragma once

#include <cstdint>

namespace numaslub {

// One cache's shape (fixed at set-up) and its sheaf counters.
struct CacheInfo {
  const char* name = nullptr;  // "kmalloc-64"; lives as long as the process
  std::uint32_t size = 0;      // object size
  std::uint32_t objects = 0;   // objects per slab
  std::uint32_t order = 0;     // slab order
  std::uint32_t sheaf_capacity = 0;
  std::uint32_t barn_max_full = 0;  // each barn's limit on full sheaves at first
  std::uint32_t min_partial = 0;    // empty slabs kept per node
  std::uint64_t refills = 0;        // main sheaves replaced by a full one
  std::uint64_t flushes = 0;        // main sheaves replaced by an empty one
};

// One node's part of a cache.
struct CacheNodeCounts {
  std::uint64_t inuse = 0;  // objects not on a slab freelist (allocated, in sheaves, remote-freed)
  std::uint64_t slabs = 0;
  std::uint64_t partial = 0;  // slabs on the partial list
  std::uint64_t slabs_allocated = 0;
  std::uint64_t slabs_freed = 0;
  std::uint64_t remote_frees = 0;  // frees that went home from another node's CPU
  std::uint64_t full_sheaves = 0;  // in the node's barn
};

// Cache cls's shape and counters. False (out untouched) before the caches
// are set up, or when cls >= kNrClasses. Sets nothing up itself.
bool kmem_cache_info(unsigned cls, CacheInfo* out);
// Node nid's part of cache cls. False (out untouched) before the caches are
// set up, or when cls or nid is out of range. One node a call: the callers
// walk the nodes (or the caches) themselves, with no array of kMaxNodes on
// the stack of the slow path that publishes the views.
bool kmem_cache_node_counts(unsigned cls, unsigned nid, CacheNodeCounts* out);

}  // namespace numaslub
