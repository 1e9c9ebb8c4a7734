// Command-line options of the throughput workloads (bench/workloads/*.c,
// *.cpp): each lists its options in a table and calls wl_parse_args, which
// parses them with getopt, adds the -L option every workload takes (the
// watchdog's limit in seconds, default 300) and starts the watchdog.
//
//   static const wl_opt opts[] = {{'t', WL_INT, &g_threads, "threads"},
//                                 {'s', WL_SIZE, &g_min, "min"}};
//   wl_parse_args(argc, argv, "larson", opts, WL_NOPTS(opts));
//
// A flag not in the table, a number that does not parse, or an argument
// that is not an option prints the usage line (built from the table) and
// exits with status 2. Checking that the values make sense together stays
// with each workload.
#ifndef NUMASLUB_BENCH_WL_ARGS_H
#define NUMASLUB_BENCH_WL_ARGS_H

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "wl_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  WL_INT,     // int*: a decimal number
  WL_LONG,    // long*: a decimal number
  WL_SIZE,    // uint64_t*: a size, "64", "64k", "16m", "1g" (wl_parse_size)
  WL_DOUBLE,  // double*: a decimal fraction ("1.5")
  WL_STR      // const char**: the argument as given
} wl_opt_kind;

typedef struct {
  char flag;         // the getopt letter; takes an argument
  wl_opt_kind kind;  // what dest points to
  void* dest;        // set to the parsed value
  const char* arg;   // the argument's name in the usage line
} wl_opt;

#define WL_NOPTS(table) ((int)(sizeof(table) / sizeof((table)[0])))

static inline void wl_usage(const char* name, const wl_opt* opts, int n) {
  fprintf(stderr, "usage: %s", name);
  for (int i = 0; i < n; i++) fprintf(stderr, " [-%c %s]", opts[i].flag, opts[i].arg);
  fprintf(stderr, " [-L limit_s]\n");
  exit(2);
}

// The whole of s as a decimal long, or the usage line and exit.
static inline long wl_parse_long(const char* s, char flag, const char* name, const wl_opt* opts,
                                 int n) {
  char* end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (end == s || *end || errno) {
    fprintf(stderr, "%s: -%c wants a number, not '%s'\n", name, flag, s);
    wl_usage(name, opts, n);
  }
  return v;
}

static inline void wl_parse_args(int argc, char** argv, const char* name, const wl_opt* opts,
                                 int n) {
  char spec[2 * 26 * 2 + 3];  // "x:" for each option letter, then "L:"
  int k = 0;
  for (int i = 0; i < n && k + 4 < (int)sizeof spec; i++) {
    spec[k++] = opts[i].flag;
    spec[k++] = ':';
  }
  spec[k++] = 'L';
  spec[k++] = ':';
  spec[k] = '\0';
  long limit = 300;
  int c;
  while ((c = getopt(argc, argv, spec)) != -1) {
    if (c == 'L') {
      limit = wl_parse_long(optarg, 'L', name, opts, n);
      continue;
    }
    const wl_opt* o = NULL;
    for (int i = 0; i < n && !o; i++)
      if (opts[i].flag == c) o = &opts[i];
    if (!o) wl_usage(name, opts, n);  // getopt has said which flag it did not know
    switch (o->kind) {
      case WL_INT:
        *(int*)o->dest = (int)wl_parse_long(optarg, o->flag, name, opts, n);
        break;
      case WL_LONG:
        *(long*)o->dest = wl_parse_long(optarg, o->flag, name, opts, n);
        break;
      case WL_SIZE:
        *(uint64_t*)o->dest = wl_parse_size(optarg);
        break;
      case WL_DOUBLE: {
        char* end = NULL;
        double v = strtod(optarg, &end);
        if (end == optarg || *end) {
          fprintf(stderr, "%s: -%c wants a number, not '%s'\n", name, o->flag, optarg);
          wl_usage(name, opts, n);
        }
        *(double*)o->dest = v;
        break;
      }
      case WL_STR:
        *(const char**)o->dest = optarg;
        break;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s'\n", name, argv[optind]);
    wl_usage(name, opts, n);
  }
  if (limit < 0) wl_usage(name, opts, n);
  wl_watchdog((unsigned)limit);
}

#ifdef __cplusplus
}
#endif

#endif  // NUMASLUB_BENCH_WL_ARGS_H
