-- pgstream SQL functions. Recreated (CREATE OR REPLACE) at every schema upgrade.
-- Every function pins search_path and quotes identifiers with format('%I').
-- Advisory locks use the two-key form: (1885828980, stream table id mod 2^31) serialises
-- refreshes and drops of one stream table (taken through _lock_stream_table, but by
-- the scheduler's _advance_unaffected, which tries it per row in one statement);
-- installation takes (1885827956 = 'pgst', 0) (LOCK_CLASS in install.rs). The first
-- keys differ, so the two never collide.

-- Display name of a stream table: `name` in public, `schema.name` elsewhere.
CREATE OR REPLACE FUNCTION pgstream._display_name(schema_name text, table_name text)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE WHEN schema_name = 'public' THEN table_name
                ELSE schema_name || '.' || table_name END
$fn$;

-- Resolve `name` or `schema.name` (taken literally; a bare name is in public).
CREATE OR REPLACE FUNCTION pgstream._resolve(name text)
RETURNS bigint LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    s text;
    t text;
    st_id bigint;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'pgstream: stream table name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF strpos(name, '.') > 0 THEN
        s := split_part(name, '.', 1);
        t := substr(name, strpos(name, '.') + 1);
    ELSE
        s := 'public';
        t := name;
    END IF;
    SELECT st.id INTO st_id FROM pgstream.pgs_stream_tables st
     WHERE st.schema_name = s AND st.table_name = t;
    IF st_id IS NULL THEN
        RAISE EXCEPTION 'stream table % does not exist', name
            USING ERRCODE = 'undefined_table',
                  HINT = 'SELECT name FROM pgstream.pgs_status() lists the stream tables';
    END IF;
    RETURN st_id;
END
$fn$;

-- Delete the buffer rows of one source that every consumer's frontier already
-- covers. Rows of a consumer's last refresh transaction (own_xid) after the change id
-- it consumed are kept whatever the snapshot says (a snapshot may count its own
-- transaction as seen). A consumer whose frontier is NULL (never refreshed) keeps every row: it
-- has not yet stated what it has seen, so nothing may be discarded on its behalf.
CREATE OR REPLACE FUNCTION pgstream._trim_buffer(src oid)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n bigint;
BEGIN
    -- Wait for a creation that is adding a consumer of this source (it holds the
    -- row FOR UPDATE until it commits); the DELETE below then takes a new snapshot
    -- that sees the new consumer's frontier.
    PERFORM 1 FROM pgstream.pgs_sources s WHERE s.source_oid = src FOR SHARE;
    IF NOT FOUND OR to_regclass(format('%I.%I', 'pgstream_changes', 'changes_' || src)) IS NULL THEN
        RETURN 0;
    END IF;
    -- First the rows below the xmin of every frontier (one aggregate; see trim_sql
    -- in pgstream-core's render/frontier.rs), then the exact test for the others,
    -- against the distinct frontiers only (consumers advanced together share one).
    EXECUTE format(
        'WITH d AS MATERIALIZED (SELECT DISTINCT ON (f.frontier::text, f.own_xid, f.own_change)'
        '  f.frontier, f.own_xid, f.own_change FROM pgstream.pgs_frontiers f WHERE f.source_oid = $1)'
        ' DELETE FROM %I.%I b WHERE b.__pgs_xid < (SELECT min(pg_catalog.pg_snapshot_xmin(f.frontier))'
        '  FROM pgstream.pgs_frontiers f WHERE f.source_oid = $1 HAVING bool_and(f.frontier IS NOT NULL))'
        ' OR NOT EXISTS ('
        '  SELECT 1 FROM d'
        '   WHERE d.frontier IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(b.__pgs_xid, d.frontier)'
        '      OR (b.__pgs_xid = d.own_xid AND b.__pgs_change_id > COALESCE(d.own_change, -1)))',
        'pgstream_changes', 'changes_' || src)
        USING src;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

-- The advisory lock of a stream table, the only place its key is written: the
-- two-key form (1885828980, id mod 2^31) (see the head of this file). Held to the end
-- of the transaction; serialises refreshes, drops, subscriptions and the IMMEDIATE
-- writers of one stream table. With wait = false, returns false at once when another
-- session holds it.
CREATE OR REPLACE FUNCTION pgstream._lock_stream_table(st_id bigint, wait boolean DEFAULT true)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF wait THEN
        PERFORM pg_advisory_xact_lock(1885828980, (st_id % 2147483648)::integer);
        RETURN true;
    END IF;
    RETURN pg_try_advisory_xact_lock(1885828980, (st_id % 2147483648)::integer);
END
$fn$;

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
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
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
END
$fn$;

-- The full (full = true) or the differential refresh statement of a stream table.
CREATE OR REPLACE FUNCTION pgstream._stored_refresh_sql(st_id bigint, "full" boolean)
RETURNS text LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
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
END
$fn$;

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
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
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
END
$fn$;

-- Refresh one stream table by id. With wait = false, returns NULL at once when
-- another session is refreshing it (the scheduler's mode).
CREATE OR REPLACE FUNCTION pgstream.refresh_stream_table_by_id(st_id bigint, wait boolean DEFAULT true)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN pgstream._refresh(st_id, wait, false);
END
$fn$;

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
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $fn$
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
END
$fn$;

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
RETURNS jsonb LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
CREATE OR REPLACE FUNCTION pgstream._pin_settings(settings jsonb)
RETURNS jsonb LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
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
END
$fn$;

-- Attach the recorded settings to the generated refresh function of a stream table
-- (SET clauses), so that it computes with them when called on its own too.
CREATE OR REPLACE FUNCTION pgstream._pin_function_settings(st_id bigint)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
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
END
$fn$;

-- Refresh a stream table (`name` or `schema.name`); returns the number of rows
-- changed. With wait = false, returns NULL when another session is refreshing it.
CREATE OR REPLACE FUNCTION pgstream.refresh_stream_table(name text, wait boolean DEFAULT true)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN pgstream._refresh(pgstream._resolve(name), wait, false);
END
$fn$;

-- The four capture triggers of a relation: `rel` is a source, or a member of a
-- partitioned source `src`'s tree, whose statements fire only its own statement
-- triggers; each writes into the buffer of `src`. Same DDL as create.rs's
-- trigger_ddl, for the members that the runtime cannot know in advance.
CREATE OR REPLACE FUNCTION pgstream._create_capture_triggers(rel oid, src oid)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fn text := format('%I.%I()', 'pgstream_changes', 'capture_' || src);
BEGIN
    EXECUTE format('CREATE TRIGGER __pgs_capture_ins AFTER INSERT ON %s REFERENCING NEW TABLE AS __pgs_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION %s', rel::regclass, fn);
    EXECUTE format('CREATE TRIGGER __pgs_capture_upd AFTER UPDATE ON %s REFERENCING OLD TABLE AS __pgs_old '
                   'NEW TABLE AS __pgs_new FOR EACH STATEMENT EXECUTE FUNCTION %s', rel::regclass, fn);
    EXECUTE format('CREATE TRIGGER __pgs_capture_del AFTER DELETE ON %s REFERENCING OLD TABLE AS __pgs_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION %s', rel::regclass, fn);
    EXECUTE format('CREATE TRIGGER __pgs_capture_trunc AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION pgstream._on_truncate(%L)', rel::regclass, src);
END
$fn$;

CREATE OR REPLACE FUNCTION pgstream._drop_capture_triggers(rel oid)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    trig text;
BEGIN
    FOREACH trig IN ARRAY ARRAY['__pgs_capture_ins', '__pgs_capture_upd',
                                '__pgs_capture_del', '__pgs_capture_trunc'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trig, rel::regclass);
    END LOOP;
END
$fn$;

-- Partitioned source: statement triggers fire only on the relation a statement
-- names (DML routed through the parent fires the parent's, whose transition tables
-- hold the rows of every partition; DML addressed to a partition fires only the
-- partition's). So every member of the tree, at every level, carries the capture
-- triggers, writing into the source's buffer: a statement is captured once, by the
-- relation it names. Members created, attached, detached or dropped since the last
-- sync (pgs_sources.members) changed the source's rows without capture: their
-- triggers are created or dropped, and every reader of the source gets a full
-- refresh (exact: it recomputes). Called at creation, by the DDL event trigger, and
-- at every refresh of a reader (without the event trigger, the refresh finds the
-- change). Returns whether anything changed.
CREATE OR REPLACE FUNCTION pgstream._sync_partitions(src oid)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    live oid[];
    recorded oid[];
    rel oid;
    fn regprocedure;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = src AND c.relkind = 'p') THEN
        RETURN false;
    END IF;
    live := ARRAY(SELECT p.relid::oid FROM pg_partition_tree(src) p WHERE p.relid <> src::regclass
                   ORDER BY p.relid::oid);
    SELECT s.members INTO recorded FROM pgstream.pgs_sources s WHERE s.source_oid = src;
    IF NOT FOUND OR recorded = live THEN
        RETURN false;
    END IF;
    -- Again under the row's lock: a concurrent sync may have done it.
    SELECT s.members INTO recorded FROM pgstream.pgs_sources s WHERE s.source_oid = src FOR UPDATE;
    IF recorded = live THEN
        RETURN false;
    END IF;
    fn := to_regprocedure(format('%I.%I()', 'pgstream_changes', 'capture_' || src));
    -- Detached members (dropped ones took their triggers with them).
    FOR rel IN SELECT DISTINCT t.tgrelid FROM pg_trigger t
                WHERE t.tgfoid = fn AND t.tgrelid <> src AND NOT t.tgrelid = ANY (live) LOOP
        PERFORM pgstream._drop_capture_triggers(rel);
    END LOOP;
    FOREACH rel IN ARRAY live LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = rel AND t.tgfoid = fn) THEN
            PERFORM pgstream._create_capture_triggers(rel, src);
        END IF;
    END LOOP;
    UPDATE pgstream.pgs_sources s SET members = live WHERE s.source_oid = src;
    UPDATE pgstream.pgs_stream_tables s SET needs_full = true
     WHERE NOT s.needs_full
       AND EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f WHERE f.st_id = s.id AND f.source_oid = src);
    RETURN true;
END
$fn$;

-- Before a differential refresh: the partitioned sources' trees synced (see
-- _sync_partitions; `changed` when one changed: the refresh is then a full one),
-- and `drift` when a source has inheritance children or became a partition or an
-- inheritance child: rows written through another relation of its hierarchy are
-- not captured (such a source is refused at creation).
CREATE OR REPLACE FUNCTION pgstream._sync_sources(st_id bigint, OUT drift text, OUT changed boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r record;
BEGIN
    changed := false;
    FOR r IN SELECT f.source_oid, c.relkind,
                    (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = f.source_oid LIMIT 1) AS child,
                    (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = f.source_oid LIMIT 1) AS parent
               FROM pgstream.pgs_frontiers f JOIN pg_class c ON c.oid = f.source_oid
              WHERE f.st_id = _sync_sources.st_id LOOP
        IF r.parent IS NOT NULL THEN
            drift := format('source table %s is now a partition or inheritance child of %s: '
                            'writes through %s are not captured for it',
                            r.source_oid::regclass, r.parent::regclass, r.parent::regclass);
            RETURN;
        ELSIF r.relkind = 'p' THEN
            changed := pgstream._sync_partitions(r.source_oid) OR changed;
        ELSIF r.child IS NOT NULL THEN
            drift := format('source table %s has inheritance children (%s): their rows are part of '
                            'the source but are not captured', r.source_oid::regclass, r.child::regclass);
            RETURN;
        END IF;
    END LOOP;
END
$fn$;

-- Remove the change capture of a source: triggers, trigger function, buffer.
CREATE OR REPLACE FUNCTION pgstream._drop_capture(src oid)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    rel oid;
BEGIN
    -- The source and the members of its partition tree that capture into its buffer.
    FOR rel IN SELECT src UNION
               SELECT t.tgrelid FROM pg_trigger t
                WHERE t.tgfoid = to_regprocedure(format('%I.%I()', 'pgstream_changes', 'capture_' || src))
    LOOP
        IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = rel) THEN
            PERFORM pgstream._drop_capture_triggers(rel);
        END IF;
    END LOOP;
    EXECUTE format('DROP FUNCTION IF EXISTS %I.%I()', 'pgstream_changes', 'capture_' || src);
    EXECUTE format('DROP TABLE IF EXISTS %I.%I', 'pgstream_changes', 'changes_' || src);
    DELETE FROM pgstream.pgs_sources s WHERE s.source_oid = src;
