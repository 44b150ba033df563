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
CREATE OR REPLACE FUNCTION pgstream._feed_capture() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $fn$
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
END $fn$;

-- Delete the versions of a feed that every subscriber has consumed, and those older
-- than the feed's retention (a subscriber behind them has lagged: trimmed_to says so).
-- Returns the versions deleted up to (trimmed_to).
CREATE OR REPLACE FUNCTION pgstream._trim_feed(sid bigint) RETURNS bigint LANGUAGE plpgsql AS $fn$
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
END $fn$;

-- A feed deleted (unsubscribe, or its stream table dropped: the catalog row's
-- deletion cascades): its log rows go too (they have no foreign key).
CREATE OR REPLACE FUNCTION pgstream._feed_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM pgstream.pgs_feed_log l WHERE l.st_id = OLD.st_id;
    RETURN NULL;
END $fn$;

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
RETURNS bigint LANGUAGE plpgsql AS $fn$
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
END $fn$;

-- Remove a subscriber (false when there was none); with the last one the feed goes
-- (its triggers and rows): nothing is logged while nobody subscribes.
CREATE OR REPLACE FUNCTION pgstream.unsubscribe(name text, subscriber text)
RETURNS boolean LANGUAGE plpgsql AS $fn$
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
END $fn$;

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
