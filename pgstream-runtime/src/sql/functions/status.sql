-- The sources whose change buffers hold committed rows now: one probe per source
-- (`SELECT EXISTS`), whatever the number of stream tables. The scheduler does not
-- call the refresh of a DIFFERENTIAL stream table none of whose sources is among them
-- (it would find empty windows and do nothing); see scheduler.rs.
CREATE OR REPLACE FUNCTION pgstream._busy_sources() RETURNS oid[] LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    src oid;
    busy oid[] := '{}';
    b boolean;
BEGIN
    FOR src IN SELECT s.source_oid FROM pgstream.pgs_sources s LOOP
        IF to_regclass(format('%I.%I', 'pgstream_changes', 'changes_' || src)) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I)', 'pgstream_changes', 'changes_' || src)
           INTO b;
        IF b THEN
            busy := busy || src;
        END IF;
    END LOOP;
    RETURN busy;
END $fn$;

-- Whether the windows of the stream tables `ids` hold rows: some buffer row of one of
-- their sources that the frontier there has not seen (the window's own test: at or
-- after the snapshot's xmin and not visible in it, or a row of the frontier's own
-- transaction after the change it consumed). A frontier not set, or a source without
-- a buffer, counts as rows. The scheduler asks it before refreshing a group of
-- inheriting stream tables for their readers: a source's buffer holding rows that
-- another consumer has not read yet refreshed the group, with empty windows, at every
-- tick its readers were due. (The xmin test alone is not enough: any transaction
-- running in the cluster when the frontier was taken holds its xmin back, and the
-- rows written since, all seen, passed it.)
CREATE OR REPLACE FUNCTION pgstream._windows_hold_rows(ids bigint[]) RETURNS boolean
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    f record;
    hit boolean;
BEGIN
    FOR f IN SELECT fr.source_oid, fr.frontier, fr.own_xid, fr.own_change
               FROM pgstream.pgs_frontiers fr
              WHERE fr.st_id = ANY (ids) ORDER BY fr.source_oid LOOP
        IF f.frontier IS NULL
           OR to_regclass(format('%I.%I', 'pgstream_changes', 'changes_' || f.source_oid)) IS NULL THEN
            RETURN true;
        END IF;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I b
                         WHERE b.__pgs_xid >= pg_catalog.pg_snapshot_xmin($1)
                           AND CASE WHEN b.__pgs_xid = $2 THEN b.__pgs_change_id > COALESCE($3, -1)
                                    ELSE NOT pg_catalog.pg_visible_in_snapshot(b.__pgs_xid, $1) END)',
                       'pgstream_changes', 'changes_' || f.source_oid)
           INTO hit USING f.frontier, f.own_xid, f.own_change;
        IF hit THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END $fn$;

