"""The reporting half of bench/run.py: from the runs' results to what it prints and writes.

run.py runs the workloads and hands over results[(workload, allocator)] =
[run dict, ...] (run.py's run_once describes a run dict). Here: their
medians and ratios to the baseline (Summary), the printed tables
(report_text), and the files under --out-dir (write_outputs): CSV of the
medians and of every run, a chart (PNG and SVG, with gnuplot if it is
installed) and a Markdown summary with the machine's description. Python 3
standard library only.
"""

import csv
import datetime
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository

TARGETS = [  # (metric, versus, limit): numaslub's geometric mean ratio (issue 14)
    ("time", "jemalloc", 0.75),
    ("time", "mimalloc", 1.0),
    ("peak RSS", "jemalloc", 0.85),
]
# Per workload (issue 14): time <= 1.0x jemalloc and <= 1.3x the best peer,
# peak RSS <= 1.2x jemalloc; xmalloc's time <= 1.5x mimalloc's.
WORKLOAD_TIME_VS_JEMALLOC = 1.0
WORKLOAD_TIME_VS_BEST = 1.3
WORKLOAD_RSS_VS_JEMALLOC = 1.2
WORKLOAD_VS_MIMALLOC = {"xmalloc": 1.5}
# Memory return (issue 14): RSS 0.5 s after memreturn's last free, in % of its peak.
MEMRETURN_PCT_AT_500MS = 10


