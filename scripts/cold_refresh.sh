#!/usr/bin/env bash
# The refresh through a new connection (psql, the command line, pg_cron, a recycled pool
# connection) against REFRESH MATERIALIZED VIEW through a new connection: the tutorial's
# join + aggregate over N employees, 10 changes before each refresh, each statement on a
# fresh psql session, timed with \timing (the statement's round trip, once connected).
# With perf (and -p permission), also the backend's CPU time for the first refresh of a
# fresh session and a second one on the same session (warm), which the machine's load
# disturbs less than wall time.
#
# usage: DATABASE_URL=postgres://... scripts/cold_refresh.sh [N=1000000] [REPS=7]
# Needs a superuser URL on a scratch database, psql (and perf for the CPU times).
# Builds the CLI first.
set -euo pipefail
n="${1:-1000000}"
reps="${2:-7}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q --bin pgstream
cli=./target/debug/pgstream
q="SELECT d.id AS department_id, d.name AS department_name, COUNT(e.id) AS headcount,
   COALESCE(SUM(e.salary), 0) AS total_salary, COALESCE(AVG(e.salary), 0) AS avg_salary
   FROM cold_departments d LEFT JOIN cold_employees e ON e.department_id = d.id GROUP BY d.id, d.name"
"$cli" drop cold_stats >/dev/null 2>&1 || true
psql -qX "$DATABASE_URL" <<SQL
SET client_min_messages = warning;
DROP MATERIALIZED VIEW IF EXISTS cold_mv;
DROP TABLE IF EXISTS cold_employees, cold_departments;
CREATE TABLE cold_departments (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE cold_employees (id int PRIMARY KEY, name text NOT NULL, department_id int NOT NULL,
                             salary numeric(10,2) NOT NULL);
INSERT INTO cold_departments SELECT g, 'dept ' || g FROM generate_series(1, 1000) g;
INSERT INTO cold_employees SELECT g, 'emp ' || g, 1 + (g::bigint * 7919) % 1000,
       30000 + (g::bigint * 104729) % 170000 FROM generate_series(1, $n) g;
CREATE INDEX ON cold_employees (department_id);
VACUUM ANALYZE cold_departments, cold_employees;
CREATE MATERIALIZED VIEW cold_mv AS $q;
SQL
"$cli" create cold_stats --query "$q" --schedule 1h >/dev/null
change="UPDATE cold_employees SET salary = salary + 1, department_id = 1 + (random() * 999)::int
        WHERE id = ANY (ARRAY(SELECT (1 + random() * ($n - 1))::int FROM generate_series(1, 10)))"
refresh="SELECT pgstream.refresh_stream_table('cold_stats')"
timed() { psql -qAtX "$DATABASE_URL" -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
diff_ms=(); rmv_ms=(); cold_cpu=(); warm_cpu=()
for _ in $(seq "$reps"); do
    psql -qAtX "$DATABASE_URL" -c "$change" >/dev/null
    diff_ms+=("$(timed "$refresh")")
    rmv_ms+=("$(timed "REFRESH MATERIALIZED VIEW cold_mv")")
done
echo "through a new connection, median of $reps: refresh $(median "${diff_ms[@]}") ms," \
     "REFRESH MATERIALIZED VIEW $(median "${rmv_ms[@]}") ms"
command -v perf >/dev/null || exit 0
# CPU time of one statement on a session's backend: perf stat on its pid.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cpu_of() { # cpu_of FIFO_FD OUT PID SQL
    perf stat -x, -e task-clock -p "$3" -o "$dir/stat" 2>/dev/null &
    local pp=$!
    sleep 0.5
    local before
    before=$(wc -l <"$2")
    echo "$4; SELECT 'done';" >&"$1"
    until tail -n +"$((before + 1))" "$2" | grep -q '^done$'; do sleep 0.02; done
    kill -INT "$pp"; wait "$pp" 2>/dev/null || true
    awk -F, '/task-clock/ {printf "%.2f", $1}' "$dir/stat"
}
for _ in $(seq "$reps"); do
    psql -qAtX "$DATABASE_URL" -c "$change" >/dev/null
    mkfifo "$dir/in"; : >"$dir/out"
    psql -qAtX "$DATABASE_URL" <"$dir/in" >"$dir/out" 2>&1 &
    exec 3>"$dir/in"
    echo "SELECT pg_backend_pid();" >&3
    until [ -s "$dir/out" ]; do sleep 0.02; done
    pid=$(head -1 "$dir/out")
    cold_cpu+=("$(cpu_of 3 "$dir/out" "$pid" "$refresh")")
    echo "$change;" >&3
    warm_cpu+=("$(cpu_of 3 "$dir/out" "$pid" "$refresh")")
    exec 3>&-; wait; rm -f "$dir/in"
done
echo "backend CPU, median of $reps: first refresh of a session $(median "${cold_cpu[@]}") ms," \
     "second $(median "${warm_cpu[@]}") ms"
