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
CREATE OR REPLACE FUNCTION pgstream._build_capture(src oid) RETURNS void LANGUAGE plpgsql AS $fn$
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
END $fn$;

-- Refresh on commit: the capture function of a source notifies only while a stream
-- table with the schedule `on commit` reads it (see _build_capture). These row
-- triggers on the catalog rebuild the capture functions concerned whenever that
-- changes, on every path (creation, drop, replace, alter from Rust, the CLI or SQL):
-- a pgs_frontiers row of an on-commit stream table inserted or deleted (its st row
-- still exists in drop_stream_table, which deletes the frontiers first), or a
-- schedule changed to or from `on commit`.
CREATE OR REPLACE FUNCTION pgstream._on_commit_sync() RETURNS trigger LANGUAGE plpgsql AS $fn$
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
END $fn$;

CREATE OR REPLACE TRIGGER "__pgs_on_commit_schedule" AFTER UPDATE OF schedule ON pgstream.pgs_stream_tables
    FOR EACH ROW WHEN ((OLD.schedule = 'on commit') IS DISTINCT FROM (NEW.schedule = 'on commit')
                       OR (OLD.schedule = 'inherit') IS DISTINCT FROM (NEW.schedule = 'inherit'))
    EXECUTE FUNCTION pgstream._on_commit_sync();
CREATE OR REPLACE TRIGGER "__pgs_on_commit_frontiers" AFTER INSERT OR DELETE ON pgstream.pgs_frontiers
    FOR EACH ROW EXECUTE FUNCTION pgstream._on_commit_sync();

-- The channel a stream table's refreshes notify besides pgstream_refreshed:
-- `pgstream_refreshed:` and its display name (`name` in public, `schema.name`
-- elsewhere), or NULL when that is longer than a channel name may be (63 bytes):
-- such a stream table is announced on pgstream_refreshed only.
-- PL/pgSQL, not SQL: a SQL function with SET clauses is not inlined, and was parsed
-- and planned at every call (every refresh that changed rows).
CREATE OR REPLACE FUNCTION pgstream._refreshed_channel(schema_name text, table_name text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
    c text := 'pgstream_refreshed:' || pgstream._display_name(schema_name, table_name);
BEGIN
    RETURN CASE WHEN octet_length(c) <= 63 THEN c END;
END $fn$;

-- The LISTEN channel of one stream table (`name` or `schema.name`): after each refresh
-- that changed rows, it is notified with the JSON payload
-- {"name": ..., "schema": ..., "table": ..., "rows": <rows changed>}. NULL when the
-- name is too long for a channel of its own (then listen on pgstream_refreshed, which
-- carries the same payload for every stream table). LISTEN needs the channel quoted:
-- LISTEN "pgstream_refreshed:department_stats".
CREATE OR REPLACE FUNCTION pgstream.refreshed_channel(name text) RETURNS text LANGUAGE sql STABLE AS $fn$
    SELECT pgstream._refreshed_channel(s.schema_name, s.table_name)
      FROM pgstream.pgs_stream_tables s WHERE s.id = pgstream._resolve(name)
$fn$;

-- Event trigger (ddl_command_end, ALTER TABLE and the DDL that can change a view):
-- rebuild the capture function of an altered source and put the stream tables whose
-- columns or views drifted in the ERROR state, in the DDL's own transaction. SECURITY DEFINER: the capture functions belong to
-- pgstream's owner, not to the table's.
CREATE OR REPLACE FUNCTION pgstream._on_ddl()
RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER SET quote_all_identifiers = off AS $fn$
DECLARE
    src oid;
    st record;
    msg text;
    rels oid[];
BEGIN
    -- Views that stream tables read (few, and DDL is rare): any of the commands this
    -- trigger fires on may redefine, rename or drop one, directly or not (DROP ...
    -- CASCADE, ALTER SCHEMA ... RENAME), and drops are not listed by
    -- pg_event_trigger_ddl_commands(): check every stream table that reads a view.
    FOR st IN SELECT DISTINCT v.st_id FROM pgstream.pgs_views v LOOP
        PERFORM pgstream._set_error(st.st_id, pgstream._drift(st.st_id));
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
            PERFORM pgstream._set_error(st.st_id, pgstream._drift(st.st_id));
        END LOOP;
    END LOOP;
    -- Partitions created, attached or detached under a partitioned source, and
    -- tables that became inheritance children of a source (or a source that became
    -- one): capture triggers on the new members and a full refresh of the readers,
    -- or the ERROR state (see _sync_sources).
    -- (The relation, its partition root and its inheritance parents, collected
    -- first and then looked up in the frontiers' source index: joined in one
    -- statement, the planner took the commands for a thousand rows, as for any
    -- set-returning function, and hashed all the frontiers: 1.7 ms per creation at
    -- 10,000 stream tables, which runs this trigger for each CREATE.)
    rels := ARRAY(SELECT DISTINCT r.rel
                    FROM pg_event_trigger_ddl_commands() c
                   CROSS JOIN LATERAL (SELECT c.objid AS rel
                                       UNION SELECT pg_partition_root(c.objid)
                                       UNION SELECT i.inhparent FROM pg_inherits i
                                              WHERE i.inhrelid = c.objid) r
                   WHERE c.classid = 'pg_class'::regclass AND r.rel IS NOT NULL);
    FOR st IN SELECT DISTINCT f.st_id
                FROM pgstream.pgs_frontiers f
                JOIN pgstream.pgs_stream_tables s ON s.id = f.st_id AND s.mode <> 'FULL'
               WHERE f.source_oid = ANY (rels) LOOP
        SELECT y.drift INTO msg FROM pgstream._sync_sources(st.st_id) y;
        PERFORM pgstream._set_error(st.st_id, msg);
    END LOOP;
END $fn$;

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
CREATE OR REPLACE FUNCTION pgstream._on_truncate() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $fn$
BEGIN
    -- A member of a partitioned source names the source in its argument.
    UPDATE pgstream.pgs_stream_tables s SET needs_full = true
     WHERE EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f
                    WHERE f.st_id = s.id AND f.source_oid = coalesce(TG_ARGV[0]::oid, TG_RELID));
    RETURN NULL;
END $fn$;

