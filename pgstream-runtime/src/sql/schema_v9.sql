-- pgstream catalog, schema version 9: the kind of each stream table's schedule is
-- stored, written with the schedule (schedule.rs's update_schedule and the insert at
-- creation), instead of being guessed from its text by the scheduler. Rows of
-- earlier versions get the kind of their schedule text, which pgstream always wrote
-- as Schedule's Display prints it: `on commit`, `inherit`, a cron expression (it
-- starts with `@` or has fields separated by spaces), else a duration (`30s`).
ALTER TABLE pgstream.pgs_stream_tables ADD COLUMN IF NOT EXISTS schedule_kind text;
UPDATE pgstream.pgs_stream_tables
   SET schedule_kind = CASE WHEN schedule = 'on commit' THEN 'on commit'
                            WHEN schedule = 'inherit' THEN 'inherit'
                            WHEN schedule LIKE '@%' OR schedule LIKE '% %' THEN 'cron'
                            ELSE 'duration' END
 WHERE schedule_kind IS NULL;
ALTER TABLE pgstream.pgs_stream_tables ALTER COLUMN schedule_kind SET NOT NULL;
ALTER TABLE pgstream.pgs_stream_tables
    DROP CONSTRAINT IF EXISTS pgs_stream_tables_schedule_kind_check;
ALTER TABLE pgstream.pgs_stream_tables
    ADD CONSTRAINT pgs_stream_tables_schedule_kind_check
    CHECK (schedule_kind IN ('duration', 'cron', 'on commit', 'inherit'));
