/* Heap misuse must end in a report, never in a silent overlap, a planted
 * address or a bare SIGSEGV (issue 11). Each case misuses the heap in a
 * child process with stderr captured; the child must die of SIGABRT after a
 * report whose first line names the misuse and the cache. If the misuse
 * returns, the child says "CONTINUED" and exits 0.
 *
 * Two sets of expectations, chosen by NUMASLUB_CONF:
 * - default (no slub_debug): the always-on checks. Cases they are not built
 *   to catch (writes into a live neighbour or into a free object's other
 *   words, wrong sized frees) must then run on without a crash.
 * - slub_debug=FZPU: every small-object case is reported, and the report
 *   also shows the object ("INFO: Object 0x...") and its allocation stack
 *   (and its free stack when it was freed).
 *
 * The old code (b6a9ea6) took `free(p + 16)` and a far double free
 * silently (two later mallocs returned the same block), returned a freed
 * block from realloc, and crashed with SIGSEGV in KmemCache::fill on a
 * corrupted freelist.
 *
 *   misuse CASE      runs one case in the foreground (for a debugger)
 *   misuse --table   runs every case under no slub_debug, F, Z, P, U and
 *                    FZPU (re-executing itself) and prints docs/misuse.md */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>

#include "hostile.h"

/* C23's sized free, exported by numaslub (glibc may not declare it). */
void free_sized(void* p, size_t size);

/* Through volatile pointers: the compiler must not see (and warn about, or
 * drop) the misuse. */
static void* (*volatile f_malloc)(size_t) = malloc;
static void (*volatile f_free)(void*) = free;
static void* (*volatile f_realloc)(void*, size_t) = realloc;
static int (*volatile f_trim)(size_t) = malloc_trim;
static void* (*volatile f_memset)(void*, int, size_t) = memset;

enum { kObj = 64, kKeep = 512 };
static char* keep[kKeep];

/* kKeep live 64-byte objects, so the slabs holding them are not given back
 * when the sheaves are flushed. */
static void fill_keep(void) {
  for (int i = 0; i < kKeep; ++i) CHECK((keep[i] = f_malloc(kObj)) != NULL);
}

/* Frees x and flushes every cache to the slabs: x ends on its slab's
 * freelist, its first word an encoded next pointer. */
static void free_to_slab(char* x) {
  f_free(x);
  f_trim(0);
}

/* Many allocations of x's size: the slab freelists are walked. */
static void allocate_more(void) {
  for (int i = 0; i < 8192; ++i) f_malloc(kObj);
}

/* An index i whose object keep[i] has keep[*j] as the next object in
 * memory (adjacent by default; past red zones and padding under
 * slub_debug): the neighbour an overflow of keep[i] runs into. */
static int neighbours(int* j) {
  for (int i = 0; i < kKeep; ++i) {
    int best = -1;
    for (int k = 0; k < kKeep; ++k)
      if (keep[k] > keep[i] && keep[k] - keep[i] <= 4 * kObj && (best < 0 || keep[k] < keep[best]))
        best = k;
    if (best >= 0) {
      *j = best;
      return i;
    }
  }
  CHECK(!"no two neighbouring objects");
  return -1;
}

static void interior_free(void) {
  char* p = f_malloc(kObj);
  f_free(p + 16);
}

static void double_free_near(void) {
  void* p = f_malloc(kObj);
  f_free(p);
  f_free(p);
}

/* free(p), eight other frees, free(p): p is no longer on top of the sheaf. */
static void double_free_far(void) {
  void* p = f_malloc(kObj);
  void* q[8];
  for (int i = 0; i < 8; ++i) q[i] = f_malloc(kObj);
  f_free(p);
  for (int i = 0; i < 8; ++i) f_free(q[i]);
  f_free(p);
}

/* The first free reached the slab's freelist. */
static void double_free_in_slab(void) {
  fill_keep();
  free_to_slab(keep[kKeep / 2]);
  f_free(keep[kKeep / 2]);
}

static void* free_arg(void* p) {
  f_free(p);
  return NULL;
}

