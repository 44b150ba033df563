-- Drop a stream table: its storage table, catalog, frontier and stats rows, and the
-- capture of every source that no other stream table reads. Stream tables that read
-- this one are dropped first with cascade = true; without it their names are in the
-- error.
CREATE OR REPLACE FUNCTION pgstream.drop_stream_table(name text, cascade boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    sid bigint;
    st pgstream.pgs_stream_tables;
    storage oid;
    dependant text;
    dep text;
    srcs oid[];
    src oid;
    state_table name;
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
    -- The state tables of its one-row aggregates (running counts and sums), written
    -- only by this stream table's refreshes.
    FOR state_table IN
        SELECT c.relname FROM pg_catalog.pg_class c
         WHERE c.relnamespace = 'pgstream'::regnamespace AND c.relkind = 'r'
           AND c.relname ~ ('^_scalar_' || st.id || '_[0-9]+$')
    LOOP
        EXECUTE format('DROP TABLE pgstream.%I', state_table);
    END LOOP;

    FOREACH src IN ARRAY coalesce(srcs, '{}') LOOP
        PERFORM 1 FROM pgstream.pgs_sources s WHERE s.source_oid = src FOR UPDATE;
        IF NOT EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f WHERE f.source_oid = src) THEN
            PERFORM pgstream._drop_capture(src);
        ELSE
            PERFORM pgstream._trim_buffer(src);
        END IF;
    END LOOP;
END $fn$;

-- Resume a SUSPENDED (or ERROR) stream table: the scheduler refreshes it again from
-- its next tick. An ERROR caused by schema drift that is still there stays.
CREATE OR REPLACE FUNCTION pgstream.resume_stream_table(name text) RETURNS void LANGUAGE plpgsql AS $fn$
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
END $fn$;

-- Whether the stored refresh statements of a stream table still plan (EXPLAIN, which
-- runs nothing): NULL when they do, else the error. Used by resume_stream_table
-- (issue 11, item 4: a refresh that failed on the schema must be checked again).
CREATE OR REPLACE FUNCTION pgstream._plan_check(st_id bigint) RETURNS text LANGUAGE plpgsql AS $fn$
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
END $fn$;

