-- pgstream catalog, schema version 8.

-- ---------------------------------------------------------------------------------
-- Schedules that follow their readers (issue 14, item 3): pgs_status gains the
-- column effective_schedule; its result type changes.
DROP FUNCTION IF EXISTS pgstream.pgs_status();
