-- pgstream catalog, schema version 2: fault handling, schema drift, cascades.
-- Idempotent like version 1.

ALTER TABLE pgstream.pgs_stream_tables
    -- The source columns the defining query uses, as created:
    -- [{"oid": 16384, "table": "public.t", "attnum": 2, "column": "x", "type": "integer"}].
    -- pgstream._drift compares them with the live catalog.
    ADD COLUMN IF NOT EXISTS source_columns jsonb NOT NULL DEFAULT '[]',
    -- Scheduled refreshes that failed in a row; reset by a successful refresh.
    ADD COLUMN IF NOT EXISTS consecutive_failures integer NOT NULL DEFAULT 0,
    -- The scheduler does not retry before this time (exponential backoff).
    ADD COLUMN IF NOT EXISTS next_retry_at timestamptz,
    -- Why the status is not ACTIVE (ERROR: schema drift; SUSPENDED: the last failure).
    ADD COLUMN IF NOT EXISTS status_reason text;

-- drop_stream_table gained a `cascade` argument: remove the one-argument version so
-- that calls with one argument resolve to the new function.
DROP FUNCTION IF EXISTS pgstream.drop_stream_table(text);
