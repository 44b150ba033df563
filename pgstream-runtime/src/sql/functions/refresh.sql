-- The sources and the schema of a stream table, before a refresh reads them. Each
-- source is locked (ACCESS SHARE, as its reads would) by the name the stored
-- statements read it by, in oid order, with one LOCK statement, before the checks:
-- until the transaction ends the name cannot be given to another relation (a source
-- renamed, dropped or replaced by a view between the checks and a statement), so what
-- the checks saw is what the statements read. LOCK re-resolves the names after
-- waiting; the checks then see the relations the names denote now. Then `drift` is
-- the message of schema drift (_drift: a source renamed, moved, dropped or replaced,
-- a used column dropped, renamed or retyped, a view redefined; _sync_sources: a
-- source with inheritance children, or itself a child), NULL when there is none, and
-- `changed` says that a partitioned source's members changed (the refresh is then a
-- full one). A FULL stream table recomputes anyway: its partitioned sources are not
-- synced.
CREATE OR REPLACE FUNCTION pgstream._check_sources(st_id bigint, mode text,
                                                   OUT drift text, OUT changed boolean)
LANGUAGE plpgsql AS $fn$
DECLARE
    rels text;
BEGIN
    changed := false;
    rels := (SELECT string_agg(q.rel, ', ' ORDER BY q.source_oid)
               FROM (SELECT f.source_oid, format('%I.%I', f.source_schema, f.source_name) AS rel
                       FROM pgstream.pgs_frontiers f
                      WHERE f.st_id = _check_sources.st_id AND f.source_name IS NOT NULL) q
              WHERE to_regclass(q.rel) IS NOT NULL);
    IF rels IS NOT NULL THEN
        EXECUTE 'LOCK TABLE ONLY ' || rels || ' IN ACCESS SHARE MODE';
    END IF;
    drift := pgstream._drift(st_id);
    IF drift IS NULL AND mode <> 'FULL' THEN
        SELECT y.drift, y.changed INTO drift, changed FROM pgstream._sync_sources(st_id) y;
    END IF;
END $fn$;

-- The full (full = true) or the differential refresh statement of a stream table.
CREATE OR REPLACE FUNCTION pgstream._stored_refresh_sql(st_id bigint, "full" boolean)
RETURNS text LANGUAGE sql STABLE AS $fn$
    SELECT CASE WHEN "full" THEN s.full_refresh_sql ELSE s.differential_refresh_sql END
      FROM pgstream.pgs_stream_tables s WHERE s.id = st_id
$fn$;

-- Apply the changes to a stream table's storage table, under its lock, with the
-- recorded settings pinned: the full statement (`full_mode`), else the generated
-- function (`refresh_function`), which counts the windows' rows up to `cap` (NULL:
-- no limit) and refreshes when there are some, but fewer (at the cap a full refresh
-- is cheaper: see _refresh for the cap), else the stored differential statement of
-- an older release. Returns the rows changed, the strategy, the windows' rows and
-- whether the generated function trimmed the buffers itself. An error names the
-- stream table and the strategy.
CREATE OR REPLACE FUNCTION pgstream._apply_refresh(st_id bigint, display_name text, full_mode boolean,
                                                   refresh_function text, cap bigint,
                                                   OUT n bigint, OUT how text, OUT win bigint,
                                                   OUT trimmed boolean)
LANGUAGE plpgsql AS $fn$
DECLARE
    res record;
    msg text;
    det text;
    hnt text;
    state text;
