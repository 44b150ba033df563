-- IMMEDIATE mode (issue 14, item 1). Installed last of the function scripts, with them
-- (install.rs hashes them all). Recreated (CREATE OR REPLACE) at every installation.
--
-- An IMMEDIATE stream table is refreshed by its writers, inside their transaction,
-- by the same refresh as a DIFFERENTIAL one (pgstream.refresh_stream_table_by_id and
-- the generated _refresh_<id>): after a statement on a source, its capture trigger
-- has written the statement's changes into the buffer, and the refresh applies the
-- transaction's own buffer rows (the frontier's own_xid / own_change) over the
-- sources as the transaction sees them. No delta SQL of its own.
--
-- Every relation that carries capture for a source read by an IMMEDIATE stream
-- table (the source, and each member of a partitioned source's tree) also gets:
--
--   __pgs_immediate_before  BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE, per
--                           statement: counts the statement in (pgstream.immediate_depth)
--                           and takes the transaction-level advisory lock of every
--                           IMMEDIATE stream table reading the source (the lock a
--                           refresh takes), in id order;
--   __pgs_immediate_after   AFTER ..., per statement (after the __pgs_capture_*
--                           triggers: triggers fire in name order): counts it out,
--                           notes the source as changed (pgstream.immediate_dirty),
--                           and when no statement on a source is still running in
--                           this transaction (depth 0), refreshes the IMMEDIATE
--                           stream tables that read a changed source.
--
-- Why the depth: a statement fired from inside another (an RI action, a trigger's
-- DML, the parts of a writable CTE or MERGE) ends before the outer one, whose rows
-- are already in the table but not yet in the buffer (its capture runs at its end).
-- A refresh then would take the outer rows as the state before the window and the
-- delta rules would count the cross term of a join twice. So a refresh runs only
-- once every statement on a source has been captured; the outermost one refreshes
-- for all. The counters are transaction-local settings: a statement that fails
-- inside a savepoint rolls them back with everything else.
--
-- Concurrency. Writers of the sources of one IMMEDIATE stream table are serialised
-- on it: the lock is taken before a writer's first statement on a source modifies a
-- row and held to its commit or rollback, so a writer waits for every other
-- transaction that wrote a source of the stream table (and for a refresh of it in
-- progress) to end. Under READ COMMITTED, each statement of the refresh takes a new
-- snapshot after the lock was granted (PL/pgSQL, VOLATILE), so it sees the previous
-- writer's committed changes and refresh, and applies only its own window. Under
-- REPEATABLE READ or SERIALIZABLE the snapshot may be older than the previous
-- writer's commit: the refresh then updates a frontier row (and the catalog row) that
-- a transaction invisible to it updated, and PostgreSQL raises a serialization
-- failure (SQLSTATE 40001); when nothing committed since its snapshot, what it sees
-- is what the stream table holds, and the refresh is exact. A conflict is never a
-- wrong row; the writer retries.

-- The triggers of one relation `rel` that captures for source `src`.
CREATE OR REPLACE FUNCTION pgstream._create_immediate_triggers(rel oid, src oid)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('CREATE TRIGGER __pgs_immediate_before BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION pgstream._immediate_before(%L)', rel::regclass, src);
    EXECUTE format('CREATE TRIGGER __pgs_immediate_after AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION pgstream._immediate_after(%L)', rel::regclass, src);
END $fn$;

-- The relations that carry the IMMEDIATE triggers of source `src`.
CREATE OR REPLACE FUNCTION pgstream._immediate_relations(src oid)
RETURNS SETOF oid LANGUAGE sql STABLE AS $fn$
    SELECT t.tgrelid FROM pg_trigger t
     WHERE t.tgname = '__pgs_immediate_before'
       AND t.tgfoid = to_regprocedure('pgstream._immediate_before()')
       AND t.tgnargs = 1
       AND t.tgargs = convert_to(src::text, 'SQL_ASCII') || '\x00'::bytea
$fn$;

-- Give the IMMEDIATE triggers to every relation that captures for `src` while an
-- IMMEDIATE stream table reads it, and take them away otherwise. Called by the row
-- triggers below whenever that can change: a reader created or dropped (its
-- pgs_frontiers rows), a mode changed, a partitioned source's members synced.
-- CREATE/DROP TRIGGER lock the relation (SHARE ROW EXCLUSIVE): writes in progress
-- end first, and later ones wait for this transaction, so no write falls between
-- the mode the catalog says and the triggers the tables have.
--
-- With `added` (an IMMEDIATE reader of `src` is being created, or a reader switched
-- to IMMEDIATE), every relation is locked against writes (SHARE ROW EXCLUSIVE) even
-- when it has its triggers already (another IMMEDIATE reader): writes in progress
-- end first and are in the new reader's population or first refresh, and later
-- writes see the new reader. And the source's pgs_sources row is updated: a
-- REPEATABLE READ or SERIALIZABLE writer whose snapshot is older cannot see the new
-- reader, so it could not maintain it; _immediate_before locks that row FOR SHARE,
-- which makes such a writer fail with a serialization failure.
DROP FUNCTION IF EXISTS pgstream._immediate_sync(oid);
CREATE OR REPLACE FUNCTION pgstream._immediate_sync(src oid, added boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    want oid[] := '{}';
    have oid[];
    rel oid;
BEGIN
    -- From the IMMEDIATE stream tables (schema v10's partial index), not from the
    -- consumers of src: a source may have thousands of those.
    IF EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s
                 JOIN pgstream.pgs_frontiers f ON f.st_id = s.id AND f.source_oid = src
                WHERE s.mode = 'IMMEDIATE')
       AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = src) THEN
        want := ARRAY(SELECT src UNION
                      SELECT t.tgrelid FROM pg_trigger t
                       WHERE t.tgfoid = to_regprocedure(format('%I.%I()', 'pgstream_changes', 'capture_' || src))
                         AND t.tgname = '__pgs_capture_ins');
    END IF;
    have := ARRAY(SELECT pgstream._immediate_relations(src));
    FOREACH rel IN ARRAY have LOOP
        IF NOT rel = ANY (want) THEN
            EXECUTE format('DROP TRIGGER IF EXISTS __pgs_immediate_before ON %s', rel::regclass);
            EXECUTE format('DROP TRIGGER IF EXISTS __pgs_immediate_after ON %s', rel::regclass);
        END IF;
    END LOOP;
    FOREACH rel IN ARRAY want LOOP
        IF added THEN
            EXECUTE format('LOCK TABLE ONLY %s IN SHARE ROW EXCLUSIVE MODE', rel::regclass);
        END IF;
        IF NOT rel = ANY (have) THEN
            PERFORM pgstream._create_immediate_triggers(rel, src);
        END IF;
    END LOOP;
    IF added AND want <> '{}' THEN
        UPDATE pgstream.pgs_sources s SET members = s.members WHERE s.source_oid = src;
    END IF;
END $fn$;

CREATE OR REPLACE FUNCTION pgstream._immediate_catalog_sync() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    src oid;
BEGIN
    IF TG_TABLE_NAME = 'pgs_frontiers' AND TG_OP = 'INSERT' THEN
        PERFORM pgstream._immediate_sync(NEW.source_oid,
            EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s WHERE s.id = NEW.st_id AND s.mode = 'IMMEDIATE'));
    ELSIF TG_TABLE_NAME = 'pgs_frontiers' THEN
        PERFORM pgstream._immediate_sync(OLD.source_oid);
    ELSIF TG_TABLE_NAME = 'pgs_sources' THEN
        PERFORM pgstream._immediate_sync(NEW.source_oid);
    ELSE
        FOR src IN SELECT DISTINCT f.source_oid FROM pgstream.pgs_frontiers f WHERE f.st_id = NEW.id LOOP
            PERFORM pgstream._immediate_sync(src, NEW.mode = 'IMMEDIATE');
        END LOOP;
    END IF;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE TRIGGER "__pgs_immediate_frontiers" AFTER INSERT OR DELETE ON pgstream.pgs_frontiers
    FOR EACH ROW EXECUTE FUNCTION pgstream._immediate_catalog_sync();
