/* Address space in proportion to use (issue 10). The heap used to reserve
 * 64 GiB (plus 1 GiB of page descriptors) at start-up: VmSize 68 GB for
 * `true`, so a program that lowers RLIMIT_AS after start (glibc's
 * tst-malloc-thread-fail) could not create a thread, while the heap grew
 * past the new limit inside its reservation (136 GB with fake_numa=2). Now
 * every node's range is reserved in steps: VmSize follows the heap, and a lowered limit holds for
 * it. Others' mappings made later must not land where the heap grows: 63 GiB of them would fill a
 * range the kernel had picked. */
#include <numaslub/numaslub.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "hostile.h"

enum { kMiB = 1 << 20, kBlocks = 8192 };

static long vm_size_kb(void) {
  char buf[4096];
  FILE* f = fopen("/proc/self/status", "r");
  CHECK(f != NULL);
  long kb = -1;
  while (fgets(buf, sizeof buf, f))
    if (sscanf(buf, "VmSize: %ld kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

static void* thread_fn(void* arg) {
  return arg;
}

int main(void) {
  free(malloc(64));
  long start_kb = vm_size_kb();
  printf("VmSize at start: %ld MiB\n", start_kb >> 10);
  CHECK(start_kb > 0 && start_kb < 512 * 1024);

  /* 600 MiB of heap: VmSize stays within about twice that. */
  static char* b[kBlocks];
  for (int i = 0; i < 600; ++i) {
    CHECK((b[i] = malloc(kMiB)) != NULL);
    b[i][0] = 1;
  }
  long grown_kb = vm_size_kb();
  printf("VmSize with 600 MiB of heap: %ld MiB\n", grown_kb >> 10);
  CHECK(grown_kb < 2 * 600 * 1024 + 256 * 1024);
  for (int i = 0; i < 600; ++i) free(b[i]);

  /* The program maps 63 GiB (address space only), then the heap grows to
   * over 2 GiB: nothing of the program's is in its way. */
  enum { kForeign = 63 };
  static void* foreign[kForeign];
  for (int i = 0; i < kForeign; ++i) {
    foreign[i] =
        mmap(NULL, 1024L * kMiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(foreign[i] != MAP_FAILED);
  }
  for (int i = 0; i < 2100; ++i) {
    b[i] = malloc(kMiB);
    if (!b[i]) printf("ENOMEM after %d MiB with 63 GiB mapped by the program\n", i);
    CHECK(b[i] != NULL);
    b[i][0] = 1;
  }
  for (int i = 0; i < 2100; ++i) free(b[i]);
  for (int i = 0; i < kForeign; ++i) CHECK(munmap(foreign[i], 1024L * kMiB) == 0);

  /* Lower the limit below what the old reservation took: threads can still
   * be made, and the heap stays under the new limit. */
  struct rlimit lim = {(rlim_t)(vm_size_kb() + 512 * 1024) * 1024, RLIM_INFINITY};
  CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, thread_fn, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  size_t got = 0;
  int n = 0;
  for (; n < kBlocks; ++n) {
    errno = 0;
    if (!(b[n] = malloc(kMiB))) {
      CHECK(errno == ENOMEM);
      break;
    }
    b[n][0] = 1;
    got += kMiB;
  }
  printf("under a limit of %ld MiB: %zu MiB of heap, then ENOMEM\n", (long)(lim.rlim_cur >> 20),
         got >> 20);
  CHECK(n < kBlocks);                /* the limit held: not 8 GiB */
  CHECK(got >= 2100 * (size_t)kMiB); /* what was reserved already is still usable */
  char* small = malloc(64);          /* and the heap still works */
  CHECK(small != NULL);
  free(small);
  for (int i = 0; i < n; ++i) free(b[i]);
  printf("address_space: ok\n");
  return 0;
}
