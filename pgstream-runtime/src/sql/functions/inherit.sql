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
LANGUAGE sql STABLE AS $fn$
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
-- Without any `on commit` stream table (the common case, found in the partial index
-- of schema v10) the consumers of `src` are not read: a source with thousands of
-- them would otherwise cost every creation over it a walk over all.
CREATE OR REPLACE FUNCTION pgstream._read_on_commit(src oid) RETURNS boolean LANGUAGE sql STABLE AS $fn$
    SELECT EXISTS (SELECT 1 FROM pgstream.pgs_stream_tables s WHERE s.schedule = 'on commit')
       AND (WITH RECURSIVE r (id, depth) AS (
        SELECT f.st_id, 0 FROM pgstream.pgs_frontiers f WHERE f.source_oid = src
        UNION ALL
        SELECT f.st_id, r.depth + 1
          FROM r JOIN pgstream.pgs_stream_tables p ON p.id = r.id AND p.schedule = 'inherit'
          JOIN pgstream.pgs_frontiers f
            ON f.source_oid = to_regclass(format('%I.%I', p.schema_name, p.table_name))::oid
         WHERE r.depth < 64)
    SELECT EXISTS (SELECT 1 FROM r JOIN pgstream.pgs_stream_tables s ON s.id = r.id
                    WHERE s.schedule = 'on commit'))
$fn$;

-- Rebuild the capture function of `src` and, when `src` is the storage table of an
-- `inherit` stream table, those of its sources, recursively: whether they notify
-- depends on the on-commit readers above them (_read_on_commit).
CREATE OR REPLACE FUNCTION pgstream._on_commit_resync(src oid, depth integer DEFAULT 0)
RETURNS void LANGUAGE plpgsql AS $fn$
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
END $fn$;

