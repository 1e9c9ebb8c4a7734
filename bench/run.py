#!/usr/bin/env python3
"""Throughput benchmark: every workload under every allocator, by LD_PRELOAD.

    python3 bench/run.py --quick          # about 1.5 minutes on 2 cores (the main job)
    python3 bench/run.py --full           # the numbers kept in docs/bench/

Runs the programs of bench/workloads/ (built with the target bench_workloads,
not linked to numaslub) under numaslub, jemalloc, mimalloc, tcmalloc and
glibc's malloc, interleaved (A B C A B C ...), and reports per workload the
median elapsed time (measured by the program with CLOCK_MONOTONIC) and the
median peak RSS (the child's ru_maxrss from wait4, taken by the small
bench/workloads/spawn launcher), as ratios to jemalloc,
with their geometric means. Writes CSV, a chart (PNG and SVG, with gnuplot if
it is installed) and a Markdown summary with the machine's description under
docs/bench/. This file runs; bench/report.py turns the results into the
tables and files. Python 3 standard library only. See docs/bench/README.md.

Exit status: 0 when every run succeeded, 1 when a run crashed, hung, reported
corruption or a wrong checksum (the reproducer is printed), 2 on bad usage or
when something required (the workloads, jemalloc) is missing.
"""

import argparse
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

from report import ROOT, Summary, git_describe, log, report_text, sh, write_outputs

MULTIARCH = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
LIBDIRS = ["/usr/lib/" + MULTIARCH, "/usr/lib64", "/usr/lib", "/usr/local/lib"]

# name -> (candidate file names of the shared library, Debian package)
SYSTEM_ALLOCATORS = {
    "jemalloc": (["libjemalloc.so.2"], "libjemalloc2"),
    "mimalloc": (["libmimalloc.so.2"], "libmimalloc2.0"),
    "tcmalloc": (["libtcmalloc_minimal.so.4", "libtcmalloc.so.4"],
                 "libtcmalloc-minimal4 (or libgoogle-perftools4)"),
}
DEFAULT_ALLOCATORS = ["numaslub", "jemalloc", "mimalloc", "tcmalloc", "glibc"]
BASELINE = "jemalloc"