END
$fn$;

-- Drop a stream table: its storage table, catalog, frontier and stats rows, and the
-- capture of every source that no other stream table reads. Stream tables that read
-- this one are dropped first with cascade = true; without it their names are in the
-- error.
CREATE OR REPLACE FUNCTION pgstream.drop_stream_table(name text, cascade boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    sid bigint;
    st pgstream.pgs_stream_tables;
    storage oid;
    dependant text;
    dep text;
    srcs oid[];
    src oid;
BEGIN
    sid := pgstream._resolve(name);
    -- Wait for a refresh in progress.
    PERFORM pgstream._lock_stream_table(sid);
    SELECT * INTO st FROM pgstream.pgs_stream_tables s WHERE s.id = sid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stream table % does not exist', name USING ERRCODE = 'undefined_table';
    END IF;

    storage := to_regclass(format('%I.%I', st.schema_name, st.table_name));
    IF storage IS NOT NULL THEN
        IF cascade THEN
            FOR dep IN SELECT DISTINCT pgstream._display_name(d.schema_name, d.table_name)
                         FROM pgstream.pgs_stream_tables d
                         JOIN pgstream.pgs_frontiers f ON f.st_id = d.id
                        WHERE f.source_oid = storage AND d.id <> st.id LOOP
                -- A dependant may have been dropped by an earlier one's cascade.
                IF EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables d
                            WHERE pgstream._display_name(d.schema_name, d.table_name) = dep) THEN
                    PERFORM pgstream.drop_stream_table(dep, true);
                END IF;
            END LOOP;
        END IF;
        SELECT string_agg(DISTINCT pgstream._display_name(d.schema_name, d.table_name), ', ')
          INTO dependant
          FROM pgstream.pgs_stream_tables d
          JOIN pgstream.pgs_frontiers f ON f.st_id = d.id
         WHERE f.source_oid = storage AND d.id <> st.id;
        IF dependant IS NOT NULL THEN
            RAISE EXCEPTION 'cannot drop stream table %: stream table(s) % read it', name, dependant
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Drop the dependent stream tables first, or pass cascade => true '
                             '(pgstream drop --cascade) to drop them too.';
        END IF;
    END IF;

    IF st.refresh_function IS NOT NULL THEN
        EXECUTE format('DROP FUNCTION IF EXISTS %s(bigint)', st.refresh_function);
    END IF;
    SELECT array_agg(f.source_oid) INTO srcs FROM pgstream.pgs_frontiers f WHERE f.st_id = st.id;
    DELETE FROM pgstream.pgs_refresh_stats r WHERE r.st_id = st.id;
    DELETE FROM pgstream.pgs_frontiers f WHERE f.st_id = st.id;
    DELETE FROM pgstream.pgs_stream_tables s WHERE s.id = st.id;
    -- A dropped stream table's earlier definitions (see pgs_superseded) are forgotten:
    -- one created again under this name starts with no history. Not when the drop is
    -- the first half of a replacement (replace.rs), which keeps them.
    IF coalesce(current_setting('pgstream.replacing', true), '') <> 'on' THEN
        DELETE FROM pgstream.pgs_superseded x
         WHERE x.schema_name = st.schema_name AND x.table_name = st.table_name;
    END IF;
    IF storage IS NOT NULL THEN
        -- Capture on the storage table itself (nobody reads it any more, see above).
        IF EXISTS (SELECT 1 FROM pgstream.pgs_sources s WHERE s.source_oid = storage) THEN
            PERFORM pgstream._drop_capture(storage);
        END IF;
        EXECUTE format('DROP TABLE %I.%I', st.schema_name, st.table_name);
    END IF;
    -- The stage table of a top-k over an aggregate (every group; the storage table
    -- holds the first rows), written only by this stream table's refreshes.
    IF pg_catalog.to_regclass(format('pgstream.%I', '_stage_' || st.id)) IS NOT NULL THEN
        EXECUTE format('DROP TABLE pgstream.%I', '_stage_' || st.id);
    END IF;

    FOREACH src IN ARRAY coalesce(srcs, '{}') LOOP
        PERFORM 1 FROM pgstream.pgs_sources s WHERE s.source_oid = src FOR UPDATE;
        IF NOT EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f WHERE f.source_oid = src) THEN
            PERFORM pgstream._drop_capture(src);
        ELSE
            PERFORM pgstream._trim_buffer(src);
        END IF;
    END LOOP;
END
$fn$;

