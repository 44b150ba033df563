//! The window of a change buffer: the rows captured between a stream table's
//! frontier and the refresh's snapshot, netted per primary key into a Z-set (old
//! image −1, new image +1; an update that changes nothing cancels).

use super::*;
use crate::catalog::{Column, Table};
use crate::contract;
use crate::ir::RenderContext;

/// The buffer rows of one source in this refresh's window: for the last refresh's own
/// transaction, its rows after the change id that refresh consumed (its snapshot may
/// or may not count its own xid as seen: PostgreSQL 18 does, 15 does not); for every
/// other transaction, the rows not visible in the last frontier.
/// `xid >= xmin(frontier)` excludes nothing (older xids are visible in it); it lets an
/// index on the xid serve the scan where a buffer has one (created before catalog v5).
/// For a source with a primary key the window is reduced to its net effect per key:
/// the Z-set sum of all its images (old ones −1, new ones +1), consolidated per
/// image of the buffer columns this consumer reads (`buffer_columns`, the key among
/// them). The images of one key form a chain from the state before the window to
/// the state after it, so the sum telescopes to "−(image before) +(image after)"
/// whatever order the images were captured in: at most one old and one new image
/// per key, and a row updated many times weighs like one update in every join term.
/// The capture order is not the order of the modifications when statements nest (an
/// RI action, a trigger writing its own table, a writable CTE): their statement
/// triggers fire in another order, and the command ids are no total order either.
/// Images are compared column by column: directly for types whose equality is
/// identity ([`exact_equality`]), by their text under the "C" collation for the
/// others, so types without equality (json, point, xml) work and `1.0` is told
/// apart from `1.00`. The row kept for a consolidated image is one whose weight is
/// the net weight. The test is one boolean column (`__pgs_keep`), not two equalities
/// in the outer filter: the planner estimates a filter on a boolean without
/// statistics at half the rows, but two equalities on window results at 1/40,000 of
/// them, and a window of thousands of rows estimated at one row led it to nested
/// loops that scanned a whole source once per changed row (TPC-H Q14 at scale 0.1:
/// 24 s for 406 changed parts, 0.1 s with the boolean).
/// `prefilter`, a predicate over the buffer row `w` that the one consumer of the
/// window applies to it anyway, is applied before the netting: images equal in the
/// columns it reads pass it or fail it together, so netting the images that pass
/// is netting all of them and keeping those that pass; and sorting a few rows to net
/// them is cheaper than sorting all (TPC-H Q6 keeps 2 % of lineitem's changes). The
/// caller makes sure it cannot fail on any image (`marker::total_over_leaf`).
pub(crate) fn window_sql(
    ctx: &RenderContext,
    source: usize,
    table: Option<&Table>,
    buffer_columns: &[String],
    prefilter: Option<&Sql>,
) -> Sql {
    let rows = window_rows_sql(ctx, source);
    let rows = match prefilter {
        Some(p) => sql!("SELECT w.* FROM ({}) AS w WHERE {}", rows, p),
        None => rows,
    };
    let Some(table) = table.filter(|t| !t.primary_key.is_empty()) else {
        return rows;
    };
    netted(table, buffer_columns, &rows, "__pgs_keep")
}

/// The buffer rows `rows` (of `table`, which has a primary key) reduced to their net
/// effect per image of the primary key and the columns `columns` (see
/// [`window_sql`]): at most one old and one new image per key, none when they are
/// equal in those columns. The result has the image's columns and the weight, no
/// other column of the buffer.
///
/// Grouped by the image (a hash aggregate: `sum` of the weights, the images whose
/// sum is not zero), with the net weight as the row's weight. A column whose
/// equality is not identity ([`exact_equality`]) is grouped by its value and its text
/// under the "C" collation, so the members of a group print alike and the column
/// itself is the group's value, under its own collation. A column of a type outside
/// both lists ([`exact_equality`], [`groupable`]: json, geometric and user types,
/// which may have no equality GROUP BY can use) falls back to a window form: each
/// row numbered within its image and the first one kept when its weight is the
/// image's sum; `keep` names that form's test column (kept in its result), which
/// `rows` must not have. The grouped form took 1.6–2.7 ms where the window form took
/// 4.5–5.3 ms for TPC-H's 3,550 lineitem images of a round (scale factor 0.1): the
/// window form sorts the images and runs two window aggregates.
pub(crate) fn netted(table: &Table, columns: &[String], rows: &Sql, keep: &'static str) -> Sql {
    let image = image_columns(table, columns);
    if image
        .iter()
        .all(|c| exact_equality(&c.sql_type) || groupable(&c.sql_type))
    {
        let by = image.iter().map(|c| {
            if exact_equality(&c.sql_type) {
                value(c)
            } else {
                sql!("{}, {}", value(c), text(c))
            }
        });
        return sql!(
            "SELECT {}, sum(w.{1})::smallint AS {1} FROM ({2}) AS w GROUP BY {3} \
             HAVING sum(w.{1}) <> 0",
            Sql::join(image.iter().map(|c| value(c)), ", "),
            W,
            rows.clone(),
            Sql::join(by, ", ")
        );
    }
    netted_rows(table, columns, rows, keep)
}

