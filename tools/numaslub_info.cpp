// numaslub-info: prints the heap's views the way the kernel prints its own.
//
//   numaslub-info                 exercise the page allocator a little, then
//                                 print buddyinfo and zoneinfo
//   numaslub-info --config-help   list every NUMASLUB_CONF option
//   numaslub-info validate        slub_debug's validation (numaslub_validate)
//                                 of this tool's own heap after a workload
//                                 of every size class; debug caches from
//                                 NUMASLUB_CONF's slub_debug, FZPU if unset.
//                                 Exits with the number of problems (max 255).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lib/base/config.h"
#include "lib/base/log.h"
#include "lib/buddy/page_alloc.h"
#include "lib/slub/kmalloc.h"
#include "lib/slub/size_class.h"

using namespace numaslub;

namespace {

int validate_action() {
  Config c = config();
  if (!c.slub_debug[0]) c.parse("slub_debug=FZPU");
  config_set_for_test(c);  // before the heap is set up
  // Every class, every second object kept, the rest freed: slabs partly
  // used, some full, freed objects poisoned.
  static void* kept[kNrClasses * 64];
  std::size_t n = 0;
  for (unsigned cls = 0; cls < kNrClasses; ++cls)
    for (unsigned i = 0; i < 128; ++i) {
      void* p = kmalloc(kClassSize[cls] - (i % 16));
      if (i % 2 && p)
        kept[n++] = p;
      else
        kfree(p);
    }
  std::size_t problems = kmem_validate();
  std::printf("validate: slub_debug=%s: %zu problems in %zu objects of %u caches\n",
              config().slub_debug, problems, n, kNrClasses);
  for (std::size_t i = 0; i < n; ++i) kfree(kept[i]);
  return problems > 255 ? 255 : static_cast<int>(problems);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--config-help") == 0) {
    config_print_help(1);
    return 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "validate") == 0) return validate_action();
  PageAllocator* pa = page_allocator();
  if (!pa) {
    std::fprintf(stderr, "numaslub-info: no heap could be reserved\n");
    return 1;
  }
  // A small mixed workload so the views have something to show: blocks of
  // every order on every node, half of them freed again.
  Page* held[256];
  unsigned n = 0;
  for (unsigned i = 0; i < 256; ++i) {
    unsigned order = i % kNrOrders;
    held[n] = pa->alloc_pages(static_cast<int>(i % pa->nr_nodes()), order);
    if (held[n]) ++n;
  }
  for (unsigned i = 0; i < n; i += 2) pa->free_pages(held[i], held[i]->order);
  static char buf[1 << 16];
  std::printf("== buddyinfo ==\n");
  pa->buddyinfo(buf, sizeof buf);
  std::fputs(buf, stdout);
  std::printf("== zoneinfo ==\n");
  pa->zoneinfo(buf, sizeof buf);
  std::fputs(buf, stdout);
  for (unsigned i = 1; i < n; i += 2) pa->free_pages(held[i], held[i]->order);
  return 0;
}