-- Resume a SUSPENDED (or ERROR) stream table: the scheduler refreshes it again from
-- its next tick. An ERROR caused by schema drift that is still there stays.
CREATE OR REPLACE FUNCTION pgstream.resume_stream_table(name text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    sid bigint;
    msg text;
BEGIN
    sid := pgstream._resolve(name);
    msg := pgstream._drift(sid);
    -- A refresh may have failed on something _drift does not look at (a function or
    -- type the query uses was dropped): planning the stored statements finds that
    -- without running them.
    IF msg IS NULL THEN
        msg := pgstream._plan_check(sid);
    END IF;
    IF msg IS NOT NULL THEN
        UPDATE pgstream.pgs_stream_tables s SET status = 'ERROR', status_reason = msg
         WHERE s.id = sid;
        RAISE EXCEPTION 'cannot resume stream table %: %', name, msg
            USING ERRCODE = 'PGS01', HINT = pgstream._drift_hint(msg);
    END IF;
    -- Out of ERROR (drift), a full refresh: changes captured while the source had
    -- another shape hold NULL for the columns it lacked.
    UPDATE pgstream.pgs_stream_tables s
       SET status = 'ACTIVE', status_reason = NULL, consecutive_failures = 0, next_retry_at = NULL,
           needs_full = s.needs_full OR s.status = 'ERROR'
     WHERE s.id = sid;
END
$fn$;

-- Whether the stored refresh statements of a stream table still plan (EXPLAIN, which
-- runs nothing): NULL when they do, else the error. Used by resume_stream_table
-- (issue 11, item 4: a refresh that failed on the schema must be checked again).
CREATE OR REPLACE FUNCTION pgstream._plan_check(st_id bigint)
RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    stmt text;
    err text;
BEGIN
    FOR stmt IN
        SELECT q FROM pgstream.pgs_stream_tables s,
               LATERAL (VALUES (s.full_refresh_sql), (s.differential_refresh_sql)) v(q)
         WHERE s.id = _plan_check.st_id AND q IS NOT NULL
    LOOP
        BEGIN
            EXECUTE 'EXPLAIN (COSTS OFF) ' || stmt;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
            RETURN format('its stored refresh statement no longer plans: %s', err);
        END;
    END LOOP;
    RETURN NULL;
END
$fn$;

-- Sources followed by oid: NULL when every source of the stream table (pgs_frontiers)
-- is still an ordinary or partitioned table under the name its statements read it by
-- (recorded at creation); else a message naming the source: renamed, moved to another
-- schema, dropped, or replaced by another relation of that name. Frontiers without a
-- recorded name (written by an older release) are checked for existence only.
-- PL/pgSQL, not SQL: its plan is kept by the session (it runs at every refresh).
CREATE OR REPLACE FUNCTION pgstream._drift_sources(st_id bigint)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN (
    SELECT CASE
             WHEN c.oid IS NULL AND t.named IS NOT NULL THEN
                 format('source table %s.%s was dropped, and %s.%s now names another relation',
                        f.source_schema, f.source_name, f.source_schema, f.source_name)
             WHEN c.oid IS NULL THEN
                 format('source table %s was dropped',
                        coalesce(f.source_schema || '.' || f.source_name, f.source_oid::text))
             WHEN c.relkind NOT IN ('r', 'p') THEN
                 format('source table %s.%s is no longer a table (relkind %s)',
                        c.nspname, c.relname, c.relkind)
             WHEN t.named IS NOT NULL THEN
                 format('source table %s.%s was renamed to %s.%s, and %s.%s now names another relation',
                        f.source_schema, f.source_name, c.nspname, c.relname,
                        f.source_schema, f.source_name)
             ELSE format('source table %s.%s was renamed to %s.%s',
                         f.source_schema, f.source_name, c.nspname, c.relname)
           END
      FROM pgstream.pgs_frontiers f
      -- OFFSET 0: one index lookup per source (see _drift).
      LEFT JOIN LATERAL (SELECT x.oid, x.relkind::text AS relkind, x.relname::text AS relname,
                                (SELECT n.nspname::text FROM pg_namespace n
                                  WHERE n.oid = x.relnamespace) AS nspname
                           FROM pg_class x WHERE x.oid = f.source_oid OFFSET 0) c ON true
      -- The relation the recorded name denotes now, if any (for the message).
      CROSS JOIN LATERAL (SELECT CASE WHEN f.source_name IS NOT NULL
                                      THEN to_regclass(format('%I.%I', f.source_schema, f.source_name))
                                 END AS named) t
     WHERE f.st_id = _drift_sources.st_id
       AND (c.oid IS NULL OR c.relkind NOT IN ('r', 'p')
            OR c.nspname IS DISTINCT FROM coalesce(f.source_schema, c.nspname)
            OR c.relname IS DISTINCT FROM coalesce(f.source_name, c.relname))
     ORDER BY f.source_oid
     LIMIT 1);
END
$fn$;

-- Schema drift of one stream table: NULL when every source column its query uses
-- (pgs_stream_tables.source_columns, recorded at creation) still exists with the same
-- name and type, and every view it reads (pgs_views, recorded at creation) still
-- exists with the same name and definition; else a message naming the table and the
-- column, or the view. quote_all_identifiers is pinned: pg_get_viewdef's text (the
-- recorded definition) depends on it.
CREATE OR REPLACE FUNCTION pgstream._drift(st_id bigint)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off
AS $fn$
DECLARE
    msg text;
BEGIN
    -- Sources by oid first: a source replaced by name makes its columns look changed.
    msg := pgstream._drift_sources(st_id);
    IF msg IS NOT NULL THEN
        RETURN msg;
    END IF;
    -- A source made a Citus table since (only where Citus is installed).
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        msg := (SELECT pgstream._citus_refusal(f.source_oid)
                  FROM pgstream.pgs_frontiers f
                 WHERE f.st_id = _drift.st_id AND pgstream._citus_refusal(f.source_oid) IS NOT NULL
                 ORDER BY f.source_oid LIMIT 1);
        IF msg IS NOT NULL THEN
            RETURN msg;
        END IF;
    END IF;
    -- One statement per check (their plans are kept by the session): they run at
    -- every refresh. A stream table that reads no view costs one index probe more.
    msg := (
        SELECT CASE
                 WHEN r.oid IS NULL THEN format('source table %s was dropped', c.tbl)
                 WHEN a.attnum IS NULL OR a.attisdropped THEN
                     CASE WHEN EXISTS (SELECT 1 FROM pg_attribute x
                                        WHERE x.attrelid = c.oid AND x.attname = c.col
                                          AND NOT x.attisdropped AND x.attnum > 0)
                          -- Dropped and added again: another column now.
                          THEN format('source column %s.%s was dropped and added again', c.tbl, c.col)
                          ELSE format('source column %s.%s was dropped', c.tbl, c.col) END
                 WHEN a.attname::text <> c.col THEN
                     format('source column %s.%s was renamed to %s', c.tbl, c.col, a.attname)
                 ELSE format('source column %s.%s changed type from %s to %s', c.tbl, c.col, c.typ,
                             format_type(a.atttypid, a.atttypmod))
               END
          FROM pgstream.pgs_stream_tables s
         CROSS JOIN LATERAL jsonb_array_elements(s.source_columns) WITH ORDINALITY AS e(v, ord)
         CROSS JOIN LATERAL (SELECT (e.v->>'oid')::oid AS oid, e.v->>'table' AS tbl,
                                    (e.v->>'attnum')::int2 AS attnum, e.v->>'column' AS col,
                                    e.v->>'type' AS typ) AS c
          -- LATERAL ... OFFSET 0 (not pulled up): one index lookup per column, not a
          -- hash join over a scan of pg_attribute (0.5 ms per refresh).
          LEFT JOIN LATERAL (SELECT x.oid FROM pg_class x WHERE x.oid = c.oid OFFSET 0) r ON true
          LEFT JOIN LATERAL (SELECT x.attnum, x.attname, x.attisdropped, x.atttypid, x.atttypmod
                               FROM pg_attribute x
                              WHERE x.attrelid = c.oid AND x.attnum = c.attnum OFFSET 0) a ON true
         WHERE s.id = _drift.st_id
           AND (r.oid IS NULL OR a.attnum IS NULL OR a.attisdropped OR a.attname::text <> c.col
                OR format_type(a.atttypid, a.atttypmod) <> c.typ)
         ORDER BY e.ord
         LIMIT 1);
    IF msg IS NOT NULL THEN
        RETURN msg;
    END IF;
    -- Views: expanded into their bodies at creation, so the stream table maintains
    -- the definitions recorded then. A view redefined (CREATE OR REPLACE VIEW, ALTER
    -- VIEW ... RENAME COLUMN), renamed or moved (its query names it by the old name),
    -- or dropped is drift.
    RETURN (
        SELECT CASE
                 WHEN c.oid IS NULL OR c.relkind <> 'v' THEN
                     format('view %s.%s was dropped after stream table %s was created',
                            v.schema_name, v.view_name, pgstream._display_name(s.schema_name, s.table_name))
                 WHEN c.nspname <> v.schema_name OR c.relname <> v.view_name THEN
                     format('view %s.%s was renamed to %s.%s after stream table %s was created, '
                            'whose query names it by its old name',
                            v.schema_name, v.view_name, c.nspname, c.relname,
                            pgstream._display_name(s.schema_name, s.table_name))
                 ELSE format('view %s.%s was redefined after stream table %s was created, '
                             'which maintains the definition the view had then',
                             v.schema_name, v.view_name, pgstream._display_name(s.schema_name, s.table_name))
               END
          FROM pgstream.pgs_views v
          JOIN pgstream.pgs_stream_tables s ON s.id = v.st_id
          LEFT JOIN LATERAL (SELECT x.oid, x.relkind, x.relname::text AS relname,
                                    (SELECT n.nspname::text FROM pg_namespace n
                                      WHERE n.oid = x.relnamespace) AS nspname,
                                    (SELECT r.xmin FROM pg_rewrite r
                                      WHERE r.ev_class = x.oid AND r.rulename = '_RETURN') AS rule_xmin,
                                    ARRAY(SELECT a.attname::text FROM pg_attribute a
                                           WHERE a.attrelid = x.oid AND a.attnum > 0
                                             AND NOT a.attisdropped ORDER BY a.attnum) AS columns
                               FROM pg_class x WHERE x.oid = v.view_oid OFFSET 0) c ON true
         WHERE v.st_id = _drift.st_id
           AND (c.oid IS NULL OR c.relkind <> 'v' OR c.nspname <> v.schema_name
                OR c.relname <> v.view_name OR c.columns <> v.columns
                -- The rule was replaced (the definition is compared only then).
                OR (NOT coalesce(c.rule_xmin = v.rule_xmin, false)
                    AND pg_get_viewdef(v.view_oid) IS DISTINCT FROM v.definition))
         -- A view renamed or dropped first: the views that read it print its new
         -- name, so they look redefined too.
         ORDER BY (c.oid IS NULL OR c.relkind <> 'v' OR c.nspname <> v.schema_name
                   OR c.relname <> v.view_name) DESC, v.ord
         LIMIT 1);
END
$fn$;

-- Citus (distributed PostgreSQL): NULL unless `rel` is a Citus table (a row of
-- pg_dist_partition: distributed, single-shard, reference or Citus local), else the
-- reason pgstream cannot maintain a stream table over it: its rows live in shards,
-- whose writes fire the shards' triggers, not the table's, so nothing would be
-- captured (docs/SCALING.md, step 0). NULL at once where Citus is not installed (the
-- catalog table is read through EXECUTE: it does not exist there).
CREATE OR REPLACE FUNCTION pgstream._citus_refusal(rel oid)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    kind text;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE $q$SELECT CASE
                        WHEN p.partmethod IN ('h', 'a', 'r') THEN 'distributed'
                        WHEN p.repmodel = 't' THEN 'reference'
                        WHEN p.colocationid <> 0 THEN 'single-shard distributed'
                        ELSE 'Citus local'
                      END
                 FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = $1$q$
       INTO kind USING rel;
    IF kind IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN format('source table %s is a Citus %s table: its rows are written to its shards, '
                  'whose writes pgstream cannot capture, so no stream table can be maintained '
                  'over it (see docs/SCALING.md). Read a local table',
                  rel::regclass, kind);
