#!/usr/bin/env python3
"""Golden instruction counts of numaslub's fast paths (issue 13).

Two counts of the built library, each compared with tests/fastpath/golden.txt;
a count above its golden value fails the test (a fast path grew), one below
it passes with a note to lower the golden value.

valgrind: instructions per call of the exported functions, counted by
  callgrind while fastpath_probe (probe.cpp) runs loops of fast-path hits.
  valgrind has no rseq, so this is the per-thread sheaf mode (kmalloc.h),
  and it has no vDSO. The count is inclusive: everything the call executes.
static: the rseq mode's hot path, read from the disassembly (objdump) of
  the exported functions: from the entry along the path the compiler lays
  out as the likely one (conditional branches not taken, unconditional
  jumps followed) up to the first ret. The fast paths mark their misses
  unlikely, so that path is the hit; a call on it is counted and reported.
  x86-64 only (the rseq sections are x86-64 assembly).

The golden values hold for one build configuration (the file's `config`
line: build type, hardening, compiler, architecture); another
configuration skips (exit 77) with the reason.

  counts.py --build DIR --kind valgrind|static   check (ctest runs these)
  counts.py --build DIR --update                 rewrite golden.txt
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden.txt")
SKIP = 77

# valgrind counts: name -> (probe loop, callee symbol).
VALGRIND = {
    "malloc": ("malloc_free", "malloc"),
    "free": ("malloc_free", "free"),
    "operator_new": ("new_delete", "_Znwm"),
    "operator_delete": ("new_delete", "_ZdlPv"),
    "operator_delete_sized": ("new_delete_sized", "_ZdlPvm"),
    "free_sized": ("malloc_free_sized", "free_sized"),
    "calloc_small": ("calloc_free", "calloc"),
    "realloc_same_class": ("realloc_same_class", "realloc"),
}

# static counts: name -> exported symbol. The functions with an rseq section;
# realloc's fast path has none (the valgrind count is its count in any mode).
STATIC = {
    "malloc": "malloc",
    "free": "free",
    "operator_new": "_Znwm",
    "operator_new_nothrow": "_ZnwmRKSt9nothrow_t",
    "operator_delete": "_ZdlPv",
    "operator_delete_sized": "_ZdlPvm",
    "free_sized": "free_sized",
}

HOW_TO_UPDATE = "python3 tests/fastpath/counts.py --build BUILD_DIR --update"


def read_config(build):
    path = os.path.join(build, "tests", "fastpath", "config.txt")
    with open(path) as f:
        return f.read().strip()


def read_golden():
    config, counts = None, {}
    with open(GOLDEN) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            key, value = line.split(None, 1)
            if key == "config":
                config = value
            else:
                counts[key] = int(value)
    return config, counts


def write_golden(config, counts):
    lines = [
        "# Golden instruction counts of the fast paths (issue 13), checked by ctest",
        "# fastpath_counts.valgrind and fastpath_counts.static (counts.py says how",
        "# each is counted). A count above its value fails. After a deliberate",
        "# change, from a Release build: " + HOW_TO_UPDATE,
        "config " + config,
    ]
    lines += ["%s %d" % (k, counts[k]) for k in sorted(counts)]
    with open(GOLDEN, "w") as f:
        f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------- valgrind


def callgrind_edges(path):
    """(caller, callee) -> [calls, inclusive Ir] from a callgrind out file
    written with --compress-strings=no --compress-pos=no."""
    edges = {}
    fn = cfn = None
    pending = None  # calls of the edge whose cost line comes next
    with open(path) as f:
        for line in f:
            if pending is not None:
                cost = line.split()
                e = edges.setdefault((fn, cfn), [0, 0])
                e[0] += pending
                e[1] += int(cost[1]) if len(cost) > 1 else 0
                pending = None
            elif line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("cfn="):
                cfn = line[4:].strip()
            elif line.startswith("calls="):
                pending = int(line[6:].split()[0])
    return edges


def count_valgrind(build):
    if not shutil.which("valgrind"):
        print("SKIP: valgrind is not installed (scripts/install-deps.sh installs it)")
        return None
    probe = os.path.join(build, "tests", "fastpath", "fastpath_probe")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = dict(os.environ)
        # valgrind's address space is small: a smaller heap reservation.
        env["NUMASLUB_CONF"] = "arena_size=4G"
        env.pop("LD_PRELOAD", None)
        cmd = ["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no",
               "--compress-pos=no", "--callgrind-out-file=" + out, probe]
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if r.returncode != 0:
            sys.exit("FAIL: %s exited %d:\n%s" % (" ".join(cmd), r.returncode, r.stdout))
        edges = callgrind_edges(out)
    counts = {}
    for name, (loop, callee) in VALGRIND.items():
        calls, ir = edges.get(("measure_" + loop, callee), (0, 0))
        if calls == 0:
            sys.exit("FAIL: no calls of %s from measure_%s in the callgrind profile" % (callee, loop))
        counts["valgrind." + name] = (ir + calls // 2) // calls
    return counts


# ---------------------------------------------------------------- static

INSN = re.compile(r"^\s*([0-9a-f]+):\s+(.*)$")
SYMBOL = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")
PREFIXES = {"addr32", "data16", "notrack", "bnd", "lock", "rep", "repz", "repe", "repnz",
            "repne", "cs", "ds", "es", "ss", "fs", "gs"}


def disassemble(lib):
    """Address -> (mnemonic, operands), and symbol -> address."""
    r = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-M", "att", lib],
                       stdout=subprocess.PIPE, universal_newlines=True, check=True)
    insns, symbols = {}, {}
    for line in r.stdout.splitlines():
        m = SYMBOL.match(line)
        if m:
            symbols.setdefault(m.group(2).split("@")[0], int(m.group(1), 16))
            continue
        m = INSN.match(line)
        if not m:
            continue
        words = m.group(2).split()
        while words and words[0] in PREFIXES and len(words) > 1:
            words = words[1:]
        if not words or words[0] == "(bad)":
            continue
        insns[int(m.group(1), 16)] = (words[0], " ".join(words[1:]))
    return insns, symbols


def direct_target(operands):
    m = re.match(r"^([0-9a-f]+)\b", operands)
    return int(m.group(1), 16) if m else None


def hot_path(insns, addrs, start, limit=400):
    """Instructions from start along the likely path to the first ret:
    (count, calls). Exits with a message on anything it cannot follow."""
    pc, count, calls = start, 0, 0
    while count < limit:
        if pc not in insns:
            sys.exit("FAIL: no instruction at %#x on the path from %#x" % (pc, start))
        mnemonic, operands = insns[pc]
        count += 1
        if mnemonic.startswith("ret"):
            return count, calls
        if mnemonic in ("jmp", "jmpq"):
            target = direct_target(operands)
            if target is None:
                sys.exit("FAIL: indirect jump at %#x on the path from %#x" % (pc, start))
            pc = target
            continue
        if mnemonic in ("ud2", "hlt", "int3"):
            sys.exit("FAIL: %s at %#x on the path from %#x" % (mnemonic, pc, start))
        if mnemonic.startswith("call"):
            calls += 1
        # Conditional branches fall through; everything else goes on.
        i = addrs.index(pc)
        pc = addrs[i + 1]
    sys.exit("FAIL: no ret within %d instructions from %#x" % (limit, start))


def count_static(build):
    if os.uname().machine != "x86_64":
        print("SKIP: the static count reads x86-64 code (the rseq sections are x86-64 only)")
        return None
    if not shutil.which("objdump"):
        print("SKIP: objdump is not installed (binutils; scripts/install-deps.sh installs it)")
        return None
    insns, symbols = disassemble(os.path.join(build, "libnumaslub.so"))
    addrs = sorted(insns)
    counts = {}
    for name, sym in STATIC.items():
        if sym not in symbols:
            sys.exit("FAIL: %s not found in libnumaslub.so" % sym)
        n, calls = hot_path(insns, addrs, symbols[sym])
        counts["static." + name] = n
        if calls:
            counts["static." + name + ".calls"] = calls
    return counts


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="the CMake build directory")
    ap.add_argument("--kind", choices=["valgrind", "static"], action="append")
    ap.add_argument("--update", action="store_true", help="rewrite golden.txt with these counts")
    args = ap.parse_args()
    kinds = args.kind or ["valgrind", "static"]
    config = read_config(args.build)

    now = {}
    for kind in kinds:
        c = count_valgrind(args.build) if kind == "valgrind" else count_static(args.build)
        if c is None and not args.update:
            return SKIP
        now.update(c or {})

    if args.update:
        old_config, golden = read_golden() if os.path.exists(GOLDEN) else (None, {})
        if old_config != config:
            golden = {}  # other counts are of another configuration
        for kind in kinds:
            golden = {k: v for k, v in golden.items() if not k.startswith(kind + ".")}
        golden.update(now)
        write_golden(config, golden)
        print("wrote %s (%s)" % (GOLDEN, config))
        for k in sorted(now):
            print("  %-34s %5d" % (k, now[k]))
        return 0

    golden_config, golden = read_golden()
    if golden_config != config:
        print("SKIP: the golden counts are for '%s'; this build is '%s'" % (golden_config, config))
        return SKIP
    print("fast-path instructions (%s)%s:" %
          (config, "; valgrind: per-thread mode" if "valgrind" in kinds else ""))
    print("  %-34s %5s %7s" % ("", "now", "golden"))
    failed, lower = [], []
    for k in sorted(now):
        g = golden.get(k)
        print("  %-34s %5d %7s" % (k, now[k], "-" if g is None else g))
        if g is None:
            failed.append("%s has no golden count" % k)
        elif now[k] > g:
            failed.append("%s grew: %d instructions, golden %d" % (k, now[k], g))
        elif now[k] < g:
            lower.append(k)
    for k in sorted(golden):
        if k.split(".")[0] in kinds and k not in now:
            failed.append("%s is golden but was not counted" % k)
    if lower:
        print("note: %s fell below golden: lower it (%s)" % (", ".join(lower), HOW_TO_UPDATE))
    if failed:
        for f in failed:
            print("FAIL: " + f)
        print("A fast path grew. If that is deliberate, update the golden counts: " + HOW_TO_UPDATE)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
