-- pgstream catalog, schema version 1.
-- Run by pgstream_runtime::install inside one transaction that holds the install
-- advisory lock; every statement is idempotent so a re-run is harmless.

CREATE TABLE IF NOT EXISTS pgstream.pgs_stream_tables (
    id                        bigserial PRIMARY KEY,
    schema_name               text NOT NULL,
    table_name                text NOT NULL,
    query                     text NOT NULL,
    mode                      text NOT NULL CHECK (mode IN ('DIFFERENTIAL', 'FULL')),
    schedule                  text NOT NULL,
    schedule_interval         interval NOT NULL,
    full_refresh_sql          text NOT NULL,
    differential_refresh_sql  text,
    needs_full                boolean NOT NULL DEFAULT false,
    status                    text NOT NULL DEFAULT 'ACTIVE',
    created_at                timestamptz NOT NULL DEFAULT now(),
    last_refresh_at           timestamptz,
    data_timestamp            timestamptz,
    UNIQUE (schema_name, table_name)
);

-- Capture registry: one row per source table that has a change buffer and triggers.
-- Creation locks the row FOR UPDATE and buffer trimming FOR SHARE, so a trim never
-- deletes rows that a stream table being created (whose frontier is not committed
-- yet) will need.
CREATE TABLE IF NOT EXISTS pgstream.pgs_sources (
    source_oid   oid PRIMARY KEY,
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS pgstream.pgs_frontiers (
    st_id       bigint NOT NULL REFERENCES pgstream.pgs_stream_tables (id) ON DELETE CASCADE,
    source_oid  oid NOT NULL REFERENCES pgstream.pgs_sources (source_oid),
    frontier    pg_snapshot,
    PRIMARY KEY (st_id, source_oid)
);
CREATE INDEX IF NOT EXISTS pgs_frontiers_source_idx ON pgstream.pgs_frontiers (source_oid);

CREATE TABLE IF NOT EXISTS pgstream.pgs_refresh_stats (
    st_id          bigint PRIMARY KEY REFERENCES pgstream.pgs_stream_tables (id) ON DELETE CASCADE,
    refresh_count  bigint NOT NULL DEFAULT 0,
    total_ms       double precision NOT NULL DEFAULT 0,
    min_ms         double precision,
    max_ms         double precision,
    last_ms        double precision,
    rows_affected  bigint NOT NULL DEFAULT 0,
    last_rows      bigint,
    error_count    bigint NOT NULL DEFAULT 0,
    last_error     text,
    last_error_at  timestamptz
);