def log(msg=""):
    print(msg, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


# ---------------------------------------------------------------- statistics


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def fmt_ratio(x):
    return "%.2f" % x if x == x else "-"


class Summary:
    """The runs' medians per (workload, allocator) and their ratios to the baseline."""

    def __init__(self, wnames, names, results, baseline):
        self.wnames, self.names, self.baseline = wnames, names, baseline
        self.med = {}  # (w, a) -> dict
        for w in wnames:
            for n in names:
                ok = [x for x in results[(w, n)] if x["status"] == "ok"]
                if ok:
                    self.med[(w, n)] = medians(ok, len(results[(w, n)]))
        self.ratio_t, self.ratio_r, self.gm_t, self.gm_r = {}, {}, {}, {}
        if not baseline:
            return
        for w in wnames:
            b = self.med.get((w, baseline))
            for n in names:
                m = self.med.get((w, n))
                if b and m:
                    self.ratio_t[(w, n)] = m["time"] / b["time"]
                    self.ratio_r[(w, n)] = m["rss"] / b["rss"]
        for n in names:
            self.gm_t[n] = geomean([self.ratio_t.get((w, n)) for w in wnames])
            self.gm_r[n] = geomean([self.ratio_r.get((w, n)) for w in wnames])


def medians(ok, runs):
    """Median, min and max time, median peak RSS (and memreturn's RSS figures) of the ok runs."""
    d = {"runs_ok": len(ok), "runs": runs,
         "time": statistics.median(x["elapsed_s"] for x in ok),
         "time_min": min(x["elapsed_s"] for x in ok),
         "time_max": max(x["elapsed_s"] for x in ok),
         "rss": statistics.median(x["maxrss_kib"] for x in ok)}
    for key in ("rss_free_kib", "rss_500ms_kib", "rss_1s_kib", "rss_end_kib"):
        vals = [int(x["extra"][key]) for x in ok if key in x["extra"]]
        if vals:
            d[key] = statistics.median(vals)
    return d


# ---------------------------------------------------------------- tables


def ratio_table(s, title, key, unit, scale, ratios, gms):
    """One table: the baseline's figure in its unit, the others as ratios to it."""
    others = [n for n in s.names if n != s.baseline]
    col = max(9, max(len(n) for n in s.names) + 1)
    text = [title]
    head = "%-20s %12s" % ("workload", "%s %s" % (s.baseline, unit) if s.baseline else "")
    text.append(head + "".join("%*s" % (col, n) for n in others))
    for w in s.wnames:
        b = s.med.get((w, s.baseline)) if s.baseline else None
        cells = []
        for n in others:
            if (w, n) in ratios:
                cells.append(fmt_ratio(ratios[(w, n)]))
            elif (w, n) in s.med:
                cells.append("%.3g" % (s.med[(w, n)][key] * scale))
            else:
                cells.append("FAIL")
        text.append("%-20s %12s" % (w, "%.3f" % (b[key] * scale) if b else
                                    "FAIL" if s.baseline else "")
                    + "".join("%*s" % (col, c) for c in cells))
    if s.baseline:
        text.append("%-20s %12s" % ("geomean", "1.00") +
                    "".join("%*s" % (col, fmt_ratio(gms.get(n, float("nan")))) for n in others))
    text.append("")
    return text


def memreturn_table(s):
    text = ["memory return after the memreturn burst (MiB, median): does RSS fall without "
            "malloc_trim? (issue 14's mark: <= %d%% of the peak 0.5 s after the last free)"
            % MEMRETURN_PCT_AT_500MS,
            "%-10s %10s %12s %12s %12s %12s" % ("allocator", "peak", "after free", "after 0.5 s",
                                                "after 1 s", "0.5 s / peak")]
    for n in s.names:
        m = s.med.get(("memreturn", n))
        if not m or "rss_1s_kib" not in m:
            text.append("%-10s %10s" % (n, "FAIL"))
            continue
        half = m.get("rss_500ms_kib")
        text.append("%-10s %10.0f %12.0f %12s %12.0f %11s" % (
            n, m["rss"] / 1024, m["rss_free_kib"] / 1024,
            "%.0f" % (half / 1024) if half is not None else "-", m["rss_1s_kib"] / 1024,
            "%.0f%%" % (100.0 * half / m["rss"]) if half is not None else "-"))
    text.append("")
    return text


def workload_targets_table(s):
    """Each workload's ratios against the per-workload limits, and which it misses."""
    # The other allocators, not variants of numaslub added with -a NAME=PATH.
    peers = [n for n in s.names if n in ("jemalloc", "mimalloc", "tcmalloc", "glibc")]
    if "numaslub" not in s.names or "jemalloc" not in s.names:
        return []
    text = ["per-workload targets (time <= %.1fx jemalloc and <= %.1fx the best peer; "
            "peak RSS <= %.1fx jemalloc):" % (WORKLOAD_TIME_VS_JEMALLOC, WORKLOAD_TIME_VS_BEST,
                                              WORKLOAD_RSS_VS_JEMALLOC),
            "%-20s %8s %14s %8s   %s" % ("workload", "time/je", "time/best", "rss/je", "missed")]
    for w in s.wnames:
        t = s.ratio_t.get((w, "numaslub"))
        r = s.ratio_r.get((w, "numaslub"))
        if t is None:
            continue
        best = min(((s.ratio_t[(w, n)], n) for n in peers if (w, n) in s.ratio_t),
                   default=(float("nan"), "-"))
        vs_best = t / best[0] if best[0] == best[0] and best[0] > 0 else float("nan")
        missed = []
        if t > WORKLOAD_TIME_VS_JEMALLOC:
            missed.append("time vs jemalloc")
        if vs_best > WORKLOAD_TIME_VS_BEST:
            missed.append("time vs " + best[1])
        if r is not None and r > WORKLOAD_RSS_VS_JEMALLOC:
            missed.append("RSS")
        limit = WORKLOAD_VS_MIMALLOC.get(w)
        if limit and (w, "mimalloc") in s.ratio_t:
            vs_mi = t / s.ratio_t[(w, "mimalloc")]
            if vs_mi > limit:
                missed.append("time %.2fx mimalloc (limit %.1fx)" % (vs_mi, limit))
        text.append("%-20s %8s %8s %-5s %8s   %s" % (
            w, fmt_ratio(t), fmt_ratio(vs_best), best[1][:5], fmt_ratio(r) if r else "-",
            ", ".join(missed) if missed else "-"))
    text.append("")
    return text


def targets_table(s):
    """numaslub's geometric means against TARGETS."""
    text = ["targets (issue 14), numaslub geometric means:"]
    for metric, vs, limit in TARGETS:
        if vs not in s.names:
            text.append("  %-9s vs %-9s   -      (target <= %.2fx)  %s not run" %
                        (metric, vs, limit, vs))
            continue
        table_ = s.ratio_t if metric == "time" else s.ratio_r
        rel = geomean([table_[(w, "numaslub")] / table_[(w, vs)] for w in s.wnames
                       if (w, "numaslub") in table_ and (w, vs) in table_])
        verdict = "met" if rel <= limit else "NOT MET"
        text.append("  %-9s vs %-9s %5.2fx  (target <= %.2fx)  %s" %
                    (metric, vs, rel, limit, verdict))
    text.append("")
    return text


def repro(res):
    envs = dict(os.environ, **res.get("env", {}))
    env = "".join("%s=%s " % (k, shlex.quote(v)) for k, v in sorted(envs.items())
                  if k.startswith(("NUMASLUB_", "MALLOC_", "JE_", "MIMALLOC_", "TCMALLOC_")))
    env += "LD_PRELOAD=%s " % shlex.quote(res["preload"]) if res["preload"] else ""
    return env + " ".join(shlex.quote(c) for c in res["cmd"])


def failures_table(failures):
    """Each distinct failure once, with a reproducer and the tail of its stderr."""
    text = ["FAILED RUNS (%d): a crash, hang, corruption or wrong checksum is an allocator bug "
            "(or a workload bug): reproduce with" % len(failures)]
    seen = set()
    for w, n, res in failures:
        key = (w, n, res["status"])
        if key in seen:
            continue
        seen.add(key)
        text.append("  %s under %s: %s" % (w, n, res["status"]))
        text.append("    %s" % repro(res))
        tail = res["stderr"].strip().splitlines()[-3:]
        for t in tail:
            text.append("    | " + t)
    text.append("")
    return text


def report_text(args, s, failures, elapsed_total):
    """The printed report (also the Markdown summary's Results), as lines."""
    text = ["Allocator throughput, %s mode: median of %d runs, %d threads; ratio to %s "
            "(lower is better)" % (args.mode, args.runs, args.threads, s.baseline or "-"), ""]
    text += ratio_table(s, "elapsed time (jemalloc column in s; others x jemalloc)", "time",
                        "s", 1.0, s.ratio_t, s.gm_t)
    text += ratio_table(s, "peak RSS, ru_maxrss (jemalloc column in MiB; others x jemalloc)",
                        "rss", "MiB", 1 / 1024, s.ratio_r, s.gm_r)
    if "memreturn" in s.wnames:
        text += memreturn_table(s)
    if "numaslub" in s.names and s.baseline:
        text += targets_table(s)
        text += workload_targets_table(s)
    if failures:
        text += failures_table(failures)
    text.append("wall time of the runs: %.0f s" % elapsed_total)
    return text


# ---------------------------------------------------------------- files


def machine_description():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kib / 1048576)
    except (OSError, ValueError, IndexError):
        pass
    thp = ""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            thp = re.search(r"\[(\w+)\]", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "thp": thp,
        "libc": " ".join(platform.libc_ver()),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", "")
        if hasattr(platform, "freedesktop_os_release") else "",
        "loadavg": " ".join("%.2f" % x for x in os.getloadavg()),
    }


