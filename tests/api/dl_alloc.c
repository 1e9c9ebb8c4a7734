/* A library that allocates in its constructor and frees in its destructor:
 * dlopen/dlclose of it must work whichever malloc is in place. */
#include <stdlib.h>
#include <string.h>

static char* g_greeting;
static void* g_blocks[64];

__attribute__((constructor)) static void dl_alloc_init(void) {
  g_greeting = strdup("allocated in a constructor");
  for (int i = 0; i < 64; ++i) g_blocks[i] = malloc((size_t)(i + 1) * 100);
}

__attribute__((destructor)) static void dl_alloc_fini(void) {
  for (int i = 0; i < 64; ++i) free(g_blocks[i]);
  free(g_greeting);
}

const char* dl_alloc_greeting(void) {
  return g_greeting;
}
