#!/usr/bin/env bash
# Writer cost of IMMEDIATE mode (issue 14, item 1): what a writer pays when a stream
# table is maintained inside its transaction, against no stream table and against
# deferred capture (a DIFFERENTIAL stream table whose refresh runs elsewhere, not
# during the measurement). The stream table is an aggregate over the written table:
#     SELECT k, count(*) AS n, sum(v) AS s FROM imm_src GROUP BY k   (100 groups)
# Two workloads, each phase in the order none, deferred, immediate, twice (A-B-C-A-B-C):
#   - single-row UPDATE throughput, pgbench with CLIENTS clients for SECONDS seconds
#     (every transaction: UPDATE imm_src SET v = v + 1 WHERE id = random);
#   - a bulk INSERT of 100,000 rows in one statement (median of 3), the rows deleted
#     again outside the measurement.
#
# usage: DATABASE_URL=postgres://... scripts/immediate_cost.sh [SECONDS=15] [CLIENTS=4]
# Needs a superuser URL on a scratch database, psql and pgbench. Builds the CLI first.
set -euo pipefail
secs="${1:-15}"
clients="${2:-4}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q --bin pgstream
cli=./target/debug/pgstream
q() { psql -qXAt "$DATABASE_URL" "$@"; }
q -c "DROP TABLE IF EXISTS imm_src" \
  -c "CREATE TABLE imm_src AS SELECT g AS id, g % 100 AS k, g AS v FROM generate_series(1, 100000) g" \
  -c "ALTER TABLE imm_src ADD PRIMARY KEY (id)" -c "VACUUM ANALYZE imm_src"
query="SELECT k, count(*) AS n, sum(v) AS s FROM imm_src GROUP BY k"
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat >"$script" <<'SQL'
\set id random(1, 100000)
UPDATE imm_src SET v = v + 1 WHERE id = :id;
SQL
setup() {
    "$cli" drop imm_sums >/dev/null 2>&1 || true
    case "$1" in
        none) ;;
        deferred) "$cli" create imm_sums --query "$query" --schedule 1h --mode differential >/dev/null ;;
        immediate) "$cli" create imm_sums --query "$query" --schedule 1h --mode immediate >/dev/null ;;
    esac
    q -c "VACUUM imm_src"
}
updates() {
    pgbench -n -f "$script" -c "$clients" -j "$clients" -T "$secs" "$DATABASE_URL" 2>/dev/null \
        | awk '/^tps/ {print int($3); exit}'
}
bulk() {
    local times=()
    for _ in 1 2 3; do
        t=$(psql -qX "$DATABASE_URL" -c '\timing on' \
              -c "INSERT INTO imm_src SELECT g, g % 100, g FROM generate_series(200001, 300000) g" \
              | awk '/^Time:/ {print $2}')
        times+=("$t")
        q -c "DELETE FROM imm_src WHERE id > 200000"
        # Deferred: the buffer is consumed (as a refresh elsewhere would) between runs.
        if [ "$1" = deferred ]; then "$cli" refresh imm_sums >/dev/null; fi
        q -c "VACUUM imm_src"
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n 2p
}
for round in 1 2; do
    for mode in none deferred immediate; do
        setup "$mode"
        tps=$(updates)
        if [ "$mode" = deferred ]; then "$cli" refresh imm_sums >/dev/null; fi
        ms=$(bulk "$mode")
        echo "round $round, $mode: single-row UPDATE, $clients clients: $tps tps; bulk INSERT of 100,000 rows: $ms ms"
    done
done
if [ -n "$(q -c "SELECT 1 FROM pg_class WHERE relname = 'imm_sums'")" ]; then
    diff=$(q -c "SELECT count(*) FROM (($query) EXCEPT ALL (SELECT k, n, s FROM imm_sums)) x")
    echo "immediate stream table differs from its query in $diff row(s)"
fi
"$cli" drop imm_sums >/dev/null 2>&1 || true
q -c "DROP TABLE imm_src"