def git_describe():
    r = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    if r.returncode != 0:
        return "unknown"
    rev = r.stdout.strip()
    d = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
    return rev + ("+dirty" if d.stdout.strip() else "")


def package_version(path):
    if not path:
        return ""
    r = sh(["dpkg", "-S", os.path.realpath(path)])
    if r.returncode != 0:
        r = sh(["dpkg", "-S", path])
    if r.returncode != 0:
        return ""
    pkg = r.stdout.split(":")[0].strip()
    v = sh(["dpkg-query", "-W", "-f=${Version}", pkg])
    return "%s %s" % (pkg, v.stdout.strip()) if v.returncode == 0 else pkg


def write_csv(path, s, results):
    """One row per workload and allocator (medians, ratios), then the geomeans."""
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "allocator", "runs_ok", "runs", "time_median_s", "time_min_s",
                     "time_max_s", "time_ratio_jemalloc", "peak_rss_median_kib",
                     "peak_rss_ratio_jemalloc", "rss_after_free_kib", "rss_after_1s_kib",
                     "rss_after_500ms_kib"])
        for w in s.wnames:
            for n in s.names:
                m = s.med.get((w, n))
                nr = len(results[(w, n)])
                if not m:
                    wr.writerow([w, n, 0, nr] + [""] * 9)
                    continue
                wr.writerow([w, n, m["runs_ok"], m["runs"], "%.6f" % m["time"],
                             "%.6f" % m["time_min"], "%.6f" % m["time_max"],
                             "%.4f" % s.ratio_t[(w, n)] if (w, n) in s.ratio_t else "",
                             "%d" % m["rss"],
                             "%.4f" % s.ratio_r[(w, n)] if (w, n) in s.ratio_r else "",
                             "%d" % m["rss_free_kib"] if "rss_free_kib" in m else "",
                             "%d" % m["rss_1s_kib"] if "rss_1s_kib" in m else "",
                             "%d" % m["rss_500ms_kib"] if "rss_500ms_kib" in m else ""])
        for n in s.names:
            if n in s.gm_t:
                wr.writerow(["geomean", n, "", "", "", "", "", "%.4f" % s.gm_t[n], "",
                             "%.4f" % s.gm_r[n], "", "", ""])