# The workloads. Arguments per mode; {t} is the thread count. Each program
# does a fixed amount of work, so its elapsed time is the measure.
WORKLOADS = [
    ("larson", "larson", "server churn: random slot replacement, arrays handed between threads",
     {"quick": "-t {t} -s 8 -S 1000 -k 1000 -o 10000 -r 400",
      "full": "-t {t} -s 8 -S 1000 -k 5000 -o 10000 -r 2000"}),
    ("prodcons", "prodcons", "producers allocate, queue, consumers free (new[]/delete[])",
     {"quick": "-t {t} -n 2000000 -s 16 -S 512 -b 64 -q 64",
      "full": "-t {t} -n 8000000 -s 16 -S 512 -b 64 -q 64"}),
    ("falseshare-active", "falseshare", "threads allocate and write 8-byte objects at the same time",
     {"quick": "-m active -t {t} -s 8 -i 6000 -w 5000",
      "full": "-m active -t {t} -s 8 -i 30000 -w 5000"}),
    ("falseshare-passive", "falseshare", "8-byte objects allocated by one thread, written by others",
     {"quick": "-m passive -t {t} -s 8 -i 6000 -w 5000",
      "full": "-m passive -t {t} -s 8 -i 30000 -w 5000"}),
    ("window", "window", "sliding window of live objects, sizes log-uniform 8 B .. 64 KiB",
     {"quick": "-t {t} -s 8 -S 64k -W 2000 -n 400000",
      "full": "-t {t} -s 8 -S 64k -W 5000 -n 1500000"}),
    ("realloc", "realloc_chain", "realloc growth chains from 16 B to 256 KiB, 8 alive per thread",
     {"quick": "-t {t} -S 256k -C 8 -n 700",
      "full": "-t {t} -S 256k -C 8 -n 4000"}),
    ("large", "large", "64 KiB .. 16 MiB blocks: allocate, touch every page, free",
     {"quick": "-t {t} -s 64k -S 16m -W 4 -n 40",
      "full": "-t {t} -s 64k -S 16m -W 4 -n 250"}),
    ("thread_churn", "thread_churn", "short threads, 200 objects each, half freed after exit",
     {"quick": "-t {t} -n 2000 -k 200 -s 8 -S 2048",
      "full": "-t {t} -n 8000 -k 200 -s 8 -S 2048"}),
    ("xmalloc", "xmalloc", "xmalloc-test: t threads allocate 4096-object batches, t others free them",
     {"quick": "-w {t} -n 1500 -b 4096 -s 64 -q 100",
      "full": "-w {t} -n 6000 -b 4096 -s 64 -q 100"}),
    ("xmalloc-8", "xmalloc", "xmalloc-test with 8 allocating and 8 freeing threads",
     {"quick": "-w 8 -n 300 -b 4096 -s 64 -q 100",
      "full": "-w 8 -n 1200 -b 4096 -s 64 -q 100"}),
    ("malloc-thread", "malloc_thread", "glibc bench-malloc-thread: random slot of 1024, sizes 4 B..32 KiB ~1/x^2",
     {"quick": "-t {t} -n 20000000 -k 1024 -s 4 -S 32k",
      "full": "-t {t} -n 80000000 -k 1024 -s 4 -S 32k"}),
    ("mstress", "mstress", "mimalloc's test-stress: rounds of new threads, objects exchanged, 10% kept",
     {"quick": "-t {t} -r 10 -n 40000 -x 1000 -k 10",
      "full": "-t {t} -r 25 -n 100000 -x 1000 -k 10"}),
    ("alloc-test", "alloctest", "alloc-test: random alloc/free over 64k slots, sizes 8 B..64 KiB skewed small",
     {"quick": "-t {t} -k 65536 -n 1500000",
      "full": "-t {t} -k 65536 -n 6000000"}),
    ("tlb", "tlb", "random walk over live 64 B objects (256 MiB quick, 1 GiB full): TLB misses",
     {"quick": "-T 256m -s 64 -n 4000000",
      "full": "-T 1g -s 64 -n 20000000"}),
    ("memreturn", "memreturn", "burst of 1..64 KiB pieces (256 MiB quick, 1 GiB full), freed, RSS watched",
     {"quick": "-t {t} -T 256m -s 1k -S 64k -w 1.0",
      "full": "-t {t} -T 1g -s 1k -S 64k -w 2.0"}),
]

MODES = {
    "quick": {"runs": 3, "timeout": 60},
    "full": {"runs": 5, "timeout": 300},
}


def find_system_lib(names):
    for d in LIBDIRS:
        for n in names:
            p = os.path.join(d, n)
            if os.path.exists(p):
                return p
    return None


# ---------------------------------------------------------------- build


