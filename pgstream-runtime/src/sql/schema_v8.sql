-- pgstream catalog, schema version 8.

-- Change filters (pgstream-core's relevance.rs): per stream table and source, a
-- condition that every change able to alter the stream table satisfies (SQL over the
-- buffer row `b` and this row's `change_args`, as `f`), or NULL when any change may.
-- The scheduler advances the frontiers of a stream table whose windows hold only
-- changes that fail it, without a refresh (pgstream._advance_unaffected).
ALTER TABLE pgstream.pgs_frontiers ADD COLUMN IF NOT EXISTS change_filter text;
ALTER TABLE pgstream.pgs_frontiers ADD COLUMN IF NOT EXISTS change_args text[];
-- The scheduler rewrites the frontiers of every unaffected stream table at each tick
-- with changes: room on each page lets those be HOT updates (no index entries).
ALTER TABLE pgstream.pgs_frontiers SET (fillfactor = 50);