def write_runs_csv(path, s, results):
    """Every run, failed ones included."""
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["workload", "allocator", "run", "status", "elapsed_s", "wall_s",
                     "maxrss_kib", "checksum", "extra"])
        for w in s.wnames:
            for n in s.names:
                for i, res in enumerate(results[(w, n)]):
                    wr.writerow([w, n, i + 1, res["status"],
                                 "%.6f" % res["elapsed_s"] if "elapsed_s" in res else "",
                                 "%.3f" % res["wall_s"], res["maxrss_kib"],
                                 res.get("checksum", ""),
                                 " ".join("%s=%s" % kv for kv in
                                          sorted(res.get("extra", {}).items()))])


def write_summary(path, args, mach, revision, allocs, workloads, text, charts, want_numaslub):
    """The Markdown summary: machine, allocators, workloads, the report, the chart."""
    with open(path, "w") as f:
        f.write("# Allocator throughput, %s mode\n\n" % args.mode)
        f.write("Written by `python3 bench/run.py %s`. How to read it: "
                "[README.md](README.md).\n\n" % " ".join(sys.argv[1:]))
        f.write("## Machine\n\n| | |\n|---|---|\n")
        for k in ("date", "nproc", "cpu", "memory", "kernel", "thp", "os", "libc",
                  "loadavg"):
            f.write("| %s | %s |\n" % (k, mach[k]))
        f.write("| numaslub | %s (git %s) |\n" % (
            os.path.relpath(args.numaslub_path, ROOT) if want_numaslub else "-", revision))
        f.write("\n## Allocators\n\n| name | preload | package |\n|---|---|---|\n")
        for n, p in allocs:
            shown_p = os.path.relpath(p, ROOT) if p and p.startswith(ROOT + os.sep) else p
            f.write("| %s | %s | %s |\n" % (n, shown_p or "none (glibc malloc)",
                                            package_version(p) if p and n != "numaslub"
                                            else ("libc6 " + platform.libc_ver()[1]
                                                  if not p else "this tree")))
        f.write("\n## Workloads (%d threads)\n\n| workload | what | arguments |\n"
                "|---|---|---|\n" % args.threads)
        for name, binary, desc, argspec in workloads:
            f.write("| %s | %s | `%s %s` |\n" % (name, desc, binary,
                                                 argspec[args.mode].format(t=args.threads)))
        f.write("\n## Results\n\n```\n" + "\n".join(text) + "\n```\n")
        for c in charts:
            if c.endswith(".svg"):
                f.write("\n![chart](%s)\n" % os.path.basename(c))


