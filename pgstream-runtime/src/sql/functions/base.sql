-- pgstream SQL functions, the first of the scripts of sql/functions/, which install.rs
-- installs in a fixed order (FUNCTION_SCRIPTS) and recreates (CREATE OR REPLACE)
-- whenever their text differs from the installed one.
-- Every function runs with search_path = pg_catalog, pg_temp: install.rs pins it on
-- all of them after the scripts (pin_search_path), so no header repeats it. Every
-- function quotes identifiers with format('%I').
-- A name in double braces is a constant of install.rs, substituted at installation:
-- the numbers are written once, in Rust.
-- Advisory locks use the two-key form: ({{STREAM_TABLE_LOCK_CLASS}}, stream table id
-- mod 2^31) serialises refreshes and drops of one stream table (taken through
-- _lock_stream_table, but by the scheduler's _advance_unaffected, which tries it per
-- row in one statement); installation takes ({{LOCK_CLASS}} = 'pgst', 0). The first
-- keys differ, so the two never collide.

-- Display name of a stream table: `name` in public, `schema.name` elsewhere.
CREATE OR REPLACE FUNCTION pgstream._display_name(schema_name text, table_name text)
RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE WHEN schema_name = 'public' THEN table_name
                ELSE schema_name || '.' || table_name END
$fn$;

-- Resolve `name` or `schema.name` (taken literally; a bare name is in public).
CREATE OR REPLACE FUNCTION pgstream._resolve(name text) RETURNS bigint LANGUAGE plpgsql STABLE AS $fn$
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
END $fn$;

-- Delete the buffer rows of one source that every consumer's frontier already
-- covers. Rows of a consumer's last refresh transaction (own_xid) after the change id
-- it consumed are kept whatever the snapshot says (a snapshot may count its own
-- transaction as seen). A consumer whose frontier is NULL (never refreshed) keeps every row: it
-- has not yet stated what it has seen, so nothing may be discarded on its behalf.
CREATE OR REPLACE FUNCTION pgstream._trim_buffer(src oid) RETURNS bigint LANGUAGE plpgsql AS $fn$
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
    -- Only rows below the xmax of every frontier (NULL when one is NULL: nothing);
    -- of those, the rows below the xmin of every frontier (one aggregate; see
    -- trim_sql in pgstream-core's render/frontier.rs), then the exact test for the
    -- others, against the distinct frontiers only (consumers advanced together
    -- share one).
    EXECUTE format(
        'WITH d AS MATERIALIZED (SELECT DISTINCT ON (f.frontier::text, f.own_xid, f.own_change)'
        '  f.frontier, f.own_xid, f.own_change FROM pgstream.pgs_frontiers f WHERE f.source_oid = $1)'
        ' DELETE FROM %I.%I b WHERE b.__pgs_xid < (SELECT min(pg_catalog.pg_snapshot_xmax(f.frontier))'
        '  FROM pgstream.pgs_frontiers f WHERE f.source_oid = $1 HAVING bool_and(f.frontier IS NOT NULL))'
        ' AND (b.__pgs_xid < (SELECT min(pg_catalog.pg_snapshot_xmin(f.frontier))'
        '  FROM pgstream.pgs_frontiers f WHERE f.source_oid = $1)'
        ' OR NOT EXISTS ('
        '  SELECT 1 FROM d'
        '   WHERE NOT pg_catalog.pg_visible_in_snapshot(b.__pgs_xid, d.frontier)'
        '      OR (b.__pgs_xid = d.own_xid AND b.__pgs_change_id > COALESCE(d.own_change, -1))))',
        'pgstream_changes', 'changes_' || src)
        USING src;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $fn$;

-- The advisory lock of a stream table: the two-key form ({{STREAM_TABLE_LOCK_CLASS}},
-- id mod 2^31) (see the head of this file; the scheduler's _advance_unaffected tries
-- the same key per row). Held to the end of the transaction; serialises refreshes,
-- drops, subscriptions and the IMMEDIATE writers of one stream table. With
-- wait = false, returns false at once when another session holds it.
CREATE OR REPLACE FUNCTION pgstream._lock_stream_table(st_id bigint, wait boolean DEFAULT true)
RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
    IF wait THEN
        PERFORM pg_advisory_xact_lock({{STREAM_TABLE_LOCK_CLASS}}, (st_id % 2147483648)::integer);
        RETURN true;
    END IF;
    RETURN pg_try_advisory_xact_lock({{STREAM_TABLE_LOCK_CLASS}}, (st_id % 2147483648)::integer);
END $fn$;

