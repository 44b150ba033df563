//! Frontiers: the statement that advances every frontier of a stream table to the
//! refresh's snapshot, and the trim of a change buffer below the oldest frontier.

use super::*;
use crate::contract;
use crate::ir::RenderContext;

/// Delete the buffer rows of one source that every consumer's frontier covers: the
/// static form of `pgstream._trim_buffer` (which documents the rule), run by the
/// refresh function after a differential refresh. It first waits for a creation
/// that is adding a consumer of the source (that holds the source's row in
/// `pgs_sources` FOR UPDATE until it commits); the DELETE then sees its frontier.
/// A row whose xid is below the xmin of every consumer's frontier is covered by all
/// of them (and is no consumer's own row: a refresh's xid is at least its snapshot's
/// xmin): that test is one aggregate over the frontiers, computed once, so the rows a
/// source with 10,000 consumers (tenant-style stream tables) has consumed are deleted
/// without scanning the frontiers once per row. The exact test decides the others,
/// against the distinct frontiers only (computed once): the consumers advanced
/// together by `_advance_unaffected` share one snapshot, so a row that one lagging
/// consumer of 10,000 has not seen is tested against a few hundred frontiers, not
/// 10,000 (875 ms → 8 ms for 500 rows and 10,000 frontiers, one lagging).
pub(crate) fn trim_sql(oid: u32) -> String {
    format!(
        "    PERFORM 1 FROM {cat}.\"pgs_sources\" AS s WHERE s.\"source_oid\" = {oid} FOR SHARE;
    WITH d AS MATERIALIZED (SELECT DISTINCT ON (f.\"frontier\"::text, f.\"own_xid\", f.\"own_change\") \
f.\"frontier\", f.\"own_xid\", f.\"own_change\" FROM {cat}.{fr} AS f WHERE f.\"source_oid\" = {oid}) \
DELETE FROM {chg}.{buf} AS b WHERE b.{xid} < (SELECT min(pg_catalog.pg_snapshot_xmin(f.\"frontier\")) \
FROM {cat}.{fr} AS f WHERE f.\"source_oid\" = {oid} HAVING bool_and(f.\"frontier\" IS NOT NULL)) \
OR NOT EXISTS (SELECT 1 FROM d \
WHERE d.\"frontier\" IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(b.{xid}, d.\"frontier\") \
OR (b.{xid} = d.\"own_xid\" AND b.{cid} > COALESCE(d.\"own_change\", -1)));",
        cat = qi(contract::CATALOG_SCHEMA),
        chg = qi(contract::CHANGES_SCHEMA),
        buf = qi(&contract::buffer_table(oid)),
        fr = qi(contract::FRONTIERS_TABLE),
        xid = qi(contract::XID),
        cid = qi(contract::CHANGE_ID),
    )
}

/// Advance every frontier of the stream table to the statement's snapshot. A
/// transaction that wrote source rows before this refresh sees them and applies them
/// here, but its snapshot counts its own xid as uncommitted, so the next window would
/// hold them again: the refresh records its xid and, per source, the highest change
/// id of its own rows it consumed (all of them that it can see), which windows skip.
/// A refresh whose transaction had no xid when it started has no such rows: the
/// caller then sets `pgstream.no_own_rows` to `on`, and the scans of the buffers for
/// them are skipped (their subqueries are init plans, run only when reached).
pub(crate) fn frontier_advance(ctx: &RenderContext) -> String {
    let own = "pg_catalog.pg_current_xact_id_if_assigned()";
    let per_source: Vec<String> = ctx
        .sources
        .iter()
        .map(|b| {
            format!(
                "WHEN {} THEN (SELECT max(c.{}) FROM {}.{} AS c WHERE c.{} = {own})",
                b.oid,
                qi(contract::CHANGE_ID),
                qi(contract::CHANGES_SCHEMA),
                qi(&contract::buffer_table(b.oid)),
                qi(contract::XID)
            )
        })
        .collect();
    format!(
        "UPDATE {}.{} AS f SET \"frontier\" = pg_catalog.pg_current_snapshot(), \"own_xid\" = {own}, \"own_change\" = CASE WHEN pg_catalog.current_setting('pgstream.no_own_rows', true) = 'on' THEN NULL ELSE CASE f.\"source_oid\" {} END END WHERE f.\"st_id\" = {} RETURNING 1",
        qi(contract::CATALOG_SCHEMA),
        qi(contract::FRONTIERS_TABLE),
        per_source.join(" "),
        ctx.st_id
    )
}
