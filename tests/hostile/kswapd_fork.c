/* A fork while kswapd is mid-pass (issue 10). A pass takes cold free blocks
 * off the zone's lists, releases them without the zone lock, and puts them
 * back. The test seam reclaim_hold_ms keeps a pass open with its blocks
 * isolated; the program forks then. The parent's kswapd does not exist in
 * the child, so the child must put those blocks back itself: it then
 * reallocates what the parent freed without growing the heap.
 * Before, the child lost them (and Zone::alloc could wait for them forever). */
#include <numaslub/numaslub.h>

#include "hostile.h"

enum { kBlocks = 64, kBlockSize = 1 << 20 };

static long zone_field(const char* name) {
  static char buf[1 << 16];
  NS_API(numaslub_zoneinfo)(buf, sizeof buf);
  const char* p = strstr(buf, name);
  return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

static size_t present_bytes(void) {
  size_t total = 0;
  for (int n = 0; n < NS_API(numaslub_nr_nodes)(); ++n) {
    struct numaslub_node_stat st;
    CHECK(NS_API(numaslub_node_stats)(n, &st, sizeof st) == 0);
    total += st.present_bytes;
  }
  return total;
}

/* Free and isolated pages of the parent at the fork: all of it is free
 * memory the child must be able to allocate again. */
static long g_parent_pages;

static int child(void) {
  /* Leave room for what the child allocates besides (stdio, slabs); the
   * child's own kswapd may hold blocks too, for less time than Zone::alloc
   * waits for them. */
  long blocks = g_parent_pages / (kBlockSize / 4096) - 4;
  if (blocks > kBlocks) blocks = kBlocks;
  size_t before = present_bytes();
  long f0 = zone_field("pages free"), i0 = zone_field("nr_isolated");
  static void* b[kBlocks];
  for (long i = 0; i < blocks; ++i) {
    if (!(b[i] = malloc(kBlockSize))) return 41;
    memset(b[i], 1, 4096);
  }
  if (present_bytes() != before) {
    fprintf(stderr,
            "child: the heap grew from %zu to %zu bytes for %ld MiB of the parent's %ld free "
            "pages: isolated blocks were lost\n",
            before, present_bytes(), blocks, g_parent_pages);
    fprintf(stderr, "child at start: free %ld isolated %ld; now free %ld isolated %ld\n", f0, i0,
            zone_field("pages free"), zone_field("nr_isolated"));
    return 42;
  }
  for (long i = 0; i < blocks; ++i) free(b[i]);
  return 0;
}

int main(int argc, char** argv) {
  (void)argc;
  if (!getenv("NS_KSWAPD_FORK_CHILD")) {
    /* The seam must be set before the heap starts: run again with it. */
    const char* conf = getenv("NUMASLUB_CONF");
    char buf[512];
    snprintf(buf, sizeof buf, "%s%sdecay_ms=10,reclaim_hold_ms=100", conf ? conf : "",
             conf && *conf ? "," : "");
    setenv("NUMASLUB_CONF", buf, 1);
    setenv("NS_KSWAPD_FORK_CHILD", "1", 1);
    execv("/proc/self/exe", argv);
    perror("execv");
    return 1;
  }
  static void* b[kBlocks];
  int forked = 0;
  for (int attempt = 0; attempt < 5 && !forked; ++attempt) {
    for (int i = 0; i < kBlocks; ++i) {
      CHECK((b[i] = malloc(kBlockSize)) != NULL);
      memset(b[i], 2, kBlockSize);
    }
    for (int i = 0; i < kBlocks; ++i) free(b[i]);
    /* Wait for a pass to hold blocks isolated, then fork. */
    for (int ms = 0; ms < 3000; ++ms) {
      long isolated = zone_field("nr_isolated");
      if (isolated > 0) {
        g_parent_pages = zone_field("pages free") + isolated;
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) _exit(child());
        int st = wait_with_deadline(pid, 20.0);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
          fprintf(stderr, "child: status %d (exit %d)\n", st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
          return 1;
        }
        forked = 1;
        break;
      }
      usleep(1000);
    }
  }
  if (!forked) {
    fprintf(stderr, "kswapd never held a pass open (no nr_isolated seen)\n");
    return 1;
  }
  printf("kswapd_fork: a fork during a reclaim pass kept every isolated block: ok\n");
  return 0;
}
