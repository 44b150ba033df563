-- Sources followed by oid: NULL when every source of the stream table (pgs_frontiers)
-- is still an ordinary or partitioned table under the name its statements read it by
-- (recorded at creation); else a message naming the source: renamed, moved to another
-- schema, dropped, or replaced by another relation of that name. Frontiers without a
-- recorded name (written by an older release) are checked for existence only.
-- PL/pgSQL, not SQL: its plan is kept by the session (it runs at every refresh).
CREATE OR REPLACE FUNCTION pgstream._drift_sources(st_id bigint) RETURNS text LANGUAGE plpgsql STABLE AS $fn$
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
END $fn$;

-- Schema drift of one stream table: NULL when every source column its query uses
-- (pgs_stream_tables.source_columns, recorded at creation) still exists with the same
-- name and type, and every view it reads (pgs_views, recorded at creation) still
-- exists with the same name and definition; else a message naming the table and the
-- column, or the view. quote_all_identifiers is pinned: pg_get_viewdef's text (the
-- recorded definition) depends on it.
CREATE OR REPLACE FUNCTION pgstream._drift(st_id bigint)
RETURNS text LANGUAGE plpgsql STABLE SET quote_all_identifiers = off AS $fn$
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
END $fn$;

-- Citus (distributed PostgreSQL): NULL unless `rel` is a Citus table (a row of
-- pg_dist_partition: distributed, single-shard, reference or Citus local), else the
-- reason pgstream cannot maintain a stream table over it: its rows live in shards,
-- whose writes fire the shards' triggers, not the table's, so nothing would be
-- captured (docs/SCALING.md, step 0). NULL at once where Citus is not installed (the
-- catalog table is read through EXECUTE: it does not exist there).
CREATE OR REPLACE FUNCTION pgstream._citus_refusal(rel oid) RETURNS text LANGUAGE plpgsql STABLE AS $fn$
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
END $fn$;

-- A capture trigger fired on a relation that is neither its source nor a member of
-- the source's partition tree. Normally a detached partition whose triggers the next
-- sync drops (nothing to do). But Citus copies a table's triggers to its shards when
-- the table is distributed: the writes then fire here, on the shards, and would be
-- lost silently; the stream tables that read the source go to the ERROR state, in
-- the writer's transaction, which never fails because of this.
CREATE OR REPLACE FUNCTION pgstream._capture_stray(src oid) RETURNS void LANGUAGE plpgsql AS $fn$
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
END $fn$;

-- The hint of a drift error (_drift's message): how to recover.
CREATE OR REPLACE FUNCTION pgstream._drift_hint(msg text) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
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

-- Put a stream table in the ERROR state with `reason` (a drift message) as its
-- status_reason; nothing when `reason` is NULL or the stream table is in the ERROR
-- state already (its first reason stays).
CREATE OR REPLACE FUNCTION pgstream._set_error(st_id bigint, reason text) RETURNS void LANGUAGE sql AS $fn$
    UPDATE pgstream.pgs_stream_tables s SET status = 'ERROR', status_reason = _set_error.reason
     WHERE s.id = _set_error.st_id AND _set_error.reason IS NOT NULL
       AND s.status IS DISTINCT FROM 'ERROR'
$fn$;

