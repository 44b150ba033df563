-- pgstream catalog, schema version 6: the views a stream table's query reads.
-- A view is expanded into its body when the stream table is compiled, so the stream
-- table maintains the body as it was then; pgstream._drift compares the recorded
-- definitions with the live views (redefined, renamed or dropped: the ERROR state).
CREATE TABLE IF NOT EXISTS pgstream.pgs_views (
    st_id        bigint NOT NULL REFERENCES pgstream.pgs_stream_tables (id) ON DELETE CASCADE,
    view_oid     oid NOT NULL,
    -- Order of first appearance in the expanded query (a view before those it reads).
    ord          integer NOT NULL,
    -- The view's name when the stream table was created (the query names it so).
    schema_name  text NOT NULL,
    view_name    text NOT NULL,
    -- pg_get_viewdef(view_oid) under search_path pg_catalog, pg_temp: the body that
    -- was compiled.
    definition   text NOT NULL,
    -- The view's column names (ALTER VIEW ... RENAME COLUMN changes no rule).
    columns      text[] NOT NULL,
    -- xmin of the view's _RETURN rule in pg_rewrite: while it is the same, the rule
    -- was not replaced and the definition is not compared (pg_get_viewdef costs tens
    -- of microseconds per view and refresh). The DDL event trigger resets it after a
    -- CREATE OR REPLACE VIEW with the same definition.
    rule_xmin    xid NOT NULL,
    PRIMARY KEY (st_id, view_oid)
);

ALTER TABLE pgstream.pgs_stream_tables
    -- Whether pgs_views holds the views of this stream table. Stream tables created
    -- before version 6 have false: start-up records their views from the stored query
    -- (with the definitions of that moment) and sets it.
    ADD COLUMN IF NOT EXISTS views_recorded boolean NOT NULL DEFAULT false;
