-- pgstream catalog, schema version 7.

-- Issue 11 (capture of partitioned sources, helper A): the members of a partitioned
-- source's tree (every level, the source itself excepted) that carry capture
-- triggers writing into its buffer, as pgstream._sync_partitions last saw them. A
-- member created, attached, detached or dropped since is a change of the source's
-- rows that no trigger captured: its readers get a full refresh. NULL for a source
-- that is not partitioned (or not synced yet).
ALTER TABLE pgstream.pgs_sources ADD COLUMN IF NOT EXISTS members oid[];