/* Freed here, freed again by another thread. */
static void double_free_other_thread(void) {
  void* p = f_malloc(kObj);
  f_free(p);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, free_arg, p) == 0);
  pthread_join(t, NULL);
}

static void realloc_freed(void) {
  void* p = f_malloc(kObj);
  f_free(p);
  f_realloc(p, 40);
}

static void realloc_interior(void) {
  char* p = f_malloc(kObj);
  f_realloc(p + 8, 40);
}

/* The first word of a free object (the default layout's freelist pointer). */
static void write_after_free(void) {
  fill_keep();
  char* x = keep[kKeep / 2];
  free_to_slab(x);
  f_memset(x, 0x41, 8);
  allocate_more();
}

/* A word in the middle of a free object: no pointer of the allocator there. */
static void write_after_free_word(void) {
  fill_keep();
  char* x = keep[kKeep / 2];
  free_to_slab(x);
  f_memset(x + 40, 0x41, 8);
  allocate_more();
}

/* A freelist pointer overwritten with an address of the attacker's choice. */
static void planted_address(void) {
  static char target[4096];
  fill_keep();
  char* x = keep[kKeep / 2];
  free_to_slab(x);
  *(char**)x = target;
  allocate_more();
}

/* Writing n bytes past a live object, into its neighbour (freed first
 * unless `live`), then using the heap and freeing the object. The byte
 * written differs from the neighbour's first: a write that changes nothing
 * cannot be found (with 0x41 always, overflow_1 ran on whenever the free
 * neighbour's link happened to end in 0x41, 1 run in 256). */
static void overflow(size_t n, int live) {
  fill_keep();
  int j, i = neighbours(&j);
  if (!live) free_to_slab(keep[j]);
  int fill = keep[j] == keep[i] + kObj && (unsigned char)keep[j][0] == 0x41 ? 0x42 : 0x41;
  f_memset(keep[i], fill, kObj + n);
  allocate_more();
  f_free(keep[i]);
}
static void overflow_1(void) {
  overflow(1, 0);
}
static void overflow_8(void) {
  overflow(8, 0);
}
static void overflow_16(void) {
  overflow(16, 0);
}
static void overflow_live_1(void) {
  overflow(1, 1);
}
static void overflow_live_8(void) {
  overflow(8, 1);
}
static void overflow_live_16(void) {
  overflow(16, 1);
}

/* Past the size asked for but inside the size class: the default heap
 * cannot know, slub_debug's kmalloc red zone does. */
static void overflow_slack(void) {
  char* p = f_malloc(kObj - 8);
  f_memset(p, 0x41, kObj - 4);
  f_free(p);
}

/* Writing 8 bytes before a live object (into the object before it). */
static void underflow(void) {
  fill_keep();
  int j, i = neighbours(&j);
  (void)i;
  f_memset(keep[j] - 8, 0x41, 8);
  f_free(keep[j]);
}

static void (*sized_free(void))(void*, size_t) {
  void (*fn)(void*, size_t) = NS_API(free_sized);
  CHECK(fn != NULL);
  return fn;
}

/* A sized free (C23 free_sized; C++ sized delete takes the same path) that
 * names a size other than the one asked for. */
static void sized_free_smaller(void) {
  void* p = f_malloc(kObj);
  sized_free()(p, kObj / 2);
}
static void sized_free_larger(void) {
  void* p = f_malloc(kObj);
  sized_free()(p, 2 * kObj);
}

enum { kLarge = 100000, kHuge = 8 << 20 };

static void large_double_free(void) {
  void* p = f_malloc(kLarge);
  f_free(p);
  f_free(p);
}

static void large_interior_free(void) {
  char* p = f_malloc(kLarge);
  f_free(p + 8192);
}

static void large_realloc_freed(void) {
  void* p = f_malloc(kLarge);
  f_free(p);
  f_realloc(p, 2 * kLarge);
}

/* Past the end of a block (inside its last page). */
static void large_overflow(void) {
  char* p = f_malloc(kLarge);
  f_memset(p + kLarge, 0x41, 8);
  f_free(p);
}

