#!/usr/bin/env bash
# sqlite3 under the preload: 200k rows inserted by a recursive CTE into a file
# database with a 64 MiB page cache, two indexes, aggregates, a join, window
# functions, an update and delete, VACUUM and an integrity check. Values come
# from fixed arithmetic (never random()), so every result is deterministic.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
NS_NAME=sqlite
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns_require sqlite3 sqlite3

workload() {
  local out=$1
  cat >script.sql <<'SQL'
PRAGMA cache_size = -65536;
PRAGMA temp_store = MEMORY;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, payload TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO t
  SELECT x, (x * 7919) % 1000, 'name-' || ((x * 104729) % 50000),
         ((x * 2654435761) % 1000003) / 7.0, printf('%.*c', x % 200, 'x')
  FROM c;
CREATE INDEX t_grp ON t(grp);
CREATE INDEX t_name ON t(name, val);
.print -- totals
SELECT count(*), sum(grp), printf('%.4f', total(val)), max(length(payload)) FROM t;
.print -- biggest groups
SELECT grp, count(*), printf('%.4f', avg(val)), min(name), max(name)
  FROM t GROUP BY grp ORDER BY count(*) DESC, grp LIMIT 10;
.print -- repeated names
SELECT name, count(*) FROM t GROUP BY name HAVING count(*) >= 4 ORDER BY 2 DESC, 1 DESC LIMIT 5;
.print -- join
CREATE TABLE g AS SELECT grp, sum(val) AS s FROM t GROUP BY grp;
SELECT count(*), printf('%.2f', sum(t.val * g.s)) FROM t JOIN g USING (grp) WHERE t.id % 10 = 0;
.print -- window
SELECT id, grp, rk FROM (
  SELECT id, grp, rank() OVER (PARTITION BY grp ORDER BY val DESC, id) AS rk FROM t
) WHERE rk = 1 ORDER BY grp LIMIT 10;
.print -- distinct and sort
SELECT count(DISTINCT name), count(DISTINCT payload) FROM t;
SELECT id FROM t ORDER BY name DESC, val, id LIMIT 5;
.print -- update, delete, vacuum
UPDATE t SET payload = upper(payload) || name WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
VACUUM;
PRAGMA integrity_check;
SELECT count(*), sum(length(payload)), length(group_concat(name, ',')) FROM t;
SELECT substr(group_concat(payload, ''), 1000000, 40) FROM (SELECT payload FROM t ORDER BY id);
SQL
  tgt sqlite3 -batch -bail test.db <script.sql >"$out/stdout" 2>"$out/stderr"
  # A second process reads the file back.
  tgt sqlite3 -batch -bail test.db \
    "SELECT count(*), sum(id), max(name) FROM t WHERE grp BETWEEN 100 AND 199;" >"$out/reread" 2>&1
}

ns_main "$@"
