#!/usr/bin/env bash
# Idle cost of the scheduler: CPU of `pgstream run` and of PostgreSQL while N stream
# tables with 1 s schedules sit over a table that does not change, A-B-A in one run:
# A with the DDL event trigger disabled (every due stream table is refreshed, as before
# the idle check), B with it enabled (the scheduler probes the buffers and refreshes
# nothing), A again.
#
# usage: DATABASE_URL=postgres://... scripts/idle_cost.sh [N=200] [SECONDS=20]
# Needs a superuser URL on a scratch database, psql, pgrep and the postgres processes
# on this machine (it reads /proc). Builds the CLI first.
set -euo pipefail
n="${1:-200}"
secs="${2:-20}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build -q --bin pgstream
cli=./target/debug/pgstream
psql -qX "$DATABASE_URL" -c "CREATE TABLE IF NOT EXISTS idle_src AS SELECT g AS id, g % 100 AS k, g AS v FROM generate_series(1, 10000) g" \
     -c "ALTER TABLE idle_src DROP CONSTRAINT IF EXISTS idle_src_pkey" -c "ALTER TABLE idle_src ADD PRIMARY KEY (id)"
for i in $(seq 1 "$n"); do
    "$cli" create "idle_$i" --query "SELECT k, sum(v) AS s FROM idle_src WHERE id > $i GROUP BY k" \
        --schedule 1s --mode differential >/dev/null 2>&1 || true
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() { local t=0; for p in $(pgrep -u postgres postgres || pgrep postgres); do t=$((t + $(ticks "$p"))); done; echo "$t"; }
measure() {
    "$cli" run --tick 1s >/dev/null 2>&1 &
    local rt=$!
    sleep 3
    local a b c d
    a=$(pg_ticks); b=$(ticks "$rt")
    sleep "$secs"
    c=$(pg_ticks); d=$(ticks "$rt")
    kill -INT "$rt"; wait "$rt" 2>/dev/null || true
    hz=$(getconf CLK_TCK)
    echo "$1: PostgreSQL $(( (c - a) * 1000 / hz / secs / 10 ))‰ of a core... runtime $(( (d - b) * 1000 / hz / secs / 10 ))‰" \
        | sed 's/‰ of a core\.\.\./% of a core,/; s/‰$/% of a core/'
}
psql -qX "$DATABASE_URL" -c "ALTER EVENT TRIGGER pgstream_ddl DISABLE"
measure "A (refresh every due stream table)"
psql -qX "$DATABASE_URL" -c "ALTER EVENT TRIGGER pgstream_ddl ENABLE"
measure "B (idle check)"
psql -qX "$DATABASE_URL" -c "ALTER EVENT TRIGGER pgstream_ddl DISABLE"
measure "A (refresh every due stream table)"
psql -qX "$DATABASE_URL" -c "ALTER EVENT TRIGGER pgstream_ddl ENABLE"