static void vmalloc_overflow(void) {
  char* p = f_malloc(kHuge - 100);
  f_memset(p + kHuge - 100, 0x41, 8);
  f_free(p);
}

static void vmalloc_double_free(void) {
  void* p = f_malloc(kHuge);
  f_free(p);
  f_free(p);
}

static void vmalloc_interior_free(void) {
  char* p = f_malloc(kHuge);
  f_free(p + 4096);
}

static void vmalloc_realloc_freed(void) {
  void* p = f_malloc(kHuge);
  f_free(p);
  f_realloc(p, 2 * kHuge);
}

struct misuse {
  const char* name;
  void (*fn)(void);
  /* In the report's first line, by default (NULL: the case is not caught
   * by default and must run on) and under slub_debug=FZPU; with the cache
   * or kind of block. */
  const char* expect;
  const char* debug_expect;
  const char* where;
  int freed;        /* under slub_debug=U the report shows a free stack too */
  const char* what; /* for the table */
};

static const struct misuse kCases[] = {
    {"interior_free", interior_free, "invalid pointer", "Invalid object pointer", "kmalloc-64", 0,
     "free(p + 16)"},
    {"double_free_near", double_free_near, "double free", "double free", "kmalloc-64", 1,
     "free(p); free(p)"},
    {"double_free_far", double_free_far, "double free", "double free", "kmalloc-64", 1,
     "free(p), 8 other frees, free(p)"},
    {"double_free_in_slab", double_free_in_slab, "double free", "double free", "kmalloc-64", 1,
     "double free after p reached its slab's freelist"},
    {"double_free_other_thread", double_free_other_thread, "double free", "double free",
     "kmalloc-64", 1, "double free from another thread"},
    {"realloc_freed", realloc_freed, "realloc of", "realloc of", "kmalloc-64", 1,
     "realloc of a freed block"},
    {"realloc_interior", realloc_interior, "invalid pointer", "Invalid object pointer",
     "kmalloc-64", 0, "realloc(p + 8)"},
    {"write_after_free", write_after_free, "freelist corrupted", "Poison overwritten", "kmalloc-64",
     1, "write after free, first word"},
    {"write_after_free_word", write_after_free_word, NULL, "Poison overwritten", "kmalloc-64", 1,
     "write after free, word 5"},
    {"planted_address", planted_address, "freelist corrupted", "Poison overwritten", "kmalloc-64",
     1, "freelist pointer replaced by an address"},
    {"overflow_1", overflow_1, "freelist corrupted", "Right Redzone overwritten", "kmalloc-64", 0,
     "overflow by 1 into a free neighbour"},
    {"overflow_8", overflow_8, "freelist corrupted", "Right Redzone overwritten", "kmalloc-64", 0,
     "overflow by 8 into a free neighbour"},
    {"overflow_16", overflow_16, "freelist corrupted", "Right Redzone overwritten", "kmalloc-64", 0,
     "overflow by 16 into a free neighbour"},
    {"overflow_live_1", overflow_live_1, NULL, "Right Redzone overwritten", "kmalloc-64", 0,
     "overflow by 1 into a live neighbour"},
    {"overflow_live_8", overflow_live_8, NULL, "Right Redzone overwritten", "kmalloc-64", 0,
     "overflow by 8 into a live neighbour"},
    {"overflow_live_16", overflow_live_16, NULL, "Right Redzone overwritten", "kmalloc-64", 0,
     "overflow by 16 into a live neighbour"},
    {"overflow_slack", overflow_slack, NULL, "kmalloc Redzone overwritten", "kmalloc-64", 0,
     "malloc(56), 60 bytes written"},
    {"underflow", underflow, NULL, "Left Redzone overwritten", "kmalloc-64", 0,
     "8 bytes written before a live object"},
    {"sized_free_smaller", sized_free_smaller, NULL, "Wrong size on sized free", "kmalloc-64", 0,
     "free_sized(malloc(64), 32)"},
    {"sized_free_larger", sized_free_larger, NULL, "Wrong size on sized free", "kmalloc-64", 0,
     "free_sized(malloc(64), 128)"},
    {"large_double_free", large_double_free, "double free", "double free", "large block", 0,
     "double free of a 100 KB block"},
    {"large_interior_free", large_interior_free, "invalid pointer", "invalid pointer",
     "large block", 0, "free(p + 8192) of a 100 KB block"},
    {"large_realloc_freed", large_realloc_freed, "realloc of", "realloc of", "large block", 0,
     "realloc of a freed 100 KB block"},
    {"large_overflow", large_overflow, NULL, "Right Redzone overwritten", "large block", 0,
     "overflow by 8 of a 100 KB block"},
    {"vmalloc_double_free", vmalloc_double_free, "double free", "double free", "direct mapping", 0,
     "double free of an 8 MiB mapping"},
    {"vmalloc_interior_free", vmalloc_interior_free, "invalid pointer", "invalid pointer",
     "direct mapping", 0, "free(p + 4096) of an 8 MiB mapping"},
    {"vmalloc_realloc_freed", vmalloc_realloc_freed, "realloc of", "realloc of", "direct mapping",
     0, "realloc of a freed 8 MiB mapping"},
    {"vmalloc_overflow", vmalloc_overflow, NULL, "Right Redzone overwritten", "direct mapping", 0,
     "overflow by 8 of an 8 MiB mapping"},
};
enum { kNrCases = sizeof kCases / sizeof kCases[0] };