BEGIN
    how := CASE WHEN full_mode THEN 'FULL' ELSE 'DIFFERENTIAL' END;
    trimmed := false;
    -- Lets the guard trigger on the storage table through (see _guard_storage).
    PERFORM set_config('pgstream.refreshing', 'on', true);
    IF full_mode THEN
        EXECUTE pgstream._stored_refresh_sql(st_id, true) INTO n;
    ELSIF refresh_function IS NOT NULL THEN
        -- With no rows in the windows there is nothing to do (the frontiers stay: a
        -- transaction still in progress is as invisible to them as to a new snapshot).
        EXECUTE format('SELECT * FROM %s($1)', refresh_function)
           INTO res USING coalesce(cap, 9223372036854775807);
        n := res.pgs_rows_changed;
        win := res.pgs_window_rows;
        how := coalesce(res.pgs_strategy, how);
        -- Functions generated since catalog v5 trim the buffers themselves; older
        -- ones have no `pgs_trimmed` column.
        trimmed := coalesce((to_jsonb(res) ->> 'pgs_trimmed')::boolean, false);
        IF win = 0 THEN
            how := 'NO CHANGES';
            n := 0;
        ELSIF n IS NULL THEN
            how := 'FULL (adaptive)';
            EXECUTE pgstream._stored_refresh_sql(st_id, true) INTO n;
        END IF;
    ELSE
        EXECUTE pgstream._stored_refresh_sql(st_id, false) INTO n;
    END IF;
    PERFORM set_config('pgstream.refreshing', '', true);
    n := coalesce(n, 0);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                            hnt = PG_EXCEPTION_HINT, state = RETURNED_SQLSTATE;
    msg := format('refreshing stream table %s (%s refresh): %s', display_name,
                  CASE WHEN how LIKE 'DIFFERENTIAL%' THEN 'differential' ELSE 'full' END, msg);
    -- RAISE has no way to leave an option unset conditionally.
    IF coalesce(det, '') = '' AND coalesce(hnt, '') = '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = msg;
    ELSIF coalesce(hnt, '') = '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = msg, DETAIL = det;
    ELSIF coalesce(det, '') = '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = msg, HINT = hnt;
    ELSE
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = msg, DETAIL = det, HINT = hnt;
    END IF;
END $fn$;

