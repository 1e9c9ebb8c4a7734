// numaslub-info: prints the heap's views the way the kernel prints its own.
//
//   numaslub-info                 exercise the page allocator a little, then
//                                 print buddyinfo and zoneinfo
//   numaslub-info --config-help   list every NUMASLUB_CONF option
#include <cstdio>
#include <cstring>

#include "lib/base/base.h"
#include "lib/buddy/buddy.h"

using namespace numaslub;

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--config-help") == 0) {
    config_print_help(1);
    return 0;
  }
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