def build(args, need_lib, need_bins):
    """Builds numaslub and/or the workloads in --build-dir with CMake."""
    targets = (["numaslub"] if need_lib else []) + (["bench_workloads"] if need_bins else [])
    if not targets:
        return
    bdir = args.build_dir
    if not os.path.exists(os.path.join(bdir, "CMakeCache.txt")):
        cmd = ["cmake", "-S", ROOT, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release"]
        log("build: " + " ".join(map(shlex.quote, cmd)))
        r = sh(cmd)
        if r.returncode != 0:
            sys.stdout.write(r.stdout)
            sys.exit("run.py: cmake configure failed")
    cmd = ["cmake", "--build", bdir, "-j", str(os.cpu_count() or 2), "--target"] + targets
    log("build: " + " ".join(map(shlex.quote, cmd)))
    r = sh(cmd)
    if r.returncode != 0:
        sys.stdout.write(r.stdout[-6000:])
        sys.exit("run.py: build failed")


# ---------------------------------------------------------------- running


def preload_works(path):
    """True when `path` loads as a preload: the child maps it and runs."""
    env = dict(os.environ, LD_PRELOAD=path)
    r = subprocess.run(["cat", "/proc/self/maps"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    return r.returncode == 0 and os.path.realpath(path) in r.stdout, r.stderr.strip()


def run_once(spawn, binary, argv, preload, timeout, extra_env=None):
    """Runs one workload under `preload` (None: glibc) through the spawn helper.

    The helper forks and execs the workload and writes the child's wait4
    rusage to a report file. (Started straight from Python, the child's
    ru_maxrss would include the interpreter's RSS: Linux folds the hiwater RSS
    of the address space a process execs from into ru_maxrss.)
    Returns a dict with status, elapsed_s, maxrss_kib, checksum, extra.
    """
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(extra_env or {})
    cmd = [binary] + argv
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", prefix="nsb-rusage-") as rep:
        helper = [spawn, "-t", str(timeout), "-o", rep.name] + \
            (["-p", preload] if preload else []) + ["--"] + cmd
        t0 = time.monotonic()
        proc = subprocess.Popen(helper, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            helper_rc = proc.wait(timeout + 30)
        except subprocess.TimeoutExpired:  # the helper's own alarm did not work
            os.killpg(proc.pid, signal.SIGKILL)
            helper_rc = proc.wait()
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        report = dict(f.split("=", 1) for f in rep.read().split() if "=" in f)

    res = {"wall_s": wall, "maxrss_kib": int(report.get("maxrss_kib", 0)), "stdout": stdout,
           "stderr": stderr, "cmd": cmd, "preload": preload, "env": extra_env or {}}
    code, sig = int(report.get("exit", -1)), int(report.get("signal", 0))
    if helper_rc != 0 or not report:
        res["status"] = "spawn helper failed (%s): %s" % (helper_rc, stderr.strip()[-300:])
    elif report.get("timedout") == "1":
        res["status"] = "hang (killed after %ds)" % timeout
    elif sig:
        res["status"] = "crash (%s)" % signal.Signals(sig).name
    elif code != 0:
        why = {3: "corruption detected", 124: "watchdog timeout", 4: "out of memory",
               127: "exec failed"}.get(code, "")
        res["status"] = "exit %d%s" % (code, " (%s)" % why if why else "")
    else:
        m = re.search(r"^RESULT (.*)$", stdout, re.M)
        if not m:
            res["status"] = "no RESULT line"
        else:
            kv = dict(f.split("=", 1) for f in m.group(1).split() if "=" in f)
            res["status"] = "ok"
            res["elapsed_s"] = float(kv.pop("elapsed_s"))
            res["checksum"] = kv.pop("checksum")
            res["extra"] = kv
    if "ERROR: ld.so" in stderr:  # the preload did not take: the numbers would be glibc's
        res["status"] = "preload failed: " + stderr.strip().splitlines()[0]
    return res


# ---------------------------------------------------------------- options


def parse_args():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="workloads: " + ", ".join(w[0] for w in WORKLOADS) +
        "\nallocators: " + ", ".join(DEFAULT_ALLOCATORS) + " (and any NAME=PATH.so)")
    m = ap.add_mutually_exclusive_group()
    m.add_argument("--quick", dest="mode", action="store_const", const="quick",
                   help="3 runs, small sizes: a few minutes on 2 cores (the default)")
    m.add_argument("--full", dest="mode", action="store_const", const="full",
                   help="5 runs, full sizes (1 GiB burst): the numbers for docs/bench/")
    ap.add_argument("--runs", type=int, help="runs per workload and allocator (default by mode)")
    ap.add_argument("--threads", type=int, default=max(2, os.cpu_count() or 2),
                    help="threads per workload (default: nproc, at least 2)")
    ap.add_argument("--allocators", "-a", default=",".join(DEFAULT_ALLOCATORS),
                    help="comma list, in run order; NAME=PATH.so adds another preload, "
                    "NAME=PATH.so@VAR=VALUE[@...] with variables set for its runs "
                    "(default: %(default)s)")
    ap.add_argument("--workloads", "-w", default="all", help="comma list (default: all)")
    ap.add_argument("--numaslub", help="libnumaslub.so to preload (default: BUILD_DIR/libnumaslub.so,"
                    " built if needed)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"),
                    help="CMake build tree (default: build/)")
    ap.add_argument("--bin-dir", help="where the workload programs are "
                    "(default: BUILD_DIR/bench/workloads, built if needed)")
    ap.add_argument("--no-build", action="store_true", help="do not run cmake, fail if missing")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "docs", "bench"),
                    help="where CSV, chart and summary go (default: docs/bench/)")
    ap.add_argument("--name", help="base name of the output files (default: throughput-MODE)")
    ap.add_argument("--no-output", action="store_true", help="print the tables only")
    ap.add_argument("--timeout", type=int, help="seconds before a run counts as hung")
    ap.add_argument("--list", action="store_true", help="list workloads and allocators, then exit")
    a = ap.parse_args()
    a.mode = a.mode or "quick"
    a.runs = a.runs or MODES[a.mode]["runs"]
    a.timeout = a.timeout or MODES[a.mode]["timeout"]
    if a.runs < 1 or a.threads < 1:
        ap.error("--runs and --threads must be positive")
    return a


