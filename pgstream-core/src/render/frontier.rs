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
/// 10,000 (875 ms → 8 ms for 500 rows and 10,000 frontiers, one lagging). And the
/// exact test runs only on rows below the xmax of every frontier (a row at or above
/// one frontier's xmax is invisible to it): while one consumer has not refreshed
/// since the changes (stream tables over one source refresh one after the other),
/// no row qualifies, and the 22 refreshes of TPC-H's queries after a round of
/// changes no longer test every buffered row against every frontier (0.4–1.4 ms
/// each at scale 0.1). A NULL frontier (never refreshed) makes the xmax bound NULL:
/// nothing is deleted.
pub(crate) fn trim_sql(oid: u32) -> Sql {
    // {0} the catalog schema, {1} the source's oid, {2} the frontiers table, {3} the
    // change buffers' schema, {4} the buffer, {5} its xid column, {6} its change id.
    sql!(
        "    PERFORM 1 FROM {0}.\"pgs_sources\" AS s WHERE s.\"source_oid\" = {1} FOR SHARE;
    WITH d AS MATERIALIZED (SELECT DISTINCT ON (f.\"frontier\"::text, f.\"own_xid\", f.\"own_change\") \
f.\"frontier\", f.\"own_xid\", f.\"own_change\" FROM {0}.{2} AS f WHERE f.\"source_oid\" = {1}) \
DELETE FROM {3}.{4} AS b WHERE b.{5} < (SELECT min(pg_catalog.pg_snapshot_xmax(f.\"frontier\")) \
FROM {0}.{2} AS f WHERE f.\"source_oid\" = {1} HAVING bool_and(f.\"frontier\" IS NOT NULL)) \
AND (b.{5} < (SELECT min(pg_catalog.pg_snapshot_xmin(f.\"frontier\")) \
FROM {0}.{2} AS f WHERE f.\"source_oid\" = {1}) \
OR NOT EXISTS (SELECT 1 FROM d \
WHERE NOT pg_catalog.pg_visible_in_snapshot(b.{5}, d.\"frontier\") \
OR (b.{5} = d.\"own_xid\" AND b.{6} > COALESCE(d.\"own_change\", -1))));",
        Sql::ident(contract::CATALOG_SCHEMA),
        Sql::number(oid),
        Sql::ident(contract::FRONTIERS_TABLE),
        Sql::ident(contract::CHANGES_SCHEMA),
        Sql::ident(&contract::buffer_table(oid)),
        Sql::ident(contract::XID),
        Sql::ident(contract::CHANGE_ID),
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
pub(crate) fn frontier_advance(ctx: &RenderContext) -> Sql {
    let own = Sql::fixed("pg_catalog.pg_current_xact_id_if_assigned()");
    let per_source = ctx.sources.iter().map(|b| {
        sql!(
            "WHEN {} THEN (SELECT max(c.{}) FROM {}.{} AS c WHERE c.{} = {})",
            Sql::number(b.oid),
            Sql::ident(contract::CHANGE_ID),
            Sql::ident(contract::CHANGES_SCHEMA),
            Sql::ident(&contract::buffer_table(b.oid)),
            Sql::ident(contract::XID),
            own
        )
    });
    sql!(
        "UPDATE {}.{} AS f SET \"frontier\" = pg_catalog.pg_current_snapshot(), \"own_xid\" = {}, \"own_change\" = CASE WHEN pg_catalog.current_setting('pgstream.no_own_rows', true) = 'on' THEN NULL ELSE CASE f.\"source_oid\" {} END END WHERE f.\"st_id\" = {} RETURNING 1",
        Sql::ident(contract::CATALOG_SCHEMA),
        Sql::ident(contract::FRONTIERS_TABLE),
        own,
        Sql::join(per_source, " "),
        Sql::number(ctx.st_id)
    )
}
