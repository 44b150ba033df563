-- Requests from SQL. Creating a stream table needs the compiler, which lives in the
-- application: create_stream_table and alter_stream_table record a request in
-- pgstream.pgs_requests and notify the running runtimes (channel pgstream_requests,
-- delivered at commit); one of them carries it out (pgstream-runtime's requests.rs)
-- and records the outcome, which wait_for_stream_table waits for.

-- Whether a pgstream runtime (an application, or `pgstream run`) is running on this
-- database: each holds a shared advisory lock (class {{RUNTIME_LOCK_CLASS}}, key 0) on its
-- listening connection.
CREATE OR REPLACE FUNCTION pgstream._runtime_running() RETURNS boolean LANGUAGE sql STABLE AS $fn$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted
                      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                         WHERE d.datname = pg_catalog.current_database())
                      AND l.classid = {{RUNTIME_LOCK_CLASS}} AND l.objid = 0 AND l.objsubid = 2)
$fn$;

-- Row trigger on pgs_requests: a request is made by the role that inserts it, and
-- starts pending. Not SECURITY DEFINER: current_user is the inserting role.
CREATE OR REPLACE FUNCTION pgstream._request_defaults() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.requested_by := current_user;
    NEW.requested_at := now();
    NEW.state := 'pending';
    NEW.message := NULL;
    NEW.hint := NULL;
    NEW.processed_at := NULL;
    NEW.processed_by := NULL;
    RETURN NEW;
END $fn$;

CREATE OR REPLACE TRIGGER "__pgs_request_defaults" BEFORE INSERT ON pgstream.pgs_requests
    FOR EACH ROW EXECUTE FUNCTION pgstream._request_defaults();

-- Record a request and wake the runtimes. Returns the request's id.
CREATE OR REPLACE FUNCTION pgstream._request(kind text, name text, query text,
                                             schedule text, refresh_mode text)
RETURNS bigint LANGUAGE plpgsql AS $fn$
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
END $fn$;

-- Create a stream table from SQL: a running runtime compiles the query against the
-- live schema and creates it after this transaction commits, exactly as `pgstream
-- create` would; pgstream.wait_for_stream_table(name) waits for it (and raises the
-- compiler's error). The requesting role must be able to read every source and to
-- create tables in the target schema; it is granted SELECT on the stream table.
CREATE OR REPLACE FUNCTION pgstream.create_stream_table(name text, query text,
                                                        schedule text DEFAULT '1m',
                                                        refresh_mode text DEFAULT 'DIFFERENTIAL')
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pgstream._request('create', name, query, coalesce(schedule, '1m'),
                              coalesce(refresh_mode, 'DIFFERENTIAL'));
END $fn$;

-- Change the schedule and/or the refresh mode of a stream table (NULL: unchanged),
-- through a running runtime like create_stream_table. A mode change rebuilds the
-- stream table with the new mode in one transaction.
CREATE OR REPLACE FUNCTION pgstream.alter_stream_table(name text, schedule text DEFAULT NULL,
                                                       refresh_mode text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF schedule IS NULL AND refresh_mode IS NULL THEN
        RAISE EXCEPTION 'pgstream: alter_stream_table(%) changes nothing: give schedule => or refresh_mode =>', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pgstream._request('alter', name, NULL, schedule, refresh_mode);
END $fn$;

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
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pgstream._request('replace', name, query, schedule, refresh_mode);
END $fn$;

-- Wait until the last request for stream table `name` is carried out: returns when
-- it is (the stream table is created and populated, or altered); raises the
-- runtime's error (SQLSTATE PGS02, with the compiler's diagnostic) when it failed;
-- raises after `timeout`, saying whether any runtime is running.
CREATE OR REPLACE FUNCTION pgstream.wait_for_stream_table(name text, timeout interval DEFAULT '30 seconds')
RETURNS void LANGUAGE plpgsql AS $fn$
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
END $fn$;

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
CREATE OR REPLACE FUNCTION pgstream._guard_storage() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF coalesce(current_setting('pgstream.refreshing', true), '') <> 'on' THEN
        RAISE EXCEPTION 'cannot % stream table %.%: it is maintained by pgstream', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Write to its source tables and refresh it, or drop it with pgstream.drop_stream_table.';
    END IF;
    RETURN NULL;
END $fn$;

-- Set the fraction of the sources' rows from which a differential refresh runs as a
-- full refresh instead (NULL: never). See pgs_stream_tables.full_refresh_ratio.
CREATE OR REPLACE FUNCTION pgstream.set_full_refresh_ratio(name text, ratio double precision)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    -- NaN and Infinity compare greater than 0 in PostgreSQL: excluded by name.
    IF ratio IS NOT NULL AND (NOT (ratio > 0) OR ratio IN ('NaN', 'Infinity')) THEN
        RAISE EXCEPTION 'pgstream: full refresh ratio must be a finite number greater than 0 (or NULL: never), not %', ratio
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE pgstream.pgs_stream_tables s SET full_refresh_ratio = ratio
     WHERE s.id = pgstream._resolve(name);
END $fn$;