ALLOC_ENV = {}  # name -> {variable: value} set for that allocator's runs


def resolve_allocators(args):
    """Returns [(name, preload path or None)], printing a note for each one skipped."""
    out, missing_required = [], []
    for item in [x.strip() for x in args.allocators.split(",") if x.strip()]:
        if "=" in item:
            name, path = item.split("=", 1)
            # NAME=PATH.so@VAR=VALUE@...: that preload with those variables set
            # (e.g. numaslub-F=build/libnumaslub.so@NUMASLUB_CONF=slub_debug=F).
            path, *settings = path.split("@")
            for kv in settings:
                if "=" not in kv:
                    sys.exit("run.py: %s: '%s' is not VAR=VALUE" % (name, kv))
                ALLOC_ENV.setdefault(name, {})[kv.split("=", 1)[0]] = kv.split("=", 1)[1]
            if not os.path.exists(path):
                sys.exit("run.py: %s: %s does not exist" % (name, path))
            out.append((name, os.path.abspath(path)))
        elif item == "glibc":
            out.append(("glibc", None))
        elif item == "numaslub":
            out.append(("numaslub", args.numaslub_path))
        elif item in SYSTEM_ALLOCATORS:
            names, pkg = SYSTEM_ALLOCATORS[item]
            path = find_system_lib(names)
            if path:
                out.append((item, path))
            elif item == BASELINE:
                missing_required.append("%s (Debian package %s)" % (item, pkg))
            else:
                log("note: %s not installed (Debian package %s): skipped" % (item, pkg))
        else:
            sys.exit("run.py: unknown allocator '%s' (known: %s, or NAME=PATH.so)" %
                     (item, ", ".join(DEFAULT_ALLOCATORS)))
    if missing_required:
        sys.exit("run.py: required allocator missing: " + ", ".join(missing_required))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        sys.exit("run.py: an allocator is named twice")
    return out


def wants_numaslub(args):
    """Whether -a names this tree's numaslub (a NAME=PATH.so entry does not count)."""
    return any(x.strip() == "numaslub" for x in args.allocators.split(","))


def list_workloads():
    for name, binary, desc, _ in WORKLOADS:
        log("%-20s %-14s %s" % (name, binary, desc))
    log("allocators: " + ", ".join(DEFAULT_ALLOCATORS))


def select_workloads(spec):
    """The WORKLOADS entries named by -w (a comma list, or "all"), in its order."""
    if spec == "all":
        return WORKLOADS
    wanted = [w.strip() for w in spec.split(",") if w.strip()]
    known = {w[0]: w for w in WORKLOADS}
    bad = [w for w in wanted if w not in known]
    if bad:
        sys.exit("run.py: unknown workload(s) %s (known: %s)" % (", ".join(bad),
                                                                 ", ".join(known)))
    return [known[w] for w in wanted]


def check_programs(args, bin_dir, workloads, want_numaslub):
    """Exits unless the library (when numaslub runs), spawn and every workload exist."""
    if want_numaslub and not os.path.exists(args.numaslub_path):
        sys.exit("run.py: %s not found (build the target numaslub, or pass --numaslub)" %
                 args.numaslub_path)
    for binary in ["spawn"] + [w[1] for w in workloads]:
        if not os.access(os.path.join(bin_dir, binary), os.X_OK):
            sys.exit("run.py: %s not found (cmake --build BUILD --target bench_workloads, "
                     "or pass --bin-dir)" % os.path.join(bin_dir, binary))


