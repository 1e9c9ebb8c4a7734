#!/usr/bin/env python3
"""Checks the layer rule of docs/ARCHITECTURE.md on every #include.

The layer order is read from the first line of docs/ARCHITECTURE.md
("Layer order: lib/base → lib/numa → ... → shim"), so the page and the check
cannot drift apart. tools/ (numaslub-info) sits beside the shim: it links
numaslub_core, the layers without the shim. include/numaslub/ is the shim's
exported face.

For every file under lib/, shim/ and tools/ (tests/ and bench/ are white-box
and may reach into any layer), each `#include "..."` must be:
  1. root-relative (lib/..., shim/... or numaslub/...), so that this check
     sees what it names;
  2. of its own folder (any header), or
  3. of a folder before its own in the order, and then only that folder's
     umbrella header (lib/base/base.h, lib/numa/numa.h, ...).
A folder after one's own is never included: a lower layer reaches a higher
one only through a hook the higher layer installs.

ALLOWED below lists the includes that break the rule, each with why (none
today); an entry that no longer matches an include fails the check too, so
the list only shrinks.

  python3 scripts/check-layers.py          # exit 1 and one line per problem
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Umbrella header of each folder, by the folder's last path component.
UMBRELLA = {
    "lib/base": "lib/base/base.h",
    "lib/numa": "lib/numa/numa.h",
    "lib/buddy": "lib/buddy/buddy.h",
    "lib/slub": "lib/slub/slub.h",
    "lib/reclaim": "lib/reclaim/reclaim.h",
    "lib/views": "lib/views/views.h",
    "shim": "numaslub/numaslub.h",
}

# Folders checked besides those of the layer order, and the layer each
# counts as: tools/ beside the shim (so neither includes the other).
EXTRA_FOLDERS = {"tools": "shim"}

# The public header's folder counts as the shim's.
PUBLIC_PREFIX = "numaslub/"

# (including file, included header): why the rule is broken there. Every
# entry is debt: fix the include, then delete the line. Empty: every include
# follows the rule; an exception added here needs its reason.
ALLOWED = {}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
SOURCE_SUFFIXES = {".h", ".hpp", ".c", ".cc", ".cpp"}


def layer_order():
    """The folders of the first "Layer order:" line of docs/ARCHITECTURE.md."""
    doc = ROOT / "docs" / "ARCHITECTURE.md"
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("Layer order:"):
            # "Layer order: lib/base → ... → shim; each folder includes ..."
            text = line[len("Layer order:"):].split(";")[0]
            folders = [f.strip() for f in text.split("→")]
            if len(folders) > 1 and all(re.fullmatch(r"[a-z_/]+", f) for f in folders):
                return folders
    sys.exit("check-layers: no 'Layer order: lib/base → ... → shim' line in docs/ARCHITECTURE.md")


def folder_of(path, folders):
    """The layer folder PATH (root-relative, '/'-separated) belongs to, or None."""
    if path.startswith(PUBLIC_PREFIX):
        return "shim"
    for f in folders:
        if path == f or path.startswith(f + "/"):
            return f
    return None


def main():
    order = layer_order()
    rank = {f: i for i, f in enumerate(order)}
    for extra, like in EXTRA_FOLDERS.items():
        rank[extra] = rank[like]
    folders = list(rank)
    problems = []
    for f in order:
        if f not in UMBRELLA:
            problems.append(f"docs/ARCHITECTURE.md names {f}, which check-layers.py has no umbrella for")
        elif not (ROOT / f).is_dir():
            problems.append(f"docs/ARCHITECTURE.md names {f}, which does not exist")
        elif not (ROOT / UMBRELLA[f]).is_file() and not (ROOT / "include" / UMBRELLA[f]).is_file():
            problems.append(f"{f}: umbrella header {UMBRELLA[f]} does not exist")

    used = set()
    checked = 0
    for top in folders:
        for src in sorted((ROOT / top).rglob("*")):
            if src.suffix not in SOURCE_SUFFIXES or not src.is_file():
                continue
            rel = src.relative_to(ROOT).as_posix()
            own = folder_of(rel, folders)
            checked += 1
            for lineno, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                quote, inc = m.groups()
                close = ">" if quote == "<" else quote
                where = f"{rel}:{lineno}: #include {quote}{inc}{close}"
                target = folder_of(inc, folders)
                if target is None:
                    if quote == '"' or inc.startswith("lib/") or inc.startswith("shim/"):
                        problems.append(f"{where}: not a root-relative path into a known layer "
                                        f"(lib/<layer>/..., shim/..., numaslub/...)")
                    continue
                if target == own:
                    continue
                why = None
                if rank[target] > rank[own]:
                    why = f"{target} is above {own} (layer order: {' → '.join(order)})"
                elif rank[target] == rank[own]:
                    why = f"{target} and {own} sit side by side; neither includes the other"
                elif inc != UMBRELLA[target]:
                    why = f"{own} may include {target} only through {UMBRELLA[target]}"
                if why is None:
                    continue
                if (rel, inc) in ALLOWED:
                    used.add((rel, inc))
                    continue
                problems.append(f"{where}: {why}")

    for rel, inc in sorted(set(ALLOWED) - used):
        problems.append(f"scripts/check-layers.py: ALLOWED entry ({rel}, {inc}) matches no "
                        f"include any more; delete it")

    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} problem(s) in {checked} files")
        return 1
    print(f"check-layers: {checked} files follow {' → '.join(order)} "
          f"({len(ALLOWED)} allowed exceptions in scripts/check-layers.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