def write_outputs(args, s, results, revision, allocs, workloads, text, want_numaslub):
    """CSV of the medians and of every run, the chart and the summary, under --out-dir."""
    os.makedirs(args.out_dir, exist_ok=True)
    base = os.path.join(args.out_dir, args.name or "throughput-" + args.mode)
    mach = machine_description()
    write_csv(base + ".csv", s, results)
    write_runs_csv(base + "-runs.csv", s, results)
    title = "numaslub %s vs other allocators, %s mode, %s, %s CPUs" % (
        revision, args.mode, mach["cpu"], mach["nproc"])
    charts = plot(base, s, title) if s.baseline else []
    write_summary(base + ".md", args, mach, revision, allocs, workloads, text, charts,
                  want_numaslub)
    log("wrote %s" % ", ".join(os.path.relpath(p, os.getcwd()) for p in
                               [base + ".csv", base + "-runs.csv", base + ".md"] + charts))


# ---------------------------------------------------------------- chart


def plot(out_base, s, title):
    """Grouped bars of the time and peak-RSS ratios of Summary s; PNG and SVG via gnuplot."""
    workloads, ratios_t, ratios_r, gm_t, gm_r = s.wnames, s.ratio_t, s.ratio_r, s.gm_t, s.gm_r
    gp = shutil.which("gnuplot")
    if not gp:
        log("note: gnuplot not found (Debian package gnuplot-nox): no chart written")
        return []
    shown = [a for a in s.names if a != s.baseline]
    if not shown:
        return []
    labels = workloads + ["geomean"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, table, gm in (("time", ratios_t, gm_t), ("rss", ratios_r, gm_r)):
            with open(os.path.join(tmp, name + ".dat"), "w") as f:
                f.write("workload " + " ".join(shown) + "\n")
                for w in labels:
                    vals = [gm.get(a) if w == "geomean" else table.get((w, a)) for a in shown]
                    f.write(w + " " + " ".join(
                        "%.4f" % v if v is not None and v == v and v > 0 else "NaN" for v in vals)
                        + "\n")
        n = len(shown)
        # y range: powers of two around the data, 1/64 .. 64 at most.
        vals = [v for t in (ratios_t, ratios_r) for (w, a), v in t.items() if a in shown and v > 0]
        lo = max(-6, min([-2] + [math.floor(math.log2(v)) for v in vals]))
        hi = min(6, max([2] + [math.ceil(math.log2(v)) for v in vals]))
        ytics = ", ".join("'%s' %s" % ("1/%d" % 2 ** -e if e < 0 else str(2 ** e), repr(2.0 ** e))
                          for e in range(lo, hi + 1))
        cols = " , ".join(
            "'%s' using %d:xtic(1) title columnheader(%d) fs solid 0.85 lc %d" %
            ("{DAT}", i + 2, i + 2, i + 1) for i in range(n))
        body = """
set datafile missing 'NaN'
set style data histograms
set style histogram clustered gap 1
set boxwidth 0.9
set logscale y 2
set yrange [%s:%s]
set ytics (%s)
set grid ytics
set xtics rotate by -30 noenhanced
set key outside right top noenhanced
set multiplot layout 2,1 title '%s' noenhanced
set title 'elapsed time / jemalloc (median; lower is better)'
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb 'black' front
plot %s
set title 'peak RSS / jemalloc (median ru\\_maxrss; lower is better)'
plot %s
unset multiplot
""" % (repr(2.0 ** lo), repr(2.0 ** hi), ytics, title.replace("'", ""), cols.replace("{DAT}", os.path.join(tmp, "time.dat")),
       cols.replace("{DAT}", os.path.join(tmp, "rss.dat")))
        # Bars outside 1/64 .. 64 are clipped: the table has the number.
        written = []
        term_probe = sh([gp, "-e", "set terminal pngcairo"])
        png_term = "pngcairo size 1400,1000 font 'sans,10'" if term_probe.returncode == 0 \
            else "png size 1400,1000"
        for ext, term in (("png", png_term), ("svg", "svg size 1400,1000 dynamic font 'sans,10'")):
            path = out_base + "." + ext
            script = "set terminal %s\nset output '%s'\n%s" % (term, path, body)
            r = subprocess.run([gp], input=script, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
            if r.returncode == 0 and os.path.exists(path):
                written.append(path)
            else:
                log("note: gnuplot failed for %s: %s" % (ext, r.stderr.strip()[-500:]))
        return written
