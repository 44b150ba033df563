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

-- ---------------------------------------------------------------------------------
-- Schedules that follow their readers (issue 14, item 3): pgs_status gains the
-- column effective_schedule; its result type changes.
DROP FUNCTION IF EXISTS pgstream.pgs_status();

-- ---------------------------------------------------------------------------------
-- Change subscriptions (issue 14, item 4; subscribe.rs). A stream table has a change
-- feed while it has subscribers: statement triggers on its storage table
-- (pgstream._feed_capture) write each refresh's inserted, deleted and updated rows
-- into pgs_feed_log under a version number, one per refresh transaction that changed
-- rows, gapless and in commit order (refreshes of one stream table are serialised,
-- and the version is drawn by updating the pgs_feeds row in the refresh's
-- transaction). Each subscriber stores the last version it consumed.

-- One row per stream table with a feed.
CREATE TABLE IF NOT EXISTS pgstream.pgs_feeds (
    st_id        bigint PRIMARY KEY REFERENCES pgstream.pgs_stream_tables (id) ON DELETE CASCADE,
    -- The last version written (0: none yet).
    version      bigint NOT NULL DEFAULT 0,
    -- The transaction that wrote it: later statements of that refresh add to it.
    version_xid  xid8,
    -- Versions up to this one are deleted: a subscriber behind it has lagged.
    trimmed_to   bigint NOT NULL DEFAULT 0,
    -- Versions older than this are deleted even when a subscriber has not read them.
    retention    interval NOT NULL DEFAULT '1 day',
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per version: when its refresh ran, how many changes it holds, and the
-- frontier it reached (each source's name and snapshot).
CREATE TABLE IF NOT EXISTS pgstream.pgs_feed_versions (
    st_id         bigint NOT NULL REFERENCES pgstream.pgs_feeds (st_id) ON DELETE CASCADE,
    version       bigint NOT NULL,
    refreshed_at  timestamptz NOT NULL,
    changes       bigint NOT NULL,
    sources       text[] NOT NULL,
    frontiers     text[] NOT NULL,
    PRIMARY KEY (st_id, version)
);

-- The changes: op 'I' (inserted), 'D' (deleted), 'O' then 'N' (an updated row's old
-- and new values, adjacent), the row's visible columns as jsonb, in order (ord)
-- within the version. No foreign key (a check per row written): trims and
-- _drop_feed delete the rows.
CREATE TABLE IF NOT EXISTS pgstream.pgs_feed_log (
    st_id    bigint NOT NULL,
    version  bigint NOT NULL,
    ord      integer NOT NULL,
    op       "char" NOT NULL,
    "row"    jsonb NOT NULL,
    PRIMARY KEY (st_id, version, ord)
);

-- Subscribers by name; position is the last version consumed (acknowledged).
CREATE TABLE IF NOT EXISTS pgstream.pgs_subscribers (
    st_id       bigint NOT NULL REFERENCES pgstream.pgs_feeds (st_id) ON DELETE CASCADE,
    name        text NOT NULL,
    position    bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    acked_at    timestamptz,
    PRIMARY KEY (st_id, name)
);
