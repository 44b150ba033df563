#!/usr/bin/env bash
# Writer cost of refresh on commit: single-row UPDATE throughput (pgbench, custom
# script) on a source that one DIFFERENTIAL stream table reads, A-B-A in one run:
# A with a `1m` schedule (the capture function does not notify), B with `on commit`
# (every capturing statement calls pg_notify('pgstream_changes', <oid>)), A again.
# No runtime runs: this is the capture's cost alone (each phase starts with the
# buffer emptied by a refresh).
#
# usage: DATABASE_URL=postgres://... scripts/notify_cost.sh [SECONDS=15] [CLIENTS="1 4"]
# Needs a superuser URL on a scratch database, psql and pgbench. Builds the CLI first.
set -euo pipefail
secs="${1:-15}"
clients="${2:-1 4}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q --bin pgstream
cli=./target/debug/pgstream
psql -qX "$DATABASE_URL" -c "DROP TABLE IF EXISTS notify_src" \
     -c "CREATE TABLE notify_src AS SELECT g AS id, g % 100 AS k, g AS v FROM generate_series(1, 100000) g" \
     -c "ALTER TABLE notify_src ADD PRIMARY KEY (id)" -c "VACUUM ANALYZE notify_src"
"$cli" drop notify_sums >/dev/null 2>&1 || true
"$cli" create notify_sums --query "SELECT k, sum(v) AS s FROM notify_src GROUP BY k" \
    --schedule 1m --mode differential >/dev/null
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<'SQL'
\set id random(1, 100000)
UPDATE notify_src SET v = v + 1 WHERE id = :id;
SQL
schedule() {
    # The row trigger on pgs_stream_tables.schedule rebuilds the capture function.
    psql -qX "$DATABASE_URL" -c "UPDATE pgstream.pgs_stream_tables SET schedule = '$1' WHERE table_name = 'notify_sums'"
    local n
    n=$(psql -qXAt "$DATABASE_URL" -c "SELECT count(*) FROM pg_proc WHERE oid = ('pgstream_changes.capture_' || 'notify_src'::regclass::oid)::regproc AND prosrc LIKE '%pg_notify%'")
    echo "  (schedule $1: capture notifies: $n)"
}
measure() {
    # Start each phase with an empty buffer (the refresh consumes and trims it).
    "$cli" refresh notify_sums >/dev/null
    psql -qX "$DATABASE_URL" -c "VACUUM notify_src"
    for c in $clients; do
        tps=$(pgbench -n -f "$script" -c "$c" -j "$c" -T "$secs" "$DATABASE_URL" 2>/dev/null \
              | awk '/^tps/ {print int($3); exit}')
        echo "$1, $c client(s): $tps tps"
    done
}
schedule 1m;        measure "A (1m, no notify)"
schedule "on commit"; measure "B (on commit, notify)"
schedule 1m;        measure "A (1m, no notify)"
schedule "on commit"; measure "B (on commit, notify)"
"$cli" drop notify_sums >/dev/null
psql -qX "$DATABASE_URL" -c "DROP TABLE notify_src"