END
$fn$;

-- A capture trigger fired on a relation that is neither its source nor a member of
-- the source's partition tree. Normally a detached partition whose triggers the next
-- sync drops (nothing to do). But Citus copies a table's triggers to its shards when
-- the table is distributed: the writes then fire here, on the shards, and would be
-- lost silently; the stream tables that read the source go to the ERROR state, in
-- the writer's transaction, which never fails because of this.
CREATE OR REPLACE FUNCTION pgstream._capture_stray(src oid)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    msg text;
BEGIN
    msg := pgstream._citus_refusal(src);
    IF msg IS NULL THEN
        RETURN;
    END IF;
    UPDATE pgstream.pgs_stream_tables s SET status = 'ERROR', status_reason = msg
     WHERE s.status IS DISTINCT FROM 'ERROR'
       AND EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f
                    WHERE f.st_id = s.id AND f.source_oid = src);
EXCEPTION WHEN OTHERS THEN
    -- Capture never fails a write; the next refresh's drift check says the same.
    RETURN;
END
$fn$;

-- The hint of a drift error (_drift's message): how to recover.
CREATE OR REPLACE FUNCTION pgstream._drift_hint(msg text)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE
             WHEN msg LIKE '% is a Citus % table: %' THEN
                 'Drop the stream table (pgstream.drop_stream_table), or make the source a local '
                 'table again (undistribute_table) and call pgstream.resume_stream_table: its next '
                 'refresh is a full one.'
             WHEN msg LIKE 'view %' THEN
                 'To maintain the view''s new definition, drop the stream table '
                 '(pgstream.drop_stream_table) and create it again (a #[stream_table] is '
                 'created again when the program starts); to keep the old one, restore the '
                 'view (CREATE OR REPLACE VIEW with its former body, or rename it back) and '
                 'call pgstream.resume_stream_table.'
             ELSE 'Drop the stream table and create it again for the new schema '
                  '(or undo the change and call pgstream.resume_stream_table).'
           END
$fn$;

-- (Re)create the capture trigger function of a source from the live catalog: it
-- copies the columns that the source and its buffer both have with the same type.
-- Called at creation, at installation and by the DDL event trigger, so writes to a
-- source keep working after one of its columns is dropped, renamed or retyped (the
-- buffer keeps the old column, filled with NULL; the stream tables that use it are
-- in the ERROR state).
-- Without the event trigger (installed by a role that is not a superuser) nothing
-- rebuilds the function after an ALTER TABLE, and a write must never fail because
-- of pgstream: the function then first checks, per statement, that the writing
-- table still has every column it copies with the same name and type, and when not,
-- copies what still matches with a statement it builds from the live catalog (the
-- stream tables that read a changed column find the drift at their next refresh).
-- The check is one query of pg_attribute per statement (about 13 us, measured in a
-- loop); with the event trigger there is no check.
CREATE OR REPLACE FUNCTION pgstream._build_capture(src oid)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    buf text := format('%I.%I', 'pgstream_changes', 'changes_' || src);
    seq text;
    cols text;
    shape text;
    names text;
    n integer;
    guard text := '';
    notify text := '';
    body text;
BEGIN
    IF to_regclass(buf) IS NULL OR NOT EXISTS (SELECT 1 FROM pg_class r WHERE r.oid = src) THEN
        RETURN;
    END IF;
    -- Refresh on commit: when a stream table with the schedule `on commit` reads this
    -- source, every capturing statement notifies the channel pgstream_changes with
    -- the source's oid. PostgreSQL delivers notifications at commit only (never for a
    -- rolled-back transaction) and folds identical (channel, payload) pairs of one
    -- transaction into one, so the runtime hears once per transaction and source.
    -- Without such a reader, no notify (a NOTIFY serialises the commits of notifying
    -- transactions on a cluster-wide lock). The triggers __pgs_on_commit_* rebuild
    -- this function when such a reader is created, dropped or rescheduled. A reader
    -- through stream tables with the schedule `inherit` counts (_read_on_commit).
    IF pgstream._read_on_commit(src) THEN
        notify := format($n$
    PERFORM pg_catalog.pg_notify('pgstream_changes', %L);$n$, src::text);
    END IF;
    seq := pg_get_serial_sequence(buf, '__pgs_change_id');
    SELECT coalesce(string_agg(', ' || quote_ident(a.attname), '' ORDER BY a.attnum), ''),
           string_agg(format('(%L, %s, %s)', a.attname, a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum),
           string_agg(format('%L', a.attname), ', ' ORDER BY a.attnum),
           count(*)
      INTO cols, shape, names, n
      FROM pg_attribute a
      JOIN pg_attribute b
        ON b.attrelid = to_regclass(buf) AND b.attname = a.attname AND NOT b.attisdropped
       AND b.atttypid = a.atttypid AND b.atttypmod = a.atttypmod
     WHERE a.attrelid = src AND a.attnum > 0 AND NOT a.attisdropped;
    IF n > 0 AND NOT EXISTS (SELECT 1 FROM pg_event_trigger e
                              WHERE e.evtname = 'pgstream_ddl' AND e.evtenabled <> 'D') THEN
        guard := format($g$
    IF (SELECT count(*) FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = TG_RELID AND a.attname IN (%4$s) AND NOT a.attisdropped
           AND (a.attname, a.atttypid, a.atttypmod) IN (%2$s)) <> %3$s THEN
        -- The table changed shape and no event trigger rebuilt this function.
        SELECT coalesce(string_agg(', ' || pg_catalog.quote_ident(a.attname), '' ORDER BY a.attnum), '')
          INTO __pgs_cols
          FROM pg_catalog.pg_attribute a
          JOIN pg_catalog.pg_attribute b
            ON b.attrelid = %1$L::regclass AND b.attname = a.attname AND NOT b.attisdropped
           AND b.atttypid = a.atttypid AND b.atttypmod = a.atttypmod
         WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped;
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            EXECUTE pg_catalog.format('INSERT INTO %%s (__pgs_change_id, __pgs_xid, __pgs_w%%s) OVERRIDING SYSTEM VALUE SELECT $1, $2, -1%%s FROM __pgs_old',
                                      %1$L, __pgs_cols, __pgs_cols) USING __pgs_cid, __pgs_cxid;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            EXECUTE pg_catalog.format('INSERT INTO %%s (__pgs_change_id, __pgs_xid, __pgs_w%%s) OVERRIDING SYSTEM VALUE SELECT $1, $2, 1%%s FROM __pgs_new',
                                      %1$L, __pgs_cols, __pgs_cols) USING __pgs_cid, __pgs_cxid;
        END IF;
        RETURN NULL;
    END IF;$g$, buf, shape, n, names);
    END IF;
    -- One change id and one xid per statement, not per row (the window does not
    -- depend on the order of change ids, see window_sql in render.rs). Drawing the
    -- id per row from the identity cost about a tenth of a bulk write
    -- (docs/BENCHMARKS.md).
    body := format($b$
DECLARE
    __pgs_cid bigint := pg_catalog.nextval(%3$L::regclass);
    __pgs_cxid xid8 := pg_catalog.pg_current_xact_id();
    __pgs_cols text;
BEGIN
    -- Statement-level capture from the transition tables. An UPDATE is the old
    -- images (weight -1) and the new ones (+1), under one change id.
    -- Generated by pgstream._build_capture.
    IF TG_RELID <> %5$s THEN
        -- A member of a partitioned source's tree (_sync_partitions); one detached
        -- since (its triggers are dropped at the next sync) is no longer the source.
        IF pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM %5$s::oid::regclass THEN
            PERFORM pgstream._capture_stray(%5$s::oid);
            RETURN NULL;
        END IF;
    END IF;%6$s%4$s
    IF TG_OP = 'INSERT' THEN
        INSERT INTO %1$s (__pgs_change_id, __pgs_xid, __pgs_w%2$s) OVERRIDING SYSTEM VALUE
        SELECT __pgs_cid, __pgs_cxid, 1%2$s FROM __pgs_new;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO %1$s (__pgs_change_id, __pgs_xid, __pgs_w%2$s) OVERRIDING SYSTEM VALUE
        SELECT __pgs_cid, __pgs_cxid, -1%2$s FROM __pgs_old;
        INSERT INTO %1$s (__pgs_change_id, __pgs_xid, __pgs_w%2$s) OVERRIDING SYSTEM VALUE
        SELECT __pgs_cid, __pgs_cxid, 1%2$s FROM __pgs_new;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO %1$s (__pgs_change_id, __pgs_xid, __pgs_w%2$s) OVERRIDING SYSTEM VALUE
        SELECT __pgs_cid, __pgs_cxid, -1%2$s FROM __pgs_old;
    END IF;
    RETURN NULL;
END
$b$, buf, cols, seq, guard, src, notify);
    EXECUTE format('CREATE OR REPLACE FUNCTION %I.%I() RETURNS trigger LANGUAGE plpgsql '
                   'SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
                   'pgstream_changes', 'capture_' || src, body);
END
$fn$;

-- Refresh on commit: the capture function of a source notifies only while a stream
-- table with the schedule `on commit` reads it (see _build_capture). These row
-- triggers on the catalog rebuild the capture functions concerned whenever that
-- changes, on every path (creation, drop, replace, alter from Rust, the CLI or SQL):
-- a pgs_frontiers row of an on-commit stream table inserted or deleted (its st row
-- still exists in drop_stream_table, which deletes the frontiers first), or a
-- schedule changed to or from `on commit`.
CREATE OR REPLACE FUNCTION pgstream._on_commit_sync()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    src oid;
BEGIN
    -- Through `inherit` stream tables too (_on_commit_resync).
    IF TG_TABLE_NAME = 'pgs_frontiers' THEN
        IF TG_OP = 'INSERT' THEN
            IF EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s
                        WHERE s.id = NEW.st_id AND s.schedule IN ('on commit', 'inherit')) THEN
                PERFORM pgstream._on_commit_resync(NEW.source_oid);
            END IF;
        ELSIF EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s
                       WHERE s.id = OLD.st_id AND s.schedule IN ('on commit', 'inherit')) THEN
            PERFORM pgstream._on_commit_resync(OLD.source_oid);
        END IF;
    ELSE
        FOR src IN SELECT DISTINCT f.source_oid FROM pgstream.pgs_frontiers f
                    WHERE f.st_id = NEW.id LOOP
            PERFORM pgstream._on_commit_resync(src);
        END LOOP;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE TRIGGER "__pgs_on_commit_frontiers" AFTER INSERT OR DELETE ON pgstream.pgs_frontiers
    FOR EACH ROW EXECUTE FUNCTION pgstream._on_commit_sync();
