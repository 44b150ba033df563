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
