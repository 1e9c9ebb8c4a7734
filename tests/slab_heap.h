// The heap of the tests that run a KmemCache on its own (slub on a buddy,
// no kmalloc): one fake node of 256 MiB in 16 MiB sections, set up at
// first use; null when it cannot be.
#pragma once

#include <cstddef>

#include "lib/buddy/page_alloc.h"

namespace numaslub::testutil {

inline PageAllocator* slab_heap() {
  constexpr std::size_t kMiB = 1024 * 1024;
  static Topology real, topo;
  static PageAllocator pa;
  static bool ready = [] {
    real.load_sysfs();
    topo.make_fake(real, 1);
    Config cfg;
    cfg.arena_size = 256 * kMiB;
    cfg.section_size = 16 * kMiB;
    return pa.init(cfg, topo, os_mem_linux()) == 0;
  }();
  return ready ? &pa : nullptr;
}

}  // namespace numaslub::testutil