CREATE OR REPLACE TRIGGER "__pgs_on_commit_schedule" AFTER UPDATE OF schedule ON pgstream.pgs_stream_tables
    FOR EACH ROW WHEN ((OLD.schedule = 'on commit') IS DISTINCT FROM (NEW.schedule = 'on commit')
                       OR (OLD.schedule = 'inherit') IS DISTINCT FROM (NEW.schedule = 'inherit'))
    EXECUTE FUNCTION pgstream._on_commit_sync();

-- The channel a stream table's refreshes notify besides pgstream_refreshed:
-- `pgstream_refreshed:` and its display name (`name` in public, `schema.name`
-- elsewhere), or NULL when that is longer than a channel name may be (63 bytes):
-- such a stream table is announced on pgstream_refreshed only.
-- PL/pgSQL, not SQL: a SQL function with SET clauses is not inlined, and was parsed
-- and planned at every call (every refresh that changed rows).
CREATE OR REPLACE FUNCTION pgstream._refreshed_channel(schema_name text, table_name text)
RETURNS text LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    c text := 'pgstream_refreshed:' || pgstream._display_name(schema_name, table_name);
BEGIN
    RETURN CASE WHEN octet_length(c) <= 63 THEN c END;
END
$fn$;

-- The LISTEN channel of one stream table (`name` or `schema.name`): after each refresh
-- that changed rows, it is notified with the JSON payload
-- {"name": ..., "schema": ..., "table": ..., "rows": <rows changed>}. NULL when the
-- name is too long for a channel of its own (then listen on pgstream_refreshed, which
-- carries the same payload for every stream table). LISTEN needs the channel quoted:
-- LISTEN "pgstream_refreshed:department_stats".
CREATE OR REPLACE FUNCTION pgstream.refreshed_channel(name text)
RETURNS text LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT pgstream._refreshed_channel(s.schema_name, s.table_name)
      FROM pgstream.pgs_stream_tables s WHERE s.id = pgstream._resolve(name)
$fn$;

-- Event trigger (ddl_command_end, ALTER TABLE and the DDL that can change a view):
-- rebuild the capture function of an altered source and put the stream tables whose
-- columns or views drifted in the ERROR state, in the DDL's own transaction. SECURITY DEFINER: the capture functions belong to
-- pgstream's owner, not to the table's.
CREATE OR REPLACE FUNCTION pgstream._on_ddl()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET quote_all_identifiers = off
AS $fn$
DECLARE
    src oid;
    st record;
    msg text;
BEGIN
    -- Views that stream tables read (few, and DDL is rare): any of the commands this
    -- trigger fires on may redefine, rename or drop one, directly or not (DROP ...
    -- CASCADE, ALTER SCHEMA ... RENAME), and drops are not listed by
    -- pg_event_trigger_ddl_commands(): check every stream table that reads a view.
    FOR st IN SELECT DISTINCT v.st_id FROM pgstream.pgs_views v LOOP
        msg := pgstream._drift(st.st_id);
        IF msg IS NOT NULL THEN
            UPDATE pgstream.pgs_stream_tables s SET status = 'ERROR', status_reason = msg
             WHERE s.id = st.st_id AND s.status IS DISTINCT FROM 'ERROR';
        END IF;
    END LOOP;
    -- A view replaced by the same definition: its new rule is the recorded one again,
    -- so _drift need not compare the definition at every refresh.
    UPDATE pgstream.pgs_views v SET rule_xmin = r.xmin
      FROM pg_rewrite r
     WHERE r.ev_class = v.view_oid AND r.rulename = '_RETURN'
       AND NOT (r.xmin = v.rule_xmin)
       AND pg_get_viewdef(v.view_oid) = v.definition;
    FOR src IN SELECT DISTINCT c.objid FROM pg_event_trigger_ddl_commands() c
                WHERE c.classid = 'pg_class'::regclass
                  AND EXISTS (SELECT 1 FROM pgstream.pgs_sources s WHERE s.source_oid = c.objid) LOOP
        PERFORM pgstream._build_capture(src);
        FOR st IN SELECT DISTINCT f.st_id FROM pgstream.pgs_frontiers f WHERE f.source_oid = src LOOP
            msg := pgstream._drift(st.st_id);
            IF msg IS NOT NULL THEN
                UPDATE pgstream.pgs_stream_tables s SET status = 'ERROR', status_reason = msg
                 WHERE s.id = st.st_id AND s.status IS DISTINCT FROM 'ERROR';
            END IF;
        END LOOP;
    END LOOP;
    -- Partitions created, attached or detached under a partitioned source, and
    -- tables that became inheritance children of a source (or a source that became
    -- one): capture triggers on the new members and a full refresh of the readers,
    -- or the ERROR state (see _sync_sources).
    -- (The relation, its partition root and its inheritance parents, each joined
    -- with the frontiers by equality: an OR in the join condition made every DDL
    -- command scan all the frontiers, and creating stream table 10,000 runs several.)
    FOR st IN SELECT DISTINCT f.st_id
                FROM pg_event_trigger_ddl_commands() c
               CROSS JOIN LATERAL (SELECT c.objid AS rel
                                   UNION SELECT pg_partition_root(c.objid)
                                   UNION SELECT i.inhparent FROM pg_inherits i
                                          WHERE i.inhrelid = c.objid) r
                JOIN pgstream.pgs_frontiers f ON f.source_oid = r.rel
                JOIN pgstream.pgs_stream_tables s ON s.id = f.st_id AND s.mode <> 'FULL'
               WHERE c.classid = 'pg_class'::regclass LOOP
        SELECT y.drift INTO msg FROM pgstream._sync_sources(st.st_id) y;
        IF msg IS NOT NULL THEN
            UPDATE pgstream.pgs_stream_tables s SET status = 'ERROR', status_reason = msg
             WHERE s.id = st.st_id AND s.status IS DISTINCT FROM 'ERROR';
        END IF;
    END LOOP;
END
$fn$;

-- Event triggers need a superuser: without one, drift (and a change of a
-- partitioned source's tree) is found at the next refresh, and the capture functions
-- check the table's shape at every statement (see _build_capture). An event trigger
-- with other tags (an older version) is replaced.
DO $do$
DECLARE
    tags text[] := ARRAY['ALTER TABLE', 'CREATE TABLE', 'CREATE VIEW', 'ALTER VIEW', 'DROP VIEW',
                         'DROP TABLE', 'DROP SCHEMA', 'ALTER SCHEMA', 'DROP OWNED'];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = current_user AND r.rolsuper) THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_event_trigger e WHERE e.evtname = 'pgstream_ddl'
                  AND NOT (e.evttags @> tags AND e.evttags <@ tags)) THEN
        DROP EVENT TRIGGER pgstream_ddl;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger e WHERE e.evtname = 'pgstream_ddl') THEN
        CREATE EVENT TRIGGER pgstream_ddl ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE VIEW', 'ALTER VIEW', 'DROP VIEW',
                         'DROP TABLE', 'DROP SCHEMA', 'ALTER SCHEMA', 'DROP OWNED')
            EXECUTE FUNCTION pgstream._on_ddl();
    END IF;
END
$do$;

-- Statement trigger for TRUNCATE on a source: every stream table reading it needs a
-- full refresh (TRUNCATE fires no row-level capture).
CREATE OR REPLACE FUNCTION pgstream._on_truncate()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- A member of a partitioned source names the source in its argument.
    UPDATE pgstream.pgs_stream_tables s SET needs_full = true
     WHERE EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f
                    WHERE f.st_id = s.id AND f.source_oid = coalesce(TG_ARGV[0]::oid, TG_RELID));
    RETURN NULL;
END
$fn$;

-- Number of buffered changes of one stream table that its frontiers do not cover.
-- The sources whose change buffers hold committed rows now: one probe per source
-- (`SELECT EXISTS`), whatever the number of stream tables. The scheduler does not
-- call the refresh of a DIFFERENTIAL stream table none of whose sources is among them
-- (it would find empty windows and do nothing); see scheduler.rs.
CREATE OR REPLACE FUNCTION pgstream._busy_sources()
RETURNS oid[] LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
END
$fn$;

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
-- failure (nothing is advanced then; the caller carries on as without this).
CREATE OR REPLACE FUNCTION pgstream._advance_unaffected()
RETURNS bigint[] LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    busy oid[];
    src oid;
    tmpl text;
    ids bigint[];
    affected bigint[] := '{}';
    locked bigint[];
