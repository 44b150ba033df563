-- pgstream catalog, schema version 7.

-- ---------------------------------------------------------------------------------
-- Requests from SQL (issue 17): pgstream.create_stream_table and
-- pgstream.alter_stream_table record a request here and notify the running runtimes
-- (channel `pgstream_requests`, delivered at commit); one runtime compiles and
-- carries it out (pgstream-runtime's requests.rs), and records the outcome. A
-- request made in a transaction that rolls back never existed.
CREATE TABLE IF NOT EXISTS pgstream.pgs_requests (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('create', 'alter')),
    -- The stream table's name as given (`name` or `schema.name`).
    name          text NOT NULL,
    query         text,
    schedule      text,
    refresh_mode  text,
    -- The role that made the request: set by a trigger to current_user, whatever the
    -- INSERT says, so a role cannot ask in another role's name.
    requested_by  name NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    -- pending, then created (kind create), altered (kind alter) or failed.
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'created', 'altered', 'failed')),
    -- A failure's full message (the compiler's diagnostic, with the query quoted).
    message       text,
    hint          text,
    processed_at  timestamptz,
    -- `application_name` and backend pid of the runtime that processed it.
    processed_by  text
);
CREATE INDEX IF NOT EXISTS pgs_requests_pending ON pgstream.pgs_requests (id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS pgs_requests_name ON pgstream.pgs_requests (name, id);

-- The role that requested a stream table from SQL (NULL: created from Rust or the
-- command line). It may alter it through the SQL API and was granted SELECT on it.
ALTER TABLE pgstream.pgs_stream_tables ADD COLUMN IF NOT EXISTS requested_by name;

-- Any role with USAGE on schema pgstream may request; what it may request is checked
-- by the runtime against the requesting role's own privileges (SELECT on every
-- source, CREATE on the target schema; see requests.rs and docs/SECURITY.md).
GRANT SELECT, INSERT ON pgstream.pgs_requests TO PUBLIC;
GRANT USAGE ON SEQUENCE pgstream.pgs_requests_id_seq TO PUBLIC;

-- ---------------------------------------------------------------------------------
-- Issue 11, item 7 (helper C): the settings that change what a query computes
-- (TimeZone, DateStyle, ...; see pgstream._result_settings), recorded at creation and
-- pinned by every refresh. Stream tables created before get the values a new session
-- gets (pg_settings.reset_val) when the functions are installed (install.rs).
ALTER TABLE pgstream.pgs_stream_tables ADD COLUMN IF NOT EXISTS settings jsonb;

-- Issue 11, item 10 (helper C): NaN and Infinity were accepted as full refresh
-- ratios, and every refresh then failed. NaN becomes the default, Infinity "never".
UPDATE pgstream.pgs_stream_tables SET full_refresh_ratio = 0.05
 WHERE full_refresh_ratio = 'NaN'::float8;
UPDATE pgstream.pgs_stream_tables SET full_refresh_ratio = NULL
 WHERE full_refresh_ratio IN ('Infinity'::float8, '-Infinity'::float8);

-- Issue 11, item 7 (helper C): a request from SQL records the requesting session's
-- settings; the runtime creates the stream table with them.
ALTER TABLE pgstream.pgs_requests ADD COLUMN IF NOT EXISTS settings jsonb;

-- ---------------------------------------------------------------------------------
-- Issue 11 (capture of partitioned sources, helper A): the members of a partitioned
-- source's tree (every level, the source itself excepted) that carry capture
-- triggers writing into its buffer, as pgstream._sync_partitions last saw them. A
-- member created, attached, detached or dropped since is a change of the source's
-- rows that no trigger captured: its readers get a full refresh. NULL for a source
-- that is not partitioned (or not synced yet).
ALTER TABLE pgstream.pgs_sources ADD COLUMN IF NOT EXISTS members oid[];

-- ---------------------------------------------------------------------------------
-- Issue 11, item 9 (helper B): sources followed by oid. The name by which each stream
-- table's stored statements read each source (schema-qualified, as compiled):
-- pgstream._drift_sources reports a source renamed, moved, dropped or replaced by
-- another relation of that name, and refreshes lock each source by this name before
-- the check, so no stored statement resolves the name to another relation.
ALTER TABLE pgstream.pgs_frontiers
    ADD COLUMN IF NOT EXISTS source_schema text,
    ADD COLUMN IF NOT EXISTS source_name text;
-- Stream tables created before version 7: the name recorded when the source's capture
-- was installed (the name their statements were compiled with, unless the source was
-- renamed before another stream table over it was created: that one reports drift).
UPDATE pgstream.pgs_frontiers f
   SET source_schema = s.schema_name, source_name = s.table_name
  FROM pgstream.pgs_sources s
 WHERE s.source_oid = f.source_oid AND f.source_schema IS NULL;

-- ---------------------------------------------------------------------------------
-- replace (issue 16): a stream table's definition replaced by another (the builder's
-- `replace_changed`, `pgstream replace`, pgstream.replace_stream_table). Each
-- definition a stream table has had and no longer has is recorded here; a runtime
-- that registers one of them (an older application version in a rolling deploy)
-- leaves the stream table alone with a WARN instead of replacing it back or failing.
-- An explicit replace back to such a definition removes it from this list.
CREATE TABLE IF NOT EXISTS pgstream.pgs_superseded (
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    mode         text NOT NULL,
    query_md5    text NOT NULL,
    query        text NOT NULL,
    replaced_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name, mode, query_md5)
);
-- Requests from SQL of kind `replace` (pgstream.replace_stream_table), state `replaced`.
ALTER TABLE pgstream.pgs_requests DROP CONSTRAINT IF EXISTS pgs_requests_kind_check;
ALTER TABLE pgstream.pgs_requests ADD CONSTRAINT pgs_requests_kind_check
    CHECK (kind IN ('create', 'alter', 'replace'));
ALTER TABLE pgstream.pgs_requests DROP CONSTRAINT IF EXISTS pgs_requests_state_check;
ALTER TABLE pgstream.pgs_requests ADD CONSTRAINT pgs_requests_state_check
    CHECK (state IN ('pending', 'created', 'altered', 'replaced', 'failed'));
