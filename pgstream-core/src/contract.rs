//! Names shared by the compiler's SQL and the runtime's DDL. The compiler renders
//! refresh statements that read these objects; the runtime creates them.
//!
//! - `pgstream.pgs_frontiers (st_id bigint, source_oid oid, frontier pg_snapshot,
//!   own_xid xid8, own_change bigint)`: one row per (stream table, source table);
//!   `frontier` is the snapshot of the last refresh (NULL before the first one);
//!   `own_xid`/`own_change` are the last refresh's transaction and the highest change
//!   id of that transaction it consumed from this source (its own rows, which its
//!   snapshot does not count as committed). The window of a refresh is the buffer
//!   rows not visible in `frontier`, less the rows of `own_xid` up to `own_change`.
//! - `pgstream_changes.changes_<source oid>`: the change buffer of a source table:
//!   [`CHANGE_ID`] `bigint generated always as identity` (the capture draws one
//!   value per statement and writes it explicitly into all the statement's rows), [`XID`] `xid8 not null
//!   default pg_current_xact_id()`, [`WEIGHT`] `smallint not null` (+1 for a new
//!   image, −1 for an old image; an UPDATE writes both), then every column of the
//!   source with its name and type.

/// Schema of the catalog.
pub const CATALOG_SCHEMA: &str = "pgstream";
/// Schema of the change buffers.
pub const CHANGES_SCHEMA: &str = "pgstream_changes";
/// Table of frontiers.
pub const FRONTIERS_TABLE: &str = "pgs_frontiers";
/// Buffer column: capture order.
pub const CHANGE_ID: &str = "__pgs_change_id";
/// Buffer column: top-level transaction id of the writer.
pub const XID: &str = "__pgs_xid";
/// Buffer column: +1 (new image) or −1 (old image).
pub const WEIGHT: &str = "__pgs_w";
/// Hidden storage column: hash of the row's identity.
pub const ROW_ID: &str = "__pgs_row_id";

/// The name of a source table's change buffer.
pub fn buffer_table(source_oid: u32) -> String {
    format!("changes_{source_oid}")
}

/// The name (in [`CATALOG_SCHEMA`]) of a stream table's generated refresh function,
/// `_refresh_<id>(cap bigint, OUT rows_changed bigint, OUT window_rows bigint, OUT
/// strategy text, OUT trimmed boolean)`: it
/// counts the rows in the windows (up to `cap`) and, when there are some but fewer
/// than `cap`, runs the differential refresh as a static statement, whose plan each
/// session keeps, then trims the sources' buffers (`trimmed`). `rows_changed` is
/// NULL when it did not refresh (no changes, or `cap` reached: a full refresh is
/// cheaper); `strategy` names a special path taken (the semi-naive one of a
/// recursive query), else NULL. Functions generated before the trims were moved in
/// have no `trimmed` column; the caller trims for them.
pub fn refresh_function(st_id: i64) -> String {
    format!("_refresh_{st_id}")
}

/// The name (in [`CATALOG_SCHEMA`]) of a stream table's stage table, `_stage_<id>`:
/// the aggregate under a top-level `ORDER BY ... LIMIT`, all its groups, kept by the
/// aggregate's delta rules; the stream table holds its first rows. Created with the
/// storage table (`Artifacts::storage_ddl`), written only by the stream table's
/// refreshes, dropped with it (`pgstream.drop_stream_table`).
pub fn stage_table(st_id: i64) -> String {
    format!("_stage_{st_id}")
}

/// The name (in [`CATALOG_SCHEMA`]) of the state table of a stream table's one-row
/// aggregate (an uncorrelated `count`, `sum` or `avg` subquery, leaf `leaf` of the
/// compiled query), `_scalar_<id>_<leaf>`: one row, the running counts and sums its
/// value follows from, so that a refresh reads the changes instead of the table.
/// Created with the storage table (`Artifacts::storage_ddl`), stored by its full
/// refresh, updated by every differential refresh in the same statement, dropped with
/// the stream table (`pgstream.drop_stream_table`).
pub fn scalar_state_table(st_id: i64, leaf: usize) -> String {
    format!("_scalar_{st_id}_{leaf}")
}