BEGIN
    IF current_setting('transaction_isolation') = 'read committed' THEN
        RAISE EXCEPTION 'pgstream._advance_unaffected must run in a REPEATABLE READ transaction'
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    busy := pgstream._busy_sources();
    IF cardinality(busy) = 0 THEN
        RETURN '{}';
    END IF;
    -- (OFFSET 0: the locks are tried only for the candidates.)
    SELECT coalesce(array_agg(c.id), '{}') INTO locked
      FROM (SELECT s.id
              FROM pgstream.pgs_stream_tables s
              JOIN (SELECT f.st_id FROM pgstream.pgs_frontiers f
                     GROUP BY f.st_id
                    HAVING bool_or(f.source_oid = ANY (busy))
                       AND NOT bool_or(f.frontier IS NULL
                                       OR (f.source_oid = ANY (busy) AND f.change_filter IS NULL))) g
                ON g.st_id = s.id
             WHERE s.status = 'ACTIVE' AND s.mode = 'DIFFERENTIAL' AND NOT s.needs_full
               AND s.last_refresh_at IS NOT NULL AND s.refresh_function IS NOT NULL
            OFFSET 0) c
     WHERE pg_try_advisory_xact_lock(1885828980, (c.id % 2147483648)::integer);
    IF cardinality(locked) = 0 THEN
        RETURN '{}';
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
    SELECT coalesce(array_agg(u.id), '{}') INTO locked
      FROM (SELECT unnest(locked) EXCEPT SELECT unnest(affected)) u (id);
    UPDATE pgstream.pgs_frontiers f
       SET frontier = pg_catalog.pg_current_snapshot(), own_xid = NULL, own_change = NULL
      FROM unnest(locked) u (id)
     WHERE f.st_id = u.id;
    RETURN locked;
END
$fn$;

CREATE OR REPLACE FUNCTION pgstream._pending_changes(st_id bigint)
RETURNS bigint LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
END
$fn$;

-- Buffered changes not covered by each frontier, for every stream table that reads a
-- source whose buffer holds rows: one statement per such source (the buffers of the
-- others are empty, so their consumers have nothing pending), not one per stream
-- table and source: pgs_status() over 10,000 idle stream tables reads no buffer.
CREATE OR REPLACE FUNCTION pgstream._pending_by_stream_table()
RETURNS TABLE (st_id bigint, n bigint) LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
END
$fn$;

-- One row per stream table. `stale`: it must be refreshed to honour its schedule:
-- a TRUNCATE of a source is pending, or changes are pending and the last refresh is
-- older than the schedule, or it was never refreshed and the schedule has elapsed.
-- For a cron schedule, `schedule_interval` is the longest time between two fire
-- times (exact for evenly spaced ones such as `*/5 * * * *`), so `stale` says that a
-- fire time certainly passed without a refresh; for unevenly spaced schedules
-- (`0 9 * * MON-FRI`) it is an approximation that can lag behind a missed fire time.
CREATE OR REPLACE FUNCTION pgstream.pgs_status()
RETURNS TABLE (
    name             text,
    schedule         text,
    refresh_mode     text,
    status           text,
    last_refresh_at  timestamptz,
    stale            boolean,
    pending_changes  bigint,
    needs_full       boolean,
    created_at       timestamptz,
    id               bigint,
    strategy         text,
    effective_schedule text
) LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
END
$fn$;

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

-- Requests from SQL. Creating a stream table needs the compiler, which lives in the
-- application: create_stream_table and alter_stream_table record a request in
-- pgstream.pgs_requests and notify the running runtimes (channel pgstream_requests,
-- delivered at commit); one of them carries it out (pgstream-runtime's requests.rs)
-- and records the outcome, which wait_for_stream_table waits for.

-- Whether a pgstream runtime (an application, or `pgstream run`) is running on this
-- database: each holds a shared advisory lock (class 1885827958 = RUNTIME_LOCK_CLASS
-- in install.rs, 0x70677374 + 2, checked by a test there; key 0) on its listening connection.
CREATE OR REPLACE FUNCTION pgstream._runtime_running()
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted
                      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                         WHERE d.datname = pg_catalog.current_database())
                      AND l.classid = 1885827958 AND l.objid = 0 AND l.objsubid = 2)
$fn$;

-- Row trigger on pgs_requests: a request is made by the role that inserts it, and
-- starts pending. Not SECURITY DEFINER: current_user is the inserting role.
CREATE OR REPLACE FUNCTION pgstream._request_defaults()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    NEW.requested_by := current_user;
    NEW.requested_at := now();
    NEW.state := 'pending';
    NEW.message := NULL;
    NEW.hint := NULL;
    NEW.processed_at := NULL;
    NEW.processed_by := NULL;
    RETURN NEW;
END
$fn$;

CREATE OR REPLACE TRIGGER "__pgs_request_defaults" BEFORE INSERT ON pgstream.pgs_requests
    FOR EACH ROW EXECUTE FUNCTION pgstream._request_defaults();

-- Record a request and wake the runtimes. Returns the request's id.
CREATE OR REPLACE FUNCTION pgstream._request(kind text, name text, query text,
                                             schedule text, refresh_mode text)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    req bigint;
BEGIN
    IF name IS NULL OR btrim(name) = '' THEN
        RAISE EXCEPTION 'pgstream: stream table name must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF kind IN ('create', 'replace') AND (query IS NULL OR btrim(query) = '') THEN
        RAISE EXCEPTION 'pgstream: the defining query of stream table % must not be empty', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF refresh_mode IS NOT NULL AND upper(refresh_mode) NOT IN ('DIFFERENTIAL', 'FULL', 'IMMEDIATE') THEN
        RAISE EXCEPTION 'pgstream: unknown refresh mode ''%'' for stream table %', refresh_mode, name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The refresh mode is ''DIFFERENTIAL'', ''FULL'' or ''IMMEDIATE''.';
    END IF;
    INSERT INTO pgstream.pgs_requests (kind, name, query, schedule, refresh_mode, requested_by,
                                       settings)
    VALUES (kind, name, query, schedule, upper(refresh_mode), current_user,
            pgstream._result_settings())
    RETURNING id INTO req;
    PERFORM pg_notify('pgstream_requests', req::text);
    IF NOT pgstream._runtime_running() THEN
        RAISE NOTICE 'pgstream: no pgstream runtime is running on this database: the request for stream table % stays pending until one starts', name
            USING HINT = 'Start the application, or run `pgstream run` (or `pgstream run --once`).';
    END IF;
    RETURN req;
END
$fn$;

