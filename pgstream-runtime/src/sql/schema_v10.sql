-- pgstream catalog, schema version 10: partial indexes on the rare mode and schedule
-- that creating a stream table asks about. `_immediate_sync` (is any IMMEDIATE stream
-- table reading this source?) and `_read_on_commit` (is any `on commit` stream table
-- reading it?) started from the source's frontiers, one per consumer: with thousands
-- of tenant stream tables over one source, each creation read them all (about 4 ms
-- at 5,000). They now start from these indexes, which hold only the few such rows.
CREATE INDEX IF NOT EXISTS pgs_stream_tables_immediate_idx
    ON pgstream.pgs_stream_tables (id) WHERE mode = 'IMMEDIATE';
CREATE INDEX IF NOT EXISTS pgs_stream_tables_on_commit_idx
    ON pgstream.pgs_stream_tables (id) WHERE schedule = 'on commit';

-- A stream table's catalog row holds its SQL (the query, the full and differential
-- refresh statements, its source columns and settings): about 3 KB stored inline,
-- two rows a page, so every scan of the catalog (pgs_status, the scheduler's
-- passes) read 33 MB at 10,000 stream tables. Rows are now cut to 512 bytes by
-- moving the longest values to the TOAST table (4 MB at 10,000; pgs_status 31 ms ->
-- 21 ms); the paths that read the SQL (a full refresh, explain) fetch it from there.
-- The UPDATE rewrites existing rows so; the file itself shrinks only with
-- `VACUUM FULL pgstream.pgs_stream_tables` (which cannot run in this transaction).
ALTER TABLE pgstream.pgs_stream_tables SET (toast_tuple_target = 512);
UPDATE pgstream.pgs_stream_tables SET query = query;