struct outcome {
  int status;      /* wait status; -1: timed out */
  char out[32768]; /* stderr */
};

/* Runs case c in a child with stderr captured: forked (conf == NULL), or
 * this program executed again with NUMASLUB_CONF=conf. */
static void run_child(const struct misuse* c, const char* conf, struct outcome* o) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  fflush(NULL);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    if (conf) {
      setenv("NUMASLUB_CONF", conf, 1);
      execl("/proc/self/exe", "misuse", c->name, (char*)NULL);
      _exit(127);
    }
    c->fn();
    fprintf(stderr, "CONTINUED\n");
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t r;
  while (len + 1 < sizeof o->out && (r = read(fds[0], o->out + len, sizeof o->out - 1 - len)) > 0)
    len += (size_t)r;
  o->out[len] = 0;
  close(fds[0]);
  o->status = wait_with_deadline(pid, 60);
}

/* The letters of slub_debug in NUMASLUB_CONF ("" when off). */
static const char* debug_letters(void) {
  static char letters[8];
  const char* conf = getenv("NUMASLUB_CONF");
  const char* s = conf ? strstr(conf, "slub_debug") : NULL;
  letters[0] = 0;
  if (!s) return letters;
  s += strlen("slub_debug");
  if (*s != '=') return strcpy(letters, "FZPU");
  size_t n = 0;
  for (++s; *s && *s != ',' && *s != ':' && *s != ';' && n < 7; ++s)
    if (strchr("FZPUfzpu", *s)) letters[n++] = *s & ~0x20;
  letters[n] = 0;
  return letters;
}

/* Returns 0 when c ended as it should under the current configuration. */
static int check_case(const struct misuse* c) {
  static struct outcome o;
  run_child(c, NULL, &o);
  int debug = strcmp(debug_letters(), "FZPU") == 0;
  const char* expect = debug ? c->debug_expect : c->expect;
  char* nl = strchr(o.out, '\n');
  char first[512];
  snprintf(first, sizeof first, "%.*s", nl ? (int)(nl - o.out) : (int)strlen(o.out), o.out);
  int ok;
  if (!expect) {
    ok = o.status >= 0 && WIFEXITED(o.status) && strstr(o.out, "CONTINUED");
  } else {
    ok = o.status >= 0 && WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT &&
         strstr(first, expect) && strstr(first, c->where);
    /* A debug cache's report shows the object and who allocated (and freed) it. */
    if (ok && debug && strncmp(c->where, "kmalloc", 7) == 0)
      ok = strstr(o.out, "INFO: Object 0x") && strstr(o.out, "INFO: Allocated in ") &&
           (!c->freed || strstr(o.out, "INFO: Freed in "));
  }
  printf("%-26s %s  %s\n", c->name, ok ? "ok    " : "FAILED", expect ? first : "(runs on)");
  if (!ok && o.status >= 0 && WIFSIGNALED(o.status))
    printf("%-26s (signal %d)\n", "", WTERMSIG(o.status));
  if (!ok) printf("%s\n", o.out);
  return !ok;
}

