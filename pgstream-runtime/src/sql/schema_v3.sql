-- pgstream catalog, schema version 3: exactly once for a transaction that changes a
-- source and refreshes (or refreshes an upstream and a downstream stream table).
-- Its own change rows are visible to its refresh, but its snapshot counts its own xid
-- as not yet committed, so the frontier alone would hand them to the next refresh
-- again. The refresh records, per source, its transaction and the highest change id
-- of that transaction it consumed; windows skip those rows.
ALTER TABLE pgstream.pgs_frontiers
    ADD COLUMN IF NOT EXISTS own_xid xid8,
    ADD COLUMN IF NOT EXISTS own_change bigint;