-- Advance, without a refresh, the frontiers of the DIFFERENTIAL stream tables whose
-- windows hold only changes that cannot alter them, and return their ids (the
-- scheduler then leaves them out of its pass). A change cannot alter a stream table
-- when it fails the change filter of its source (pgs_frontiers.change_filter,
-- computed by the compiler: pgstream-core's relevance.rs); a stream table reading a
-- source with changes and no filter is never advanced here. Tenant-style stream
-- tables (one per tenant, `WHERE tenant_id = n`) share one filter template with
-- different arguments, so a window of changes is matched with all of them by one
-- join of the buffer with the frontiers per source and template (a hash join on the
-- tenant), not one probe per stream table.
--
-- Must run in a REPEATABLE READ transaction: its one snapshot is the one the buffers
-- are read with and the one the frontiers are advanced to, so a change committed in
-- between can be neither skipped nor missed. Each stream table's refresh lock is
-- taken without waiting (one being refreshed is left alone); a refresh that committed
-- after the snapshot and before the lock makes the UPDATE fail with a serialization
-- failure, caught: the batch advances nothing (its stream tables are refreshed).
--
-- One call looks at `batch` candidates at most, those with an id above `after`, in id
-- order, and returns the ones it advanced and the last id it looked at (NULL when
-- there was none): the caller calls again, in a new transaction, from there. An
-- advisory lock held to the end of the transaction takes a slot of the shared lock
-- table (max_locks_per_transaction x max_connections, about 6,400 with the default
-- settings), so one transaction over 10,000 tenants would fail with "out of shared
-- memory" and advance nothing.
CREATE OR REPLACE FUNCTION pgstream._advance_unaffected(
    after bigint, batch integer, OUT advanced bigint[], OUT last_id bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    busy oid[];
    src oid;
    tmpl text;
    ids bigint[];
    affected bigint[] := '{}';
    candidates bigint[];
    locked bigint[];
BEGIN
    advanced := '{}';
    IF current_setting('transaction_isolation') = 'read committed' THEN
        RAISE EXCEPTION 'pgstream._advance_unaffected must run in a REPEATABLE READ transaction'
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'pgstream._advance_unaffected: batch must be at least 1, not %', batch
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    busy := pgstream._busy_sources();
    IF cardinality(busy) = 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(c.id ORDER BY c.id) INTO candidates
      FROM (SELECT s.id
              FROM pgstream.pgs_stream_tables s
              JOIN (SELECT f.st_id FROM pgstream.pgs_frontiers f
                     WHERE f.st_id > coalesce(after, 0)
                     GROUP BY f.st_id
                    HAVING bool_or(f.source_oid = ANY (busy))
                       AND NOT bool_or(f.frontier IS NULL
                                       OR (f.source_oid = ANY (busy) AND f.change_filter IS NULL))) g
                ON g.st_id = s.id
             WHERE s.status = 'ACTIVE' AND s.mode = 'DIFFERENTIAL' AND NOT s.needs_full
               AND s.last_refresh_at IS NOT NULL AND s.refresh_function IS NOT NULL
               AND s.id > coalesce(after, 0)
             ORDER BY s.id
             LIMIT batch) c;
    IF candidates IS NULL THEN
        RETURN;
    END IF;
    last_id := candidates[cardinality(candidates)];
    -- The locks are tried for this batch's candidates only.
    SELECT coalesce(array_agg(c.id), '{}') INTO locked
      FROM unnest(candidates) c (id)
     WHERE pg_try_advisory_xact_lock({{STREAM_TABLE_LOCK_CLASS}}, (c.id % 2147483648)::integer);
    IF cardinality(locked) = 0 THEN
        RETURN;
    END IF;
    -- The locked stream tables with a change in a window that passes their filter
    -- (a window is taken wide here: every change not visible in the frontier, and
    -- every change of the last refresh's own transaction).
    FOREACH src IN ARRAY busy LOOP
        FOR tmpl IN SELECT DISTINCT f.change_filter FROM pgstream.pgs_frontiers f
                     WHERE f.source_oid = src AND f.change_filter IS NOT NULL LOOP
            EXECUTE format(
                'SELECT array_agg(DISTINCT f.st_id) FROM %I.%I b'
                '  JOIN (SELECT f.* FROM pgstream.pgs_frontiers f JOIN unnest($3::bigint[]) l (id) ON l.id = f.st_id'
                '         WHERE f.source_oid = $1 AND f.change_filter = $2) f'
                '    ON (%s)'
                ' WHERE b.__pgs_xid = f.own_xid'
                '    OR NOT pg_catalog.pg_visible_in_snapshot(b.__pgs_xid, f.frontier)',
                'pgstream_changes', 'changes_' || src, tmpl)
               INTO ids USING src, tmpl, locked;
            affected := affected || coalesce(ids, '{}');
        END LOOP;
    END LOOP;
    -- The others: the frontiers a refresh that found nothing to do would leave.
    -- (Set operations and joins on unnest: a test `= ANY (array)` per row would be
    -- quadratic in the number of stream tables.)
    SELECT coalesce(array_agg(u.id), '{}') INTO advanced
      FROM (SELECT unnest(locked) EXCEPT SELECT unnest(affected)) u (id);
    BEGIN
        UPDATE pgstream.pgs_frontiers f
           SET frontier = pg_catalog.pg_current_snapshot(), own_xid = NULL, own_change = NULL
          FROM unnest(advanced) u (id)
         WHERE f.st_id = u.id;
    EXCEPTION WHEN serialization_failure THEN
        -- A refresh of one of them committed after this snapshot: this batch
        -- advances nothing (the pass refreshes them), the caller goes on after it.
        advanced := '{}';
    END;
END $fn$;

-- The release before batches called this form from its scheduler: a runtime of that
-- release still running beside this one during an upgrade keeps working (over every
-- candidate in one transaction, as it did).
CREATE OR REPLACE FUNCTION pgstream._advance_unaffected() RETURNS bigint[] LANGUAGE sql AS $fn$
    SELECT a.advanced FROM pgstream._advance_unaffected(0, 2147483647) a
$fn$;

-- Number of buffered changes of one stream table that its frontiers do not cover.
CREATE OR REPLACE FUNCTION pgstream._pending_changes(st_id bigint)
RETURNS bigint LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    f record;
    n bigint;
    total bigint := 0;
BEGIN
    FOR f IN SELECT fr.source_oid, fr.frontier FROM pgstream.pgs_frontiers fr
              WHERE fr.st_id = _pending_changes.st_id LOOP
        IF to_regclass(format('%I.%I', 'pgstream_changes', 'changes_' || f.source_oid)) IS NULL THEN
            CONTINUE;
        END IF;
        EXECUTE format(
            'SELECT count(*) FROM %I.%I b WHERE $1 IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(b.__pgs_xid, $1)',
            'pgstream_changes', 'changes_' || f.source_oid)
            INTO n USING f.frontier;
        total := total + n;
    END LOOP;
    RETURN total;
END $fn$;

-- Buffered changes not covered by each frontier, for every stream table that reads a
-- source whose buffer holds rows: one statement per such source (the buffers of the
-- others are empty, so their consumers have nothing pending), not one per stream
-- table and source: pgs_status() over 10,000 idle stream tables reads no buffer.
CREATE OR REPLACE FUNCTION pgstream._pending_by_stream_table()
RETURNS TABLE (st_id bigint, n bigint) LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
DECLARE
    src oid;
BEGIN
    FOREACH src IN ARRAY pgstream._busy_sources() LOOP
        RETURN QUERY EXECUTE format(
            'SELECT f.st_id, (SELECT count(*) FROM %I.%I b'
            '                  WHERE f.frontier IS NULL'
            '                     OR NOT pg_catalog.pg_visible_in_snapshot(b.__pgs_xid, f.frontier))'
            '  FROM pgstream.pgs_frontiers f WHERE f.source_oid = $1',
            'pgstream_changes', 'changes_' || src)
            USING src;
    END LOOP;
END $fn$;

-- One row per stream table. `stale`: it must be refreshed to honour its schedule:
-- a TRUNCATE of a source is pending, or changes are pending and the last refresh is
-- older than the schedule, or it was never refreshed and the schedule has elapsed.
-- For a cron schedule, `schedule_interval` is the longest time between two fire
-- times (exact for evenly spaced ones such as `*/5 * * * *`), so `stale` says that a
-- fire time certainly passed without a refresh; for unevenly spaced schedules
-- (`0 9 * * MON-FRI`) it is an approximation that can lag behind a missed fire time.
CREATE OR REPLACE FUNCTION pgstream.pgs_status()
RETURNS TABLE (     name             text,     schedule         text,     refresh_mode     text,     status           text,     last_refresh_at  timestamptz,     stale            boolean,     pending_changes  bigint,     needs_full       boolean,     created_at       timestamptz,     id               bigint,     strategy         text,     effective_schedule text ) LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
BEGIN
    -- An inheriting stream table is stale by its effective schedule (its most
    -- demanding reader's, see _effective_schedule), shown as `5s (from reader)`; one
    -- that nothing with a schedule reads follows its fallback, schedule_interval.
    RETURN QUERY
    -- pgstream._display_name, inlined (a function with its own search_path is
    -- called once per row: 8 ms over 1,000 stream tables).
    SELECT CASE WHEN s.schema_name = 'public' THEN s.table_name
                ELSE s.schema_name || '.' || s.table_name END,
           s.schedule,
           s.mode,
           s.status,
           s.last_refresh_at,
           (s.needs_full
            OR (s.last_refresh_at IS NULL AND now() - s.created_at > coalesce(e.schedule_interval, s.schedule_interval))
            OR (coalesce(p.n, 0) > 0 AND (s.last_refresh_at IS NULL
                             OR now() - s.last_refresh_at > coalesce(e.schedule_interval, s.schedule_interval)))),
           coalesce(p.n, 0)::bigint,
           s.needs_full,
           s.created_at,
           s.id,
           s.strategy,
           CASE WHEN s.schedule <> 'inherit' THEN s.schedule
                WHEN e.reader IS NULL THEN '1m (no readers)'
                ELSE format('%s (from %s)', e.schedule, e.reader) END
      FROM pgstream.pgs_stream_tables s
      LEFT JOIN (SELECT q.st_id, sum(q.n) AS n FROM pgstream._pending_by_stream_table() q
                  GROUP BY q.st_id) p ON p.st_id = s.id
      -- Called for the inheriting rows only: the condition is a one-time filter
      -- above the call (OFFSET 0 keeps the subquery from being pulled up, which
      -- would turn it into a join filter applied after calling the function for every
      -- row: 10 s over 1,000 stream tables, each call reading the whole catalog).
      LEFT JOIN LATERAL (SELECT x.* FROM pgstream._effective_schedule(s.id) x
                          WHERE s.schedule = 'inherit' OFFSET 0) e ON true
     ORDER BY s.schema_name, s.table_name;
END $fn$;

CREATE OR REPLACE VIEW pgstream.pg_stat_stream_tables AS
SELECT pgstream._display_name(s.schema_name, s.table_name) AS name,
       s.mode AS refresh_mode,
       s.status,
       coalesce(r.refresh_count, 0) AS refresh_count,
       CASE WHEN r.refresh_count > 0 THEN r.total_ms / r.refresh_count END AS avg_duration_ms,
       r.min_ms AS min_duration_ms,
       r.max_ms AS max_duration_ms,
       r.last_ms AS last_duration_ms,
       coalesce(r.rows_affected, 0) AS rows_affected,
       r.last_rows,
       coalesce(r.error_count, 0) AS error_count,
       r.last_error,
       r.last_error_at,
       s.last_refresh_at,
       s.id,
       s.consecutive_failures,
       s.next_retry_at,
       s.status_reason,
       r.last_strategy,
       r.last_window_rows,
       coalesce(r.differential_count, 0) AS differential_count,
       coalesce(r.full_count, 0) AS full_count,
       coalesce(r.adaptive_full_count, 0) AS adaptive_full_count,
       coalesce(r.no_change_count, 0) AS no_change_count,
       s.full_refresh_ratio,
       r.full_ms_avg,
       r.diff_ms_per_row
  FROM pgstream.pgs_stream_tables s
  LEFT JOIN pgstream.pgs_refresh_stats r ON r.st_id = s.id;

