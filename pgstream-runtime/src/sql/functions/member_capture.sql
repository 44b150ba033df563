-- The four capture triggers of a relation: `rel` is a source, or a member of a
-- partitioned source `src`'s tree, whose statements fire only its own statement
-- triggers; each writes into the buffer of `src`. Same DDL as create/capture.rs's
-- trigger_ddl, for the members that the runtime cannot know in advance.
CREATE OR REPLACE FUNCTION pgstream._create_capture_triggers(rel oid, src oid)
RETURNS void LANGUAGE plpgsql AS $fn$
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
END $fn$;

CREATE OR REPLACE FUNCTION pgstream._drop_capture_triggers(rel oid) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    trig text;
BEGIN
    FOREACH trig IN ARRAY ARRAY['__pgs_capture_ins', '__pgs_capture_upd',
                                '__pgs_capture_del', '__pgs_capture_trunc'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trig, rel::regclass);
    END LOOP;
END $fn$;

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
CREATE OR REPLACE FUNCTION pgstream._sync_partitions(src oid) RETURNS boolean LANGUAGE plpgsql AS $fn$
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
END $fn$;

-- Before a differential refresh: the partitioned sources' trees synced (see
-- _sync_partitions; `changed` when one changed: the refresh is then a full one),
-- and `drift` when a source has inheritance children or became a partition or an
-- inheritance child: rows written through another relation of its hierarchy are
-- not captured (such a source is refused at creation).
CREATE OR REPLACE FUNCTION pgstream._sync_sources(st_id bigint, OUT drift text, OUT changed boolean)
LANGUAGE plpgsql AS $fn$
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
END $fn$;

-- Remove the change capture of a source: triggers, trigger function, buffer.
CREATE OR REPLACE FUNCTION pgstream._drop_capture(src oid) RETURNS void LANGUAGE plpgsql AS $fn$
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
END $fn$;

