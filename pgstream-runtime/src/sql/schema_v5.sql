-- pgstream catalog, schema version 5: plan caching, the no-change fast path and the
-- adaptive switch to a full refresh.
ALTER TABLE pgstream.pgs_stream_tables
    -- The generated refresh function (`"pgstream"."_refresh_<id>"`, taking the window
    -- cap): the differential refresh as static SQL, planned once per session. NULL
    -- for FULL mode and for stream tables created before version 5 (their
    -- differential_refresh_sql is run with EXECUTE).
    ADD COLUMN IF NOT EXISTS refresh_function text,
    -- The adaptive switch: a differential refresh whose window would cost more than
    -- a full refresh runs as a full refresh instead. Until both costs have been
    -- measured (pgs_refresh_stats.full_ms_avg, diff_ms_per_row), "more" means a window
    -- of at least this fraction of the sources' rows (pg_class.reltuples; at least
    -- 1,000 rows). NULL: never switch. pgstream.set_full_refresh_ratio changes it.
    ADD COLUMN IF NOT EXISTS full_refresh_ratio double precision DEFAULT 0.05,
    -- How the query is maintained (Compiled::strategy_summary), shown by pgs_status.
    ADD COLUMN IF NOT EXISTS strategy text;

ALTER TABLE pgstream.pgs_refresh_stats
    -- DIFFERENTIAL, FULL, FULL (adaptive) or NO CHANGES.
    ADD COLUMN IF NOT EXISTS last_strategy text,
    -- Buffer rows in the last refresh's windows (an UPDATE is two), up to the cap.
    ADD COLUMN IF NOT EXISTS last_window_rows bigint,
    ADD COLUMN IF NOT EXISTS differential_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS full_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS adaptive_full_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS no_change_count bigint NOT NULL DEFAULT 0,
    -- The adaptive switch's cost model, learned from this stream table's refreshes:
    -- the duration of a full refresh (moving average), and of a differential one per
    -- window row (moving average over windows of at least 100 rows).
    ADD COLUMN IF NOT EXISTS full_ms_avg double precision,
    ADD COLUMN IF NOT EXISTS diff_ms_per_row double precision;

-- pgs_status gained a column (strategy): its result type changes.
DROP FUNCTION IF EXISTS pgstream.pgs_status();