CREATE OR REPLACE TRIGGER "__pgs_immediate_mode" AFTER UPDATE OF mode ON pgstream.pgs_stream_tables
    FOR EACH ROW WHEN (OLD.mode IS DISTINCT FROM NEW.mode)
    EXECUTE FUNCTION pgstream._immediate_catalog_sync();
CREATE OR REPLACE TRIGGER "__pgs_immediate_members" AFTER UPDATE OF members ON pgstream.pgs_sources
    FOR EACH ROW WHEN (OLD.members IS DISTINCT FROM NEW.members)
    EXECUTE FUNCTION pgstream._immediate_catalog_sync();

-- The catalog of schema version 7 and older allows the modes DIFFERENTIAL and FULL.
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint c
                WHERE c.conrelid = 'pgstream.pgs_stream_tables'::regclass
                  AND c.conname = 'pgs_stream_tables_mode_check'
                  AND pg_get_constraintdef(c.oid) NOT LIKE '%IMMEDIATE%') THEN
        ALTER TABLE pgstream.pgs_stream_tables DROP CONSTRAINT pgs_stream_tables_mode_check;
        ALTER TABLE pgstream.pgs_stream_tables ADD CONSTRAINT pgs_stream_tables_mode_check
            CHECK (mode IN ('DIFFERENTIAL', 'FULL', 'IMMEDIATE'));
    END IF;