-- Create a stream table from SQL: a running runtime compiles the query against the
-- live schema and creates it after this transaction commits, exactly as `pgstream
-- create` would; pgstream.wait_for_stream_table(name) waits for it (and raises the
-- compiler's error). The requesting role must be able to read every source and to
-- create tables in the target schema; it is granted SELECT on the stream table.
CREATE OR REPLACE FUNCTION pgstream.create_stream_table(name text, query text,
                                                        schedule text DEFAULT '1m',
                                                        refresh_mode text DEFAULT 'DIFFERENTIAL')
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM pgstream._request('create', name, query, coalesce(schedule, '1m'),
                              coalesce(refresh_mode, 'DIFFERENTIAL'));
END
$fn$;

-- Change the schedule and/or the refresh mode of a stream table (NULL: unchanged),
-- through a running runtime like create_stream_table. A mode change rebuilds the
-- stream table with the new mode in one transaction.
CREATE OR REPLACE FUNCTION pgstream.alter_stream_table(name text, schedule text DEFAULT NULL,
                                                       refresh_mode text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF schedule IS NULL AND refresh_mode IS NULL THEN
        RAISE EXCEPTION 'pgstream: alter_stream_table(%) changes nothing: give schedule => or refresh_mode =>', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pgstream._request('alter', name, NULL, schedule, refresh_mode);
END
$fn$;

-- Replace the defining query (and, when given, the schedule and refresh mode; NULL:
-- unchanged) of a stream table, through a running runtime like create_stream_table:
-- the new storage is built and populated in one transaction that swaps it for the
-- old (readers see the old rows or the new ones, never an empty table); the grants
-- on the old storage table are given on the new one. Only the role that requested
-- it, a member of the storage table's owner, or a superuser may; the requesting
-- role must be able to read the new query's sources. Wait with
-- pgstream.wait_for_stream_table(name).
CREATE OR REPLACE FUNCTION pgstream.replace_stream_table(name text, query text,
                                                         schedule text DEFAULT NULL,
                                                         refresh_mode text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM pgstream._request('replace', name, query, schedule, refresh_mode);
END
$fn$;

-- Wait until the last request for stream table `name` is carried out: returns when
-- it is (the stream table is created and populated, or altered); raises the
-- runtime's error (SQLSTATE PGS02, with the compiler's diagnostic) when it failed;
-- raises after `timeout`, saying whether any runtime is running.
CREATE OR REPLACE FUNCTION pgstream.wait_for_stream_table(name text, timeout interval DEFAULT '30 seconds')
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    deadline timestamptz := clock_timestamp() + coalesce(timeout, interval '30 seconds');
    r record;
    own bigint := pg_current_xact_id_if_assigned()::text::bigint % 4294967296;
BEGIN
    LOOP
        -- READ COMMITTED: each statement sees what committed before it.
        SELECT q.id, q.kind, q.state, q.message, q.hint, q.xmin::text::bigint AS x
          INTO r
          FROM pgstream.pgs_requests q
         WHERE q.name = wait_for_stream_table.name
         ORDER BY q.id DESC LIMIT 1;
        IF NOT FOUND THEN
            -- No request: fine if the stream table exists (created from Rust, or the
            -- requests were cleaned up); _resolve raises otherwise.
            PERFORM pgstream._resolve(name);
            RETURN;
        END IF;
        IF r.state IN ('created', 'altered', 'replaced') THEN
            RETURN;
        ELSIF r.state = 'failed' THEN
            IF coalesce(r.hint, '') = '' THEN
                RAISE EXCEPTION USING ERRCODE = 'PGS02', MESSAGE = r.message;
            ELSE
                RAISE EXCEPTION USING ERRCODE = 'PGS02', MESSAGE = r.message, HINT = r.hint;
            END IF;
        END IF;
        IF r.x = own THEN
            RAISE EXCEPTION 'pgstream: the request for stream table % is not committed yet', name
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'A runtime carries it out after the transaction commits: commit, then wait.';
        END IF;
        IF clock_timestamp() >= deadline THEN
            IF pgstream._runtime_running() THEN
                RAISE EXCEPTION 'pgstream: the request for stream table % is still pending after %', name, timeout
                    USING ERRCODE = 'query_canceled',
                          HINT = 'A runtime is running; call wait_for_stream_table again, or see pgstream.pgs_request_status.';
            ELSE
                RAISE EXCEPTION 'pgstream: the request for stream table % is pending: no pgstream runtime is running on this database', name
                    USING ERRCODE = 'query_canceled',
                          HINT = 'Start the application, or run `pgstream run` (or `pgstream run --once`).';
            END IF;
        END IF;
        PERFORM pg_sleep(0.02);
    END LOOP;
END
$fn$;

-- The requests and their outcome, newest first.
CREATE OR REPLACE VIEW pgstream.pgs_request_status AS
SELECT q.id, q.kind, q.name, q.state, q.requested_by, q.requested_at, q.processed_at,
       q.processed_by, q.message, q.hint,
       CASE WHEN q.state = 'pending' AND NOT pgstream._runtime_running()
            THEN 'no pgstream runtime is running on this database: start the application or `pgstream run --once`'
       END AS note
  FROM pgstream.pgs_requests q
 ORDER BY q.id DESC;
GRANT SELECT ON pgstream.pgs_request_status TO PUBLIC;

-- Statement trigger on every storage table: direct writes would make the stored rows
-- diverge from what the deltas assume, so only a refresh may write.
CREATE OR REPLACE FUNCTION pgstream._guard_storage()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF coalesce(current_setting('pgstream.refreshing', true), '') <> 'on' THEN
        RAISE EXCEPTION 'cannot % stream table %.%: it is maintained by pgstream', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Write to its source tables and refresh it, or drop it with pgstream.drop_stream_table.';
    END IF;
    RETURN NULL;
END
$fn$;

-- Set the fraction of the sources' rows from which a differential refresh runs as a
-- full refresh instead (NULL: never). See pgs_stream_tables.full_refresh_ratio.
CREATE OR REPLACE FUNCTION pgstream.set_full_refresh_ratio(name text, ratio double precision)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- NaN and Infinity compare greater than 0 in PostgreSQL: excluded by name.
    IF ratio IS NOT NULL AND (NOT (ratio > 0) OR ratio IN ('NaN', 'Infinity')) THEN
        RAISE EXCEPTION 'pgstream: full refresh ratio must be a finite number greater than 0 (or NULL: never), not %', ratio
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE pgstream.pgs_stream_tables s SET full_refresh_ratio = ratio
     WHERE s.id = pgstream._resolve(name);
END
$fn$;

-- ---------------------------------------------------------------------------------
-- Schedules that follow their readers (issue 14, item 3; scheduler.rs).
-- The schedule an `inherit` stream table follows: that of its most demanding reader,
-- found through the stream tables that read it (and, through readers that inherit
-- too, theirs): `on commit` first (the on-commit listener refreshes it before the
-- reader), then the shortest schedule_interval. NULL columns when it inherits and
-- nothing with a schedule of its own reads it; for any other stream table, its own
-- schedule.
CREATE OR REPLACE FUNCTION pgstream._effective_schedule(st_id bigint, OUT schedule text,
                                                        OUT schedule_interval interval,
                                                        OUT reader text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH RECURSIVE st AS (
        SELECT s.id, s.schedule, s.schedule_interval,
               pgstream._display_name(s.schema_name, s.table_name) AS name,
               to_regclass(format('%I.%I', s.schema_name, s.table_name))::oid AS storage
          FROM pgstream.pgs_stream_tables s),
    up (id, depth) AS (
        SELECT _effective_schedule.st_id, 0
        UNION ALL
        SELECT f.st_id, up.depth + 1
          FROM up JOIN st p ON p.id = up.id
          JOIN pgstream.pgs_frontiers f ON f.source_oid = p.storage
         WHERE p.schedule = 'inherit' AND up.depth < 64)
    SELECT r.schedule, r.schedule_interval, CASE WHEN up.depth > 0 THEN r.name END
      FROM up JOIN st r ON r.id = up.id
     WHERE r.schedule <> 'inherit'
     ORDER BY (r.schedule = 'on commit') DESC, r.schedule_interval, up.depth, r.id
     LIMIT 1
$fn$;

-- Whether a stream table with the schedule `on commit` reads `src`, directly or
-- through stream tables with the schedule `inherit` (whose refreshes the on-commit
-- listener then runs before the reader's): capture of `src` notifies
-- (_build_capture).
CREATE OR REPLACE FUNCTION pgstream._read_on_commit(src oid)
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH RECURSIVE r (id, depth) AS (
        SELECT f.st_id, 0 FROM pgstream.pgs_frontiers f WHERE f.source_oid = src
        UNION ALL
        SELECT f.st_id, r.depth + 1
          FROM r JOIN pgstream.pgs_stream_tables p ON p.id = r.id AND p.schedule = 'inherit'
          JOIN pgstream.pgs_frontiers f
            ON f.source_oid = to_regclass(format('%I.%I', p.schema_name, p.table_name))::oid
         WHERE r.depth < 64)
    SELECT EXISTS (SELECT 1 FROM r JOIN pgstream.pgs_stream_tables s ON s.id = r.id
                    WHERE s.schedule = 'on commit')
$fn$;

-- Rebuild the capture function of `src` and, when `src` is the storage table of an
-- `inherit` stream table, those of its sources, recursively: whether they notify
-- depends on the on-commit readers above them (_read_on_commit).
CREATE OR REPLACE FUNCTION pgstream._on_commit_resync(src oid, depth integer DEFAULT 0)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    up oid;
BEGIN
    PERFORM pgstream._build_capture(src);
    IF depth >= 64 THEN
        RETURN;
    END IF;
    FOR up IN SELECT DISTINCT f.source_oid
                FROM pgstream.pgs_stream_tables p
                JOIN pgstream.pgs_frontiers f ON f.st_id = p.id
               WHERE p.schedule = 'inherit'
                 AND to_regclass(format('%I.%I', p.schema_name, p.table_name))::oid = src LOOP
        PERFORM pgstream._on_commit_resync(up, depth + 1);
    END LOOP;
END
$fn$;

-- ---------------------------------------------------------------------------------
-- Change subscriptions (issue 14, item 4; subscribe.rs). See schema_v8.sql for the
-- tables. A stream table has a feed (pgs_feeds row, storage triggers) while it has
-- subscribers.

-- The statement trigger of a storage table with a feed (TG_ARGV[0]: the stream table
-- id): the statement's changes, visible columns only, into pgs_feed_log under the
-- version of this transaction (drawn at its first statement with changes: the
-- pgs_feeds row is updated, and held, until the refresh commits). An UPDATE's old and
-- new images are paired by __pgs_row_id; an id that is not on each side exactly once
-- is logged as deletes and inserts, and a pair whose visible columns did not change
-- (a hidden counter) is not logged. Security definer: the refreshing role needs no
-- rights on the feed tables. Transition tables are read with EXECUTE: one function
-- serves storage tables of different row types.
CREATE OR REPLACE FUNCTION pgstream._feed_capture()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    sid bigint := TG_ARGV[0]::bigint;
    hidden text[];
    any_rows boolean;
    v bigint;
    base bigint;
    n bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pgs_feed_old)' INTO any_rows;
    ELSE
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pgs_feed_new)' INTO any_rows;
    END IF;
    IF NOT any_rows THEN
        RETURN NULL;
    END IF;
    UPDATE pgstream.pgs_feeds f
       SET version = CASE WHEN f.version_xid = pg_current_xact_id() THEN f.version
                          ELSE f.version + 1 END,
           version_xid = pg_current_xact_id()
     WHERE f.st_id = sid
    RETURNING f.version INTO v;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(array_agg(a.attname::text), '{}') INTO hidden
      FROM pg_attribute a
     WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname::text LIKE '\_\_pgs\_%';
    SELECT coalesce(max(l.ord), 0) INTO base
      FROM pgstream.pgs_feed_log l WHERE l.st_id = sid AND l.version = v;
    IF TG_OP = 'INSERT' THEN
        EXECUTE 'INSERT INTO pgstream.pgs_feed_log (st_id, version, ord, op, "row")
                 SELECT $1, $2, $3 + row_number() OVER (), ''I'', to_jsonb(x) - $4::text[]
                   FROM pgs_feed_new x'
          USING sid, v, base, hidden;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE 'INSERT INTO pgstream.pgs_feed_log (st_id, version, ord, op, "row")
                 SELECT $1, $2, $3 + row_number() OVER (), ''D'', to_jsonb(x) - $4::text[]
                   FROM pgs_feed_old x'
          USING sid, v, base, hidden;
    ELSE
        EXECUTE 'WITH o AS (SELECT x."__pgs_row_id" AS id, to_jsonb(x) - $4::text[] AS j,
                                   count(*) OVER (PARTITION BY x."__pgs_row_id") AS c
                              FROM pgs_feed_old x),
                      w AS (SELECT x."__pgs_row_id" AS id, to_jsonb(x) - $4::text[] AS j,
                                   count(*) OVER (PARTITION BY x."__pgs_row_id") AS c
                              FROM pgs_feed_new x),
                      p AS (SELECT o.id, o.j AS oj, w.j AS nj
                              FROM o JOIN w ON w.id = o.id WHERE o.c = 1 AND w.c = 1),
                      ch AS (SELECT p.id AS k, 0 AS s, ''O''::"char" AS op, p.oj AS j FROM p WHERE p.oj <> p.nj
                             UNION ALL
                             SELECT p.id, 1, ''N''::"char", p.nj FROM p WHERE p.oj <> p.nj
                             UNION ALL
                             SELECT o.id, 0, ''D''::"char", o.j FROM o
                              WHERE NOT EXISTS (SELECT 1 FROM p WHERE p.id = o.id)
                             UNION ALL
                             SELECT w.id, 1, ''I''::"char", w.j FROM w
                              WHERE NOT EXISTS (SELECT 1 FROM p WHERE p.id = w.id))
                 INSERT INTO pgstream.pgs_feed_log (st_id, version, ord, op, "row")
                 SELECT $1, $2, $3 + row_number() OVER (ORDER BY ch.k, ch.s), ch.op, ch.j FROM ch'
          USING sid, v, base, hidden;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    -- The frontier the refresh reached (its statements advanced pgs_frontiers).
    INSERT INTO pgstream.pgs_feed_versions AS x (st_id, version, refreshed_at, changes, sources, frontiers)
    SELECT sid, v, now(), n,
           coalesce(array_agg(coalesce(pgstream._display_name(f.source_schema, f.source_name),
                                       f.source_oid::text) ORDER BY f.source_oid), '{}'),
           coalesce(array_agg(coalesce(f.frontier::text, '') ORDER BY f.source_oid), '{}')
      FROM pgstream.pgs_frontiers f WHERE f.st_id = sid
    ON CONFLICT ON CONSTRAINT pgs_feed_versions_pkey DO UPDATE
       SET changes = x.changes + EXCLUDED.changes, sources = EXCLUDED.sources,
           frontiers = EXCLUDED.frontiers;
    PERFORM pgstream._trim_feed(sid);
    RETURN NULL;
END
$fn$;

-- Delete the versions of a feed that every subscriber has consumed, and those older
-- than the feed's retention (a subscriber behind them has lagged: trimmed_to says so).
-- Returns the versions deleted up to (trimmed_to).
CREATE OR REPLACE FUNCTION pgstream._trim_feed(sid bigint)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    f record;
    upto bigint;
BEGIN
    SELECT x.version, x.trimmed_to, x.retention INTO f
      FROM pgstream.pgs_feeds x WHERE x.st_id = sid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    upto := coalesce((SELECT min(s.position) FROM pgstream.pgs_subscribers s WHERE s.st_id = sid),
                     f.version);
    upto := greatest(upto, coalesce((SELECT max(v.version) FROM pgstream.pgs_feed_versions v
                                      WHERE v.st_id = sid AND v.refreshed_at < now() - f.retention), 0));
    IF upto > f.trimmed_to THEN
        DELETE FROM pgstream.pgs_feed_log l
         WHERE l.st_id = sid AND l.version > f.trimmed_to AND l.version <= upto;
        DELETE FROM pgstream.pgs_feed_versions v
         WHERE v.st_id = sid AND v.version > f.trimmed_to AND v.version <= upto;
        UPDATE pgstream.pgs_feeds x SET trimmed_to = upto WHERE x.st_id = sid;
        RETURN upto;
    END IF;
    RETURN f.trimmed_to;
END
$fn$;

-- A feed deleted (unsubscribe, or its stream table dropped: the catalog row's
-- deletion cascades): its log rows go too (they have no foreign key).
CREATE OR REPLACE FUNCTION pgstream._feed_deleted()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    DELETE FROM pgstream.pgs_feed_log l WHERE l.st_id = OLD.st_id;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE TRIGGER "__pgs_feed_deleted" AFTER DELETE ON pgstream.pgs_feeds
    FOR EACH ROW EXECUTE FUNCTION pgstream._feed_deleted();

-- Subscribe `subscriber` to the changes of stream table `name` (`name` or
-- `schema.name`); returns the subscriber's position, the last version it has
-- consumed: `after` when given, else the stored one of an existing subscriber, else
-- the feed's current version (a new subscriber gets what comes next). The first
-- subscriber creates the feed (statement triggers on the storage table, which need
-- its owner's rights); `retention` (default 1 day) bounds how long versions that a
-- subscriber has not consumed are kept. Waits for a refresh in progress.
CREATE OR REPLACE FUNCTION pgstream.subscribe(name text, subscriber text,
                                              after bigint DEFAULT NULL,
                                              retention interval DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    sid bigint;
    st record;
    f record;
    pos bigint;
BEGIN
    IF subscriber IS NULL OR btrim(subscriber) = '' THEN
        RAISE EXCEPTION 'pgstream: the subscriber name for stream table % must not be empty', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retention IS NOT NULL AND NOT (retention > interval '0') THEN
        RAISE EXCEPTION 'pgstream: the retention of the changes of stream table % must be positive, not %', name, retention
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    sid := pgstream._resolve(name);
    PERFORM pgstream._lock_stream_table(sid);
    SELECT s.schema_name, s.table_name INTO st FROM pgstream.pgs_stream_tables s WHERE s.id = sid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stream table % does not exist', name USING ERRCODE = 'undefined_table';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pgstream.pgs_feeds x WHERE x.st_id = sid) THEN
        INSERT INTO pgstream.pgs_feeds (st_id, retention)
        VALUES (sid, coalesce(retention, interval '1 day'));
        EXECUTE format('CREATE TRIGGER "__pgs_feed_ins" AFTER INSERT ON %I.%I '
                       'REFERENCING NEW TABLE AS pgs_feed_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION pgstream._feed_capture(%L)',
                       st.schema_name, st.table_name, sid);
        EXECUTE format('CREATE TRIGGER "__pgs_feed_upd" AFTER UPDATE ON %I.%I '
                       'REFERENCING OLD TABLE AS pgs_feed_old NEW TABLE AS pgs_feed_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION pgstream._feed_capture(%L)',
                       st.schema_name, st.table_name, sid);
        EXECUTE format('CREATE TRIGGER "__pgs_feed_del" AFTER DELETE ON %I.%I '
                       'REFERENCING OLD TABLE AS pgs_feed_old '
                       'FOR EACH STATEMENT EXECUTE FUNCTION pgstream._feed_capture(%L)',
                       st.schema_name, st.table_name, sid);
    ELSIF retention IS NOT NULL THEN
        UPDATE pgstream.pgs_feeds x SET retention = subscribe.retention WHERE x.st_id = sid;
    END IF;
    SELECT x.version INTO f FROM pgstream.pgs_feeds x WHERE x.st_id = sid FOR UPDATE;
    IF after IS NOT NULL AND (after < 0 OR after > f.version) THEN
        RAISE EXCEPTION 'pgstream: cannot subscribe % to stream table % after version %: its changes are at version %',
                subscriber, name, after, f.version
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO pgstream.pgs_subscribers AS s (st_id, name, position)
    VALUES (sid, subscriber, coalesce(after, f.version))
    ON CONFLICT ON CONSTRAINT pgs_subscribers_pkey DO UPDATE SET position = coalesce(subscribe.after, s.position)
    RETURNING s.position INTO pos;
    RETURN pos;
END
$fn$;

-- Remove a subscriber (false when there was none); with the last one the feed goes
-- (its triggers and rows): nothing is logged while nobody subscribes.
CREATE OR REPLACE FUNCTION pgstream.unsubscribe(name text, subscriber text)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    sid bigint;
    st record;
    found_one boolean;
BEGIN
    sid := pgstream._resolve(name);
    PERFORM pgstream._lock_stream_table(sid);
    DELETE FROM pgstream.pgs_subscribers s WHERE s.st_id = sid AND s.name = subscriber;
    found_one := FOUND;
    IF EXISTS (SELECT 1 FROM pgstream.pgs_feeds x WHERE x.st_id = sid)
       AND NOT EXISTS (SELECT 1 FROM pgstream.pgs_subscribers s WHERE s.st_id = sid) THEN
        SELECT s.schema_name, s.table_name INTO st FROM pgstream.pgs_stream_tables s WHERE s.id = sid;
        IF to_regclass(format('%I.%I', st.schema_name, st.table_name)) IS NOT NULL THEN
            EXECUTE format('DROP TRIGGER IF EXISTS "__pgs_feed_ins" ON %I.%I', st.schema_name, st.table_name);
            EXECUTE format('DROP TRIGGER IF EXISTS "__pgs_feed_upd" ON %I.%I', st.schema_name, st.table_name);
            EXECUTE format('DROP TRIGGER IF EXISTS "__pgs_feed_del" ON %I.%I', st.schema_name, st.table_name);
        END IF;
        DELETE FROM pgstream.pgs_feeds x WHERE x.st_id = sid;
    END IF;
    RETURN found_one;
END
$fn$;

-- The subscribers of every stream table: the version each has consumed, the feed's
-- latest, how many versions it is behind, and whether versions it has not read were
-- deleted (retention): it is told so when it next reads.
CREATE OR REPLACE VIEW pgstream.pgs_subscriptions AS
SELECT pgstream._display_name(s.schema_name, s.table_name) AS name,
       b.name AS subscriber,
       b.position,
       f.version,
       f.version - b.position AS behind,
       b.position < f.trimmed_to AS lagged,
       f.retention,
       b.acked_at,
       b.created_at
  FROM pgstream.pgs_subscribers b
  JOIN pgstream.pgs_feeds f ON f.st_id = b.st_id
  JOIN pgstream.pgs_stream_tables s ON s.id = b.st_id;
