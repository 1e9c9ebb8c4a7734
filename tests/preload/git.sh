#!/usr/bin/env bash
# git under the preload: a repository of 300 files in 10 directories, eight
# commits that edit, add, delete and rename files, a branch merged back, then
# gc (pack-objects with its delta threads), fsck, log, diff, blame, grep and
# archive. Names, e-mails and dates are fixed, so every hash is deterministic.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
NS_NAME=git
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns_require git git

NFILES=300
NCOMMITS=8

# write_tree COMMIT: (re)writes the work tree's files for commit number COMMIT.
# File i changes at commit c when i % c == 0; a few appear and disappear.
write_tree() {
  awk -v c="$1" -v n="$NFILES" 'BEGIN {
    for (i = 0; i < n; i++) {
      if (c > 1 && i % c != 0) continue
      f = sprintf("d%d/file%03d.txt", i % 10, i)
      if (c > 2 && i % 37 == c) { print "" > f; close(f); continue }
      lines = 40 + (i * 7) % 80
      for (l = 0; l < lines; l++)
        printf "file %d line %d rev %d: %08x %s\n", i, l, (l % 5 == 0 ? c : 1),
          (i * 2654435761 + l * 40503 + c) % 4294967296, substr("abcdefghijklmnopqrstuvwxyz", 1 + (l + i) % 26) > f
      close(f)
    }
  }'
}

# commit N MESSAGE: commits everything, dated N hours after a fixed epoch.
commit() {
  local date="@$((1700000000 + $1 * 3600)) +0000"
  tgt git add -A
  GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date tgt git commit -q -m "$2"
}

workload() {
  local out=$1 c
  export HOME=$PWD/home GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
  export GIT_AUTHOR_NAME="Preload Test" GIT_AUTHOR_EMAIL=preload@example.invalid
  export GIT_COMMITTER_NAME="Preload Test" GIT_COMMITTER_EMAIL=preload@example.invalid
  mkdir -p "$HOME"
  tgt git init -q -b main repo
  cd repo
  tgt git config gc.auto 0
  tgt git config maintenance.auto false
  tgt git config gc.autoDetach false
  mkdir -p d0 d1 d2 d3 d4 d5 d6 d7 d8 d9
  for ((c = 1; c <= NCOMMITS; c++)); do
    write_tree "$c"
    if ((c == 3)); then rm d1/file011.txt d2/file022.txt; fi
    if ((c == 5)); then mv d3/file033.txt d3/renamed033.txt; fi
    commit "$c" "commit $c"
    if ((c == 4)); then
      tgt git checkout -q -b side
      write_tree 11
      commit 20 "side 1"
      write_tree 13
      commit 21 "side 2"
      tgt git checkout -q main
    fi
  done
  local date="@$((1700000000 + 30 * 3600)) +0000"
  GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date tgt git merge -q --no-edit -s ort -X theirs side >"$out/merge"

  tgt git gc --quiet --prune=now
  tgt git fsck --full --strict --no-progress >"$out/fsck" 2>&1
  tgt git count-objects -v >count-objects.txt
  grep -E '^(count|in-pack|packs|garbage):' count-objects.txt >"$out/count-objects"
  tgt git log --all --format='%H %T %P %an %ad %s' --date=raw >"$out/log"
  tgt git rev-list --objects --all >rev-list.txt
  sort rev-list.txt >"$out/rev-list"
  tgt git log -p --stat main >log-p
  sha256sum <log-p >"$out/log-p.sha256"
  tgt git diff --stat HEAD~6 HEAD >"$out/diff-stat"
  tgt git blame --line-porcelain d4/file044.txt >blame.txt
  sha256sum <blame.txt >"$out/blame.sha256"
  tgt git grep -c 'rev 5' HEAD >"$out/grep"
  tgt git archive --format=tar HEAD >archive.tar
  sha256sum <archive.tar >"$out/archive.sha256"
  # Threaded delta search makes the pack's layout vary run to run: check it,
  # compare only the object count.
  tgt git verify-pack .git/objects/pack/*.idx
  tgt git show-index <.git/objects/pack/*.idx >index
  wc -l <index >"$out/index-count"
}

ns_main "$@"