END
$do$;

-- BEFORE each statement on a source (or member) of IMMEDIATE stream tables.
-- SECURITY DEFINER: the writing role needs no rights on pgstream's catalog.
CREATE OR REPLACE FUNCTION pgstream._immediate_before()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $fn$
DECLARE
    sid bigint;
BEGIN
    PERFORM set_config('pgstream.immediate_depth',
                       (coalesce(nullif(current_setting('pgstream.immediate_depth', true), ''), '0')::integer + 1)::text,
                       true);
    -- A REPEATABLE READ or SERIALIZABLE snapshot older than the creation of an
    -- IMMEDIATE reader of this source (or its switch to IMMEDIATE) does not see it:
    -- the row was updated since (see _immediate_sync), and locking it is a
    -- serialization failure. (READ COMMITTED: each statement below sees the
    -- committed catalog.)
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        PERFORM 1 FROM pgstream.pgs_sources s WHERE s.source_oid = TG_ARGV[0]::oid FOR SHARE;
    END IF;
    FOR sid IN SELECT s.id FROM pgstream.pgs_frontiers f
                 JOIN pgstream.pgs_stream_tables s ON s.id = f.st_id
                WHERE f.source_oid = TG_ARGV[0]::oid AND s.mode = 'IMMEDIATE'
                ORDER BY s.id LOOP
        PERFORM pgstream._lock_stream_table(sid);
    END LOOP;
    RETURN NULL;
END $fn$;

-- AFTER each statement on a source (or member) of IMMEDIATE stream tables: see the
-- head of this file.
CREATE OR REPLACE FUNCTION pgstream._immediate_after()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $fn$
DECLARE
    depth integer := coalesce(nullif(current_setting('pgstream.immediate_depth', true), ''), '0')::integer - 1;
    dirty text := coalesce(current_setting('pgstream.immediate_dirty', true), '');
BEGIN
    IF NOT TG_ARGV[0] = ANY (string_to_array(dirty, ',')) THEN
        dirty := CASE WHEN dirty = '' THEN TG_ARGV[0] ELSE dirty || ',' || TG_ARGV[0] END;
    END IF;
    PERFORM set_config('pgstream.immediate_depth', greatest(depth, 0)::text, true);
    IF depth > 0 THEN
        -- An enclosing statement on a source is still running: it refreshes at its end.
        PERFORM set_config('pgstream.immediate_dirty', dirty, true);
        RETURN NULL;
    END IF;
    PERFORM set_config('pgstream.immediate_dirty', '', true);
    PERFORM pgstream._immediate_refresh(string_to_array(dirty, ',')::oid[]);
    RETURN NULL;
END $fn$;

-- Refresh, in the calling transaction, every IMMEDIATE stream table that reads one of
-- the sources `srcs`, upstream first (ids grow downstream: a stream table reads only
-- relations that exist when it is created). A stream table in the ERROR or
-- SUSPENDED state is left alone (pgs_status says why; its readers see its last
-- rows); writes go on: schema drift that no event trigger caught at the DDL puts the
-- stream table in the ERROR state here, with a warning (pgstream._refresh). A refresh
-- that writes a storage table read by another IMMEDIATE stream table fires that
-- table's triggers in turn.
CREATE OR REPLACE FUNCTION pgstream._immediate_refresh(srcs oid[]) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    sid bigint;
BEGIN
    FOR sid IN SELECT DISTINCT s.id FROM pgstream.pgs_frontiers f
                 JOIN pgstream.pgs_stream_tables s ON s.id = f.st_id
                WHERE f.source_oid = ANY (srcs) AND s.mode = 'IMMEDIATE' AND s.status = 'ACTIVE'
                ORDER BY s.id LOOP
        PERFORM pgstream._refresh(sid, true, true);
    END LOOP;
END $fn$;
