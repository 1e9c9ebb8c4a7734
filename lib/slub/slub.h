// lib/slub: size classes, kmem_caches of slabs cut from buddy blocks,
// per-CPU sheaves on an rseq fast path (or per-thread), per-node partial
// lists and barns, large blocks and direct mappings (vmalloc.h), and the slabinfo view.
#pragma once

#include "lib/slub/vmalloc.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/size_class.h"
#include "lib/slub/slab.h"
