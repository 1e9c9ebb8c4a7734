// lib/slub: size classes, kmem_caches of slabs cut from buddy blocks,
// per-CPU sheaves on an rseq fast path (or per-thread), per-node partial
// lists and barns, large blocks and direct mappings (vmalloc.h), the
// slabinfo view and the caches' figures for other layers (cache_stats.h),
// and the heap profiler with its leak check.
#pragma once

#include "lib/slub/cache_stats.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/leak.h"
#include "lib/slub/prof.h"
#include "lib/slub/size_class.h"
#include "lib/slub/slab.h"
#include "lib/slub/vmalloc.h"