/// [`netted`] in its window form, which keeps each kept row whole: every column of
/// `rows`, those outside the image too (a leaf that reads fewer columns than its
/// window holds nets the window again over its own, and carries the others).
pub(crate) fn netted_rows(
    table: &Table,
    columns: &[String],
    rows: &Sql,
    keep: &'static str,
) -> Sql {
    let image = image_columns(table, columns);
    let compared = image.iter().map(|c| {
        if exact_equality(&c.sql_type) {
            value(c)
        } else {
            text(c)
        }
    });
    sql!(
        "SELECT n.* FROM (SELECT w.*, (row_number() OVER (PARTITION BY {0}, w.{1}) = 1 \
         AND w.{1} = sum(w.{1}) OVER (PARTITION BY {0})) AS {3} FROM ({2}) AS w) AS n \
         WHERE n.{3}",
        Sql::join(compared, ", "),
        W,
        rows.clone(),
        Sql::ident(keep)
    )
}

/// The image of a netting: the primary key, then the columns `columns` (table order).
fn image_columns<'t>(table: &'t Table, columns: &[String]) -> Vec<&'t Column> {
    table
        .primary_key
        .iter()
        .filter_map(|k| table.columns.iter().find(|c| c.name == *k))
        .chain(
            table
                .columns
                .iter()
                .filter(|c| columns.contains(&c.name) && !table.primary_key.contains(&c.name)),
        )
        .collect()
}

/// A column of the buffer row `w`.
fn value(c: &Column) -> Sql {
    sql!("w.{}", Sql::ident(&c.name))
}

/// A column of the buffer row `w` as its text, compared byte for byte.
fn text(c: &Column) -> Sql {
    sql!("(w.{}::text COLLATE \"C\")", Sql::ident(&c.name))
}

/// Whether values of type `sql_type` (not [`exact_equality`]) can be grouped by
/// their equality: built-in types with hash or btree equality, and arrays of them.
pub(crate) fn groupable(sql_type: &str) -> bool {
    let element = sql_type.strip_suffix("[]").unwrap_or(sql_type);
    if element != sql_type && exact_equality(element) {
        return true;
    }
    let base = element.split('(').next().unwrap_or(element).trim();
    matches!(
        base,
        "text"
            | "character varying"
            | "varchar"
            | "character"
            | "bpchar"
            | "\"char\""
            | "name"
            | "numeric"
            | "real"
            | "double precision"
            | "interval"
            | "time without time zone"
            | "time with time zone"
            | "jsonb"
            | "inet"
            | "cidr"
            | "macaddr"
            | "money"
    )
}

/// Whether two values of type `sql_type` (as `format_type` prints it) that are
/// equal by the type's default equality are the same value: integers, booleans,
/// dates, timestamps, uuids, bytea, and numeric with a scale (`numeric(15,2)`: every
/// value has that scale). Not numeric without one (`1.0 = 1.00`), floats (`-0 = 0`),
/// text (a nondeterministic collation), nor types without equality.
pub(crate) fn exact_equality(sql_type: &str) -> bool {
    numeric_with_scale(sql_type)
        || matches!(
            sql_type,
            "smallint"
                | "integer"
                | "bigint"
                | "int"
                | "int2"
                | "int4"
                | "int8"
                | "boolean"
                | "bool"
                | "date"
                | "uuid"
                | "oid"
                | "bytea"
                | "timestamp without time zone"
                | "timestamp with time zone"
                | "timestamp"
                | "timestamptz"
        )
}

/// `numeric(p,s)`: PostgreSQL stores each value of the column with scale `s`, so two
/// equal values print the same. (`numeric(p)` is `numeric(p,0)`.)
fn numeric_with_scale(sql_type: &str) -> bool {
    sql_type
        .strip_prefix("numeric(")
        .and_then(|r| r.strip_suffix(')'))
        .is_some_and(|args| args.split(',').all(|a| a.trim().parse::<u32>().is_ok()))
}

/// Every buffer row of one source in this refresh's window (see [`window_sql`]),
/// before the reduction to the net effect.
pub(crate) fn window_rows_sql(ctx: &RenderContext, source: usize) -> Sql {
    let oid = ctx.sources[source].oid;
    // {6} the buffer's xid column, {7} its change id.
    sql!(
        "SELECT b.* FROM {0}.{1} AS b, (SELECT f.\"frontier\", f.\"own_xid\", f.\"own_change\" FROM {2}.{3} AS f WHERE f.\"st_id\" = {4} AND f.\"source_oid\" = {5}) AS f \
         WHERE b.{6} >= pg_catalog.pg_snapshot_xmin(f.\"frontier\") \
         AND CASE WHEN b.{6} = f.\"own_xid\" THEN b.{7} > COALESCE(f.\"own_change\", -1) \
         ELSE NOT pg_catalog.pg_visible_in_snapshot(b.{6}, f.\"frontier\") END",
        Sql::ident(contract::CHANGES_SCHEMA),
        Sql::ident(&contract::buffer_table(oid)),
        Sql::ident(contract::CATALOG_SCHEMA),
        Sql::ident(contract::FRONTIERS_TABLE),
        Sql::number(ctx.st_id),
        Sql::number(oid),
        Sql::ident(contract::XID),
        Sql::ident(contract::CHANGE_ID),
    )
}