/* What the report's first line calls the misuse: the text after the cache's
 * name, up to the first address. */
static void summary(const struct outcome* o, char* buf, size_t cap) {
  if (o->status < 0) {
    snprintf(buf, cap, "hangs");
    return;
  }
  if (WIFEXITED(o->status)) {
    snprintf(buf, cap, "%s", WEXITSTATUS(o->status) == 0 ? "-" : "exit");
    return;
  }
  if (WTERMSIG(o->status) != SIGABRT) {
    snprintf(buf, cap, "**signal %d**", WTERMSIG(o->status));
    return;
  }
  const char* s = strstr(o->out, "BUG ");
  if (!s) {
    snprintf(buf, cap, "abort");
    return;
  }
  s = strchr(s, ':');
  s = s ? s + 2 : o->out;
  const char* nl = strchr(s, '\n');
  size_t line = nl ? (size_t)(nl - s) : strlen(s);
  size_t n = 0;
  while (n < line && s[n] != ':' && strncmp(s + n, " 0x", 3) != 0) ++n;
  if (n >= 3 && strncmp(s + n - 3, " of", 3) == 0) n -= 3;
  /* The kind of misuse where the label does not say it. */
  const char* kind = NULL;
  for (const char* k = "double free"; k; k = k[0] == 'd' ? "use after free" : NULL) {
    const char* at = strstr(s, k);
    if (at && at < s + line && !(at < s + n)) kind = k;
  }
  snprintf(buf, cap, "%.*s%s%s%s%s", (int)n, s, kind ? " (" : "", kind ? kind : "", kind ? ")" : "",
           strstr(o->out, "INFO: Allocated in ") ? " +stacks" : "");
}

static int print_table(void) {
  static const char* const modes[] = {
      "", "slub_debug=F", "slub_debug=Z", "slub_debug=P", "slub_debug=U", "slub_debug=FZPU"};
  static const char* const heads[] = {"default", "F", "Z", "P", "U", "FZPU"};
  enum { kModes = sizeof modes / sizeof modes[0] };
  printf("# What each mode catches\n\n");
  printf("Generated by `tests/hostile/misuse --table` (`bash scripts/misuse-table.sh`): each\n");
  printf("misuse of a 64-byte block (or a large block, or a direct mapping) is made in a child\n");
  printf("process under each `NUMASLUB_CONF`; a cell is the report's first line (the\n");
  printf("text after `BUG <cache>: `), `+stacks` when it shows the allocation and free\n");
  printf("stacks, `-` when the program runs on without a report.\n\n");
  printf("| misuse |");
  for (int m = 0; m < kModes; ++m) printf(" %s |", heads[m]);
  printf("\n|---|");
  for (int m = 0; m < kModes; ++m) printf("---|");
  printf("\n");
  static struct outcome o;
  for (int i = 0; i < kNrCases; ++i) {
    printf("| %s (`%s`) |", kCases[i].what, kCases[i].name);
    for (int m = 0; m < kModes; ++m) {
      char cell[128];
      run_child(&kCases[i], modes[m], &o);
      summary(&o, cell, sizeof cell);
      printf(" %s |", cell);
    }
    printf("\n");
    fflush(stdout);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--table") == 0) return print_table();
  int failed = 0;
  for (int i = 0; i < kNrCases; ++i) {
    if (argc > 1 && strcmp(argv[1], kCases[i].name) != 0) continue;
    if (argc > 1) {
      kCases[i].fn();
      fprintf(stderr, "CONTINUED\n");
      return 0;
    }
    failed += check_case(&kCases[i]);
  }
  printf("misuse (%s): %d of %d cases as expected\n",
         debug_letters()[0] ? debug_letters() : "default", kNrCases - failed, kNrCases);
  return failed != 0;
}