def check_preloads(allocs):
    for name, path in allocs:
        if path:
            ok, err = preload_works(path)
            if not ok:
                sys.exit("run.py: %s (%s) does not load as LD_PRELOAD: %s" % (name, path, err))


def announce(args, workloads, allocs):
    log("mode %s: %d runs, %d threads, workloads %s" %
        (args.mode, args.runs, args.threads, ", ".join(w[0] for w in workloads)))
    for name, path in allocs:
        log("  %-10s %s%s" % (name, path or "(no preload: glibc malloc)",
                              "".join(" %s=%s" % kv for kv in ALLOC_ENV.get(name, {}).items())))


def run_all(args, bin_dir, workloads, allocs):
    """Every run, interleaved (A B C A B C ...), one progress line per round.

    Returns results[(workload, allocator)] = [run dict, ...] and the failed
    runs as (workload, allocator, run dict).
    """
    spawn = os.path.join(bin_dir, "spawn")
    results = {}
    failures = []
    for wname, binary, _, argspec in workloads:
        argv = shlex.split(argspec[args.mode].format(t=args.threads)) + \
            ["-L", str(args.timeout)]
        exe = os.path.join(bin_dir, binary)
        for r in range(args.runs):
            line = []
            for name, path in allocs:
                res = run_once(spawn, exe, argv, path, args.timeout + 10, ALLOC_ENV.get(name))
                results.setdefault((wname, name), []).append(res)
                if res["status"] == "ok":
                    line.append("%s %.3fs %dM" % (name, res["elapsed_s"], res["maxrss_kib"] // 1024))
                else:
                    line.append("%s FAILED" % name)
                    failures.append((wname, name, res))
            log("  %-19s run %d/%d  %s" % (wname, r + 1, args.runs, "  ".join(line)))
    return results, failures


def check_checksums(wnames, names, results, failures):
    """Marks and adds to failures each run whose checksum is not the workload's usual one.

    Checksums depend only on the arguments: every run of a workload must agree.
    """
    for wname in wnames:
        sums = [res["checksum"] for n in names for res in results[(wname, n)]
                if res["status"] == "ok"]
        if not sums:
            continue
        ref = statistics.mode(sums)
        for n in names:
            for res in results[(wname, n)]:
                if res["status"] == "ok" and res["checksum"] != ref:
                    res["status"] = "wrong checksum %s (others %s)" % (res["checksum"], ref)
                    failures.append((wname, n, res))


# ---------------------------------------------------------------- main


def main():
    args = parse_args()
    if args.list:
        list_workloads()
        return 0
    args.build_dir = os.path.abspath(args.build_dir)
    args.numaslub_path = os.path.abspath(args.numaslub or os.path.join(args.build_dir,
                                                                       "libnumaslub.so"))
    bin_dir = os.path.abspath(args.bin_dir or os.path.join(args.build_dir, "bench", "workloads"))
    workloads = select_workloads(args.workloads)

    want_numaslub = wants_numaslub(args)
    if not args.no_build:
        build(args, need_lib=want_numaslub and not args.numaslub,
              need_bins=not args.bin_dir)
    check_programs(args, bin_dir, workloads, want_numaslub)

    allocs = resolve_allocators(args)
    check_preloads(allocs)
    names = [n for n, _ in allocs]
    baseline = BASELINE if BASELINE in names else None
    if not baseline:
        log("note: jemalloc not among the allocators: ratios are not computed")
    announce(args, workloads, allocs)

    revision = git_describe()  # now: the tree may move while the runs go on
    wnames = [w[0] for w in workloads]
    t_start = time.monotonic()
    results, failures = run_all(args, bin_dir, workloads, allocs)
    check_checksums(wnames, names, results, failures)
    elapsed_total = time.monotonic() - t_start

    s = Summary(wnames, names, results, baseline)
    text = report_text(args, s, failures, elapsed_total)
    log()
    for line in text:
        log(line)
    if not args.no_output:
        write_outputs(args, s, results, revision, allocs, workloads, text, want_numaslub)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
