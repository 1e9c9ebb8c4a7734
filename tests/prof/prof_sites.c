// Known amounts per call site, for the heap profile and the leak check
// (tests/prof/prof_test.sh):
//   site_small:  8 MiB in 64-byte blocks (and 1 MiB for the array that
//                keeps them)
//   site_page:   4 MiB in 4 KiB blocks
//   site_large:  1 MiB in 100 KiB blocks
// Of each site, half the blocks are leaked and half kept reachable: from
// a global (site_small, through an array of pointers), a chain of heap
// objects (site_page, from a global), a stack variable of the function
// that calls exit (site_large). Flags in argv[1]: "noleak" leaks nothing;
// "small" makes the first two sites 16 times smaller (512 KiB, 256 KiB:
// every allocation can be tracked, prof_sample=1); "hold" waits on stdin
// before exit (for numaslub-info --heap-profile from outside).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noipa))  // no inlining, no folding

// numaslub's: makes the views (and the heap profile's file) now, not at a
// slow path a second after start. Weak under LD_PRELOAD (absent under
// another allocator); a strong reference when linked with libnumaslub.a,
// where a weak one would not pull its definition in.
#ifdef NS_LINKED
extern int numaslub_publish(void);
#define HAVE_PUBLISH 1
#else
extern int numaslub_publish(void) __attribute__((weak));
#define HAVE_PUBLISH (numaslub_publish != NULL)
#endif

void** volatile g_kept_small;  // a global holding half the small blocks
void* volatile g_chain;        // the head of site_page's chain
void* volatile g_sink;
static size_t g_div = 1;

// Each block is written so that a leaked one holds no stale pointer to
// another (every word overwritten).
static void fill(void* p, size_t n) {
  memset(p, 0x5c, n);
}

NOINLINE void** site_small(int leak) {
  size_t n = (8u << 20) / 64 / g_div;
  void** kept = malloc(n * sizeof(void*));  // 1 MiB (64 KiB small): counted at this site
  for (size_t i = 0; i < n; ++i) {
    void* p = malloc(64);
    fill(p, 64);
    kept[i] = i % 2 == 0 || !leak ? p : NULL;  // odd ones leak
    g_sink = p;
  }
  g_sink = NULL;  // a leaked block must be referenced by nothing
  return kept;
}

// A chain: each kept 4 KiB block's first word points to the next.
NOINLINE void* site_page(int leak) {
  size_t n = (4u << 20) / 4096 / g_div;
  void* head = NULL;
  for (size_t i = 0; i < n; ++i) {
    void** p = malloc(4096);
    fill(p, 4096);
    if (i % 2 == 0 || !leak) {
      p[0] = head;
      head = p;
    }
    g_sink = p;
  }
  g_sink = NULL;
  return head;
}

NOINLINE void** site_large(int leak, void** kept) {
  size_t n = (1u << 20) / (100 << 10);  // 10 blocks
  for (size_t i = 0; i < n; ++i) {
    void* p = malloc(100 << 10);
    fill(p, 100 << 10);
    kept[i] = (i % 2 == 0 || !leak) ? p : NULL;
    g_sink = p;
  }
  g_sink = NULL;
  return kept;
}

// Overwrites the stack below the caller's frame, where site_large's frame
// was: a stale copy of a leaked pointer there would make it look reachable
// (the scan is conservative).
NOINLINE void scrub_stack(void) {
  volatile char junk[16384];
  for (size_t i = 0; i < sizeof junk; ++i) junk[i] = 0;
}

// Exits from inside: its frame (and kept_large on it) is live while the
// library's destructor scans the stack.
NOINLINE void finish(int leak, int hold) {
  void* kept_large[16];
  site_large(leak, kept_large);
  scrub_stack();
  if (hold) {
    if (HAVE_PUBLISH) numaslub_publish();
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char c;
    if (read(0, &c, 1) < 0) return;
  }
  g_sink = kept_large;
  exit(0);
}

int main(int argc, char** argv) {
  int leak = !(argc > 1 && strstr(argv[1], "noleak"));
  int hold = argc > 1 && strstr(argv[1], "hold");
  if (argc > 1 && strstr(argv[1], "small")) g_div = 16;
  g_kept_small = site_small(leak);
  g_chain = site_page(leak);
  finish(leak, hold);
  return 0;
}
