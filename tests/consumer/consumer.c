/* A program outside the tree that uses an installed numaslub: built by
 * scripts/check-install.sh with find_package(numaslub) and with pkg-config,
 * each against the shared and the static library. It checks that malloc is
 * numaslub's and that the library's own API answers. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <numaslub/numaslub.h>

int main(void) {
  /* numaslub's size classes: 100 bytes come from kmalloc-112 (glibc: 104). */
  void* p = malloc(100);
  if (!p || malloc_usable_size(p) != 112) {
    fprintf(stderr, "consumer: malloc_usable_size(malloc(100)) = %zu: not numaslub's malloc\n",
            p ? malloc_usable_size(p) : 0);
    return 1;
  }
  free(p);
  int nodes = numaslub_nr_nodes();
  if (nodes < 1) {
    fprintf(stderr, "consumer: numaslub_nr_nodes() = %d\n", nodes);
    return 2;
  }
  char* q = numaslub_malloc_node(1 << 16, 0);
  if (!q) {
    fprintf(stderr, "consumer: numaslub_malloc_node failed\n");
    return 3;
  }
  memset(q, 1, 1 << 16);
  free(q);
  static char buf[1 << 16];
  if (numaslub_slabinfo(buf, sizeof buf) == 0 || !strstr(buf, "kmalloc-112")) {
    fprintf(stderr, "consumer: no kmalloc-112 in numaslub_slabinfo()\n");
    return 4;
  }
  printf("consumer: numaslub's malloc, %d node(s)\n", nodes);
  return 0;
}