-- After a refresh applied its changes (how, n rows changed, win rows in the windows,
-- trimmed: the generated function trimmed the buffers): the buffers trimmed, unless
-- there were no changes (nothing was consumed: trimming can wait) or the generated
-- function did it; the catalog row (time of the refresh, needs_full cleared after a
-- full refresh); the statistics and the cost model (pgs_refresh_stats), with the
-- duration since t0; and when rows changed, the notifications (`pgstream_refreshed`
-- and the stream table's own channel, delivered at commit; see refreshed_channel).
CREATE OR REPLACE FUNCTION pgstream._finish_refresh(st_id bigint, schema_name text, table_name text,
                                                    how text, n bigint, win bigint, trimmed boolean,
                                                    t0 timestamptz)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    src oid;
    ms double precision;
    msg text;
    chan text;
BEGIN
    IF how <> 'NO CHANGES' AND NOT trimmed THEN
        FOR src IN SELECT f.source_oid FROM pgstream.pgs_frontiers f WHERE f.st_id = _finish_refresh.st_id LOOP
            PERFORM pgstream._trim_buffer(src);
        END LOOP;
    END IF;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000.0;
    UPDATE pgstream.pgs_stream_tables s
       SET last_refresh_at = now(), data_timestamp = now(),
           consecutive_failures = 0, next_retry_at = NULL,
           needs_full = s.needs_full AND how NOT LIKE 'FULL%'
     WHERE s.id = _finish_refresh.st_id;
    INSERT INTO pgstream.pgs_refresh_stats AS r
           (st_id, refresh_count, total_ms, min_ms, max_ms, last_ms, rows_affected, last_rows,
            last_strategy, last_window_rows, differential_count, full_count,
            adaptive_full_count, no_change_count)
    VALUES (_finish_refresh.st_id, 1, ms, ms, ms, ms, n, n, how, win,
            (how LIKE 'DIFFERENTIAL%')::int, (how LIKE 'FULL%')::int,
            (how = 'FULL (adaptive)')::int, (how = 'NO CHANGES')::int)
    ON CONFLICT ON CONSTRAINT pgs_refresh_stats_pkey DO UPDATE
       SET refresh_count = r.refresh_count + 1,
           total_ms = r.total_ms + ms,
           min_ms = least(r.min_ms, ms),
           max_ms = greatest(r.max_ms, ms),
           last_ms = ms,
           rows_affected = r.rows_affected + n,
           last_rows = n,
           last_strategy = EXCLUDED.last_strategy,
           last_window_rows = EXCLUDED.last_window_rows,
           differential_count = r.differential_count + EXCLUDED.differential_count,
           full_count = r.full_count + EXCLUDED.full_count,
           adaptive_full_count = r.adaptive_full_count + EXCLUDED.adaptive_full_count,
           no_change_count = r.no_change_count + EXCLUDED.no_change_count,
           -- Moving averages (weight 0.3 for the newest) of the cost model.
           full_ms_avg = CASE WHEN how LIKE 'FULL%'
                              THEN coalesce(0.7 * r.full_ms_avg + 0.3 * ms, ms)
                              ELSE r.full_ms_avg END,
           diff_ms_per_row = CASE WHEN how LIKE 'DIFFERENTIAL%' AND win >= 100
                                  THEN coalesce(0.7 * r.diff_ms_per_row + 0.3 * ms / win, ms / win)
                                  ELSE r.diff_ms_per_row END;
    IF n <> 0 THEN
        msg := jsonb_build_object('name', pgstream._display_name(schema_name, table_name),
                                 'schema', schema_name, 'table', table_name,
                                 'rows', n)::text;
        PERFORM pg_notify('pgstream_refreshed', msg);
        chan := pgstream._refreshed_channel(schema_name, table_name);
        IF chan IS NOT NULL THEN
            PERFORM pg_notify(chan, msg);
        END IF;
    END IF;
END $fn$;

-- Refresh one stream table by id. With wait = false, returns NULL at once when
-- another session is refreshing it (the scheduler's mode).
CREATE OR REPLACE FUNCTION pgstream.refresh_stream_table_by_id(st_id bigint, wait boolean DEFAULT true)
RETURNS bigint LANGUAGE plpgsql AS $fn$
BEGIN
    RETURN pgstream._refresh(st_id, wait, false);
END $fn$;

-- The refresh of one stream table (refresh_stream_table_by_id, and the IMMEDIATE
-- writers' _immediate_refresh with `immediate`), in its steps:
--  1. the transaction's isolation level (READ COMMITTED, but for IMMEDIATE);
--  2. the stream table's lock (_lock_stream_table), then its catalog row;
--  3. its sources locked, then the schema checked (_check_sources): drift is an
--     error (SQLSTATE PGS01; the caller puts the stream table in the ERROR
--     state), or with `immediate` the ERROR state and a warning (the write goes on),
--     and NULL is returned;
--  4. the settings recorded at creation pinned (_pin_settings);
--  5. the changes applied (_apply_refresh);
--  6. the buffers trimmed, the catalog, statistics and notifications
--     (_finish_refresh); the caller's settings back.
-- JIT is off while refreshing: the estimates of refresh statements (many CTEs,
-- recursive ones) cross jit_above_cost while they run in milliseconds, and compiling
-- them took seconds.
CREATE OR REPLACE FUNCTION pgstream._refresh(st_id bigint, wait boolean, immediate boolean)
RETURNS bigint LANGUAGE plpgsql SET jit = off AS $fn$
DECLARE
    st record;
    chk record;
    res record;
    t0 timestamptz;
    msg text;
    saved jsonb;
BEGIN
    -- An IMMEDIATE stream table is refreshed by its writers in their own transaction,
    -- whatever its isolation level: its writers hold its lock from their first write
    -- to their commit, so a snapshot older than the last refresh's commit fails with a
    -- serialization failure at the frontier update, never applies a window twice (see
    -- immediate.sql).
    IF NOT immediate AND current_setting('transaction_isolation') <> 'read committed'
       AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s
                        WHERE s.id = _refresh.st_id AND s.mode = 'IMMEDIATE') THEN
        RAISE EXCEPTION 'pgstream: cannot refresh a stream table in a % transaction',
                upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state',
                  DETAIL = 'A REPEATABLE READ or SERIALIZABLE transaction took its snapshot before the refresh lock, so the refresh could apply a window of changes to a state it cannot see.',
                  HINT = 'Call pgstream.refresh_stream_table outside an explicit transaction, or in a READ COMMITTED one.';
    END IF;

    -- Whether this transaction wrote anything before the refresh: when it has no xid
    -- yet, the buffers hold none of its rows, and the refresh statements skip looking
    -- for them (see frontier_advance in pgstream-core's render.rs). Set on every
    -- refresh, before any statement that reads it.
    PERFORM set_config('pgstream.no_own_rows',
                       CASE WHEN pg_current_xact_id_if_assigned() IS NULL THEN 'on' ELSE '' END,
                       true);
    IF NOT pgstream._lock_stream_table(st_id, wait) THEN
        RETURN NULL;
    END IF;

    -- Re-read the catalog row after the lock: it may have changed while we waited.
    -- Only the columns needed here: the refresh statements' text is large (TOASTed),
    -- and is read only on the paths that execute it. With it, in the same statement,
    -- the cap of the adaptive switch (full_refresh_ratio set): the window size at
    -- which a differential refresh costs as much as a full one, from the measured
    -- costs when both are known (at least 100 rows), else the ratio of the sources'
    -- rows (at least 1,000 rows; bounded: a large ratio times many rows must not
    -- overflow).
    SELECT s.id, s.schema_name, s.table_name, s.mode, s.needs_full, s.status,
           s.status_reason, s.refresh_function, s.settings,
           pgstream._display_name(s.schema_name, s.table_name) AS display_name,
           s.differential_refresh_sql IS NULL AS no_differential,
           CASE WHEN s.full_refresh_ratio IS NULL THEN NULL
                WHEN r.full_ms_avg > 0 AND r.diff_ms_per_row > 0
                THEN greatest(100, least(r.full_ms_avg / r.diff_ms_per_row, 9e18))::bigint
                ELSE (SELECT greatest(1000, least(ceil(s.full_refresh_ratio
                                                       * coalesce(sum(greatest(c.reltuples, 0)), 0)), 9e18))::bigint
                        FROM pgstream.pgs_frontiers f JOIN pg_class c ON c.oid = f.source_oid
                       WHERE f.st_id = s.id)
           END AS cap
      INTO st
      FROM pgstream.pgs_stream_tables s
      LEFT JOIN pgstream.pgs_refresh_stats r ON r.st_id = s.id
     WHERE s.id = _refresh.st_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stream table with id % does not exist (dropped concurrently?)', st_id
            USING ERRCODE = 'undefined_table';
    END IF;

    IF st.status = 'ERROR' THEN
        msg := st.status_reason;
    ELSE
        chk := pgstream._check_sources(st.id, st.mode);
        msg := chk.drift;
    END IF;
    IF msg IS NOT NULL THEN
        IF immediate THEN
            -- Schema drift that no event trigger caught at the DDL: the stream table
            -- goes to ERROR here, and the write goes on.
            UPDATE pgstream.pgs_stream_tables s SET status = 'ERROR', status_reason = msg
             WHERE s.id = st.id;
            RAISE WARNING 'pgstream: stream table % is no longer maintained: %', st.display_name, msg
                USING HINT = pgstream._drift_hint(msg);
            RETURN NULL;
        END IF;
        RAISE EXCEPTION 'stream table %: %', st.display_name, msg
            USING ERRCODE = 'PGS01', HINT = pgstream._drift_hint(msg);
    END IF;

    -- Compute with the settings recorded at creation (TimeZone, DateStyle, ...),
    -- whoever calls; the caller's values come back at the end (on an error, the
    -- rollback restores them).
    saved := pgstream._pin_settings(st.settings);
    t0 := clock_timestamp();
    res := pgstream._apply_refresh(st.id, st.display_name,
                                 st.mode = 'FULL' OR st.needs_full OR st.no_differential OR chk.changed,
                                 st.refresh_function, st.cap);

    PERFORM pgstream._finish_refresh(st.id, st.schema_name, st.table_name, res.how, res.n, res.win,
                                     res.trimmed, t0);
    PERFORM set_config('pgstream.no_own_rows', '', true);
    IF saved <> '{}' THEN
        PERFORM pgstream._pin_settings(saved);
    END IF;
    RETURN res.n;
END $fn$;

-- The settings that change what a query computes, as a jsonb object (name: value):
-- the session's current values, or with reset the values a new session gets
-- (pg_settings.reset_val). A stream table records them at creation; every refresh
-- runs with them (_pin_settings). Issue 11, item 7. The list: time zone and date
-- and interval formats (timestamptz arithmetic, date_trunc, casts to and from text,
-- ambiguous date input), float and bytea text output, the locale categories a
-- session can change (to_char, money), string literal and NULL-comparison parsing of
-- the stored statements, xml parsing, the default text search configuration, and
-- array input. lc_collate and lc_ctype are fixed per database; search_path is pinned
-- by every function.
CREATE OR REPLACE FUNCTION pgstream._result_settings(reset boolean DEFAULT false)
RETURNS jsonb LANGUAGE sql STABLE AS $fn$
    SELECT jsonb_object_agg(s.name, CASE WHEN reset THEN s.reset_val ELSE current_setting(s.name) END)
      FROM pg_settings s
     WHERE lower(s.name) IN ('timezone', 'datestyle', 'intervalstyle', 'extra_float_digits',
                             'bytea_output', 'lc_monetary', 'lc_numeric', 'lc_time',
                             'standard_conforming_strings', 'transform_null_equals',
                             'xmloption', 'default_text_search_config', 'array_nulls',
                             'timezone_abbreviations', 'quote_all_identifiers')
$fn$;

-- Set each setting of `settings` (name: value) for the rest of the transaction
-- where it differs; returns the previous values of those it changed, which a second
-- call restores.
CREATE OR REPLACE FUNCTION pgstream._pin_settings(settings jsonb) RETURNS jsonb LANGUAGE plpgsql AS $fn$
DECLARE
    k text;
    v text;
    cur text;
    saved jsonb := '{}';
BEGIN
    FOR k, v IN SELECT e.key, e.value FROM jsonb_each_text(coalesce(settings, '{}')) e LOOP
        cur := current_setting(k, true);
        IF cur IS DISTINCT FROM v THEN
            saved := saved || jsonb_build_object(k, cur);
            PERFORM set_config(k, v, true);
        END IF;
    END LOOP;
    RETURN saved;
END $fn$;

-- Attach the recorded settings to the generated refresh function of a stream table
-- (SET clauses), so that it computes with them when called on its own too.
CREATE OR REPLACE FUNCTION pgstream._pin_function_settings(st_id bigint) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    fn text;
    k text;
    v text;
BEGIN
    SELECT s.refresh_function INTO fn FROM pgstream.pgs_stream_tables s
     WHERE s.id = _pin_function_settings.st_id;
    IF fn IS NULL OR to_regprocedure(fn || '(bigint)') IS NULL THEN
        RETURN;
    END IF;
    FOR k, v IN SELECT e.key, e.value FROM pgstream.pgs_stream_tables s,
                       jsonb_each_text(coalesce(s.settings, '{}')) e
                 WHERE s.id = _pin_function_settings.st_id LOOP
        BEGIN
            EXECUTE format('ALTER FUNCTION %s(bigint) SET %I = %L', fn, k, v);
        EXCEPTION WHEN insufficient_privilege THEN
            -- An upgrade run by a role that does not own the function: the refresh
            -- entry point pins the settings anyway.
            RAISE WARNING 'pgstream: cannot pin % on %: %', k, fn, SQLERRM;
            RETURN;
        END;
    END LOOP;
END $fn$;

-- Refresh a stream table (`name` or `schema.name`); returns the number of rows
-- changed. With wait = false, returns NULL when another session is refreshing it.
CREATE OR REPLACE FUNCTION pgstream.refresh_stream_table(name text, wait boolean DEFAULT true)
RETURNS bigint LANGUAGE plpgsql AS $fn$
BEGIN
    RETURN pgstream._refresh(pgstream._resolve(name), wait, false);
END $fn$;

