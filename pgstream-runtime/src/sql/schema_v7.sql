-- Issue 11, item 7 (helper C): the settings that change what a query computes
-- (TimeZone, DateStyle, ...; see pgstream._result_settings), recorded at creation and
-- pinned by every refresh. Stream tables created before get the values a new session
-- gets (pg_settings.reset_val) when the functions are installed (install.rs).
ALTER TABLE pgstream.pgs_stream_tables ADD COLUMN IF NOT EXISTS settings jsonb;

-- Issue 11, item 10 (helper C): NaN and Infinity were accepted as full refresh
-- ratios, and every refresh then failed. NaN becomes the default, Infinity "never".
UPDATE pgstream.pgs_stream_tables SET full_refresh_ratio = 0.05
 WHERE full_refresh_ratio = 'NaN'::float8;
UPDATE pgstream.pgs_stream_tables SET full_refresh_ratio = NULL
 WHERE full_refresh_ratio IN ('Infinity'::float8, '-Infinity'::float8);
