//! Applying a result to the storage table: the statement that recomputes rows and
//! applies only the difference (`diff_statement`, also every full refresh), and the
//! storage table's DDL.

use super::*;
use crate::ir::RenderContext;
use crate::render::frontier::frontier_advance;

/// The statement that recomputes `new_rows` (which yields exactly the storage
/// table's columns, `__pgs_row_id` among them) and applies the difference: storage
/// rows equal to a new row (same row id, same text of the whole row) are kept, the
/// others deleted, the missing ones inserted.
pub(crate) fn diff_statement(
    st: &str,
    ctx: &RenderContext,
    leading_ctes: &[(String, String)],
    new_rows: &str,
    gate: Option<&str>,
) -> String {
    let mut ctes: Vec<String> = leading_ctes
        .iter()
        .map(|(n, b)| format!("{} AS MATERIALIZED ({b})", qi(n)))
        .collect();
    ctes.push(format!("\"__pgs_adv\" AS ({})", frontier_advance(ctx)));
    ctes.extend(apply_ctes(st, "", new_rows, gate));
    format!(
        "WITH {}\nSELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"",
        ctes.join(",\n")
    )
}

pub(crate) fn storage_ddl(st: &str, new_rows: &str) -> Vec<String> {
    vec![
        format!("CREATE TABLE {st} AS SELECT nr.* FROM ({new_rows}) AS nr WITH NO DATA"),
        format!("CREATE INDEX ON {st} (\"__pgs_row_id\")"),
    ]
}

/// The CTEs that apply `new_rows` to the storage table `st` as a difference (see
/// [`diff_statement`]): `__pgs_<prefix>new`, `_old`, `_newt`, `_del` (the rows
/// deleted) and `_ins` (the rows inserted). With a `gate`, nothing is read or
/// written unless it holds.
pub(crate) fn apply_ctes(
    st: &str,
    prefix: &str,
    new_rows: &str,
    gate: Option<&str>,
) -> Vec<String> {
    let gate_where = gate.map(|g| format!(" WHERE {g}")).unwrap_or_default();
    let gate_and = gate.map(|g| format!("{g} AND ")).unwrap_or_default();
    let n = |s: &str| qi(&format!("__pgs_{prefix}{s}"));
    let (new, old, newt, del, ins) = (n("new"), n("old"), n("newt"), n("del"), n("ins"));
    let mut ctes = Vec::new();
    ctes.push(format!(
        "{new} AS MATERIALIZED (SELECT nr.* FROM ({new_rows}) AS nr{gate_where})"
    ));
    // Each row's text (what tells rows apart, whatever their types) is computed once
    // per side and kept: the stored rows' with their ctid, by which the DELETE then
    // fetches the rows that have no equal among the new ones.
    ctes.push(format!(
        "{old} AS MATERIALIZED (SELECT st.ctid AS \"__pgs_tid\", st.\"__pgs_row_id\" AS \"__pgs_id\", st::text AS \"__pgs_txt\" FROM {st} AS st{gate_where})"
    ));
    ctes.push(format!(
        "{newt} AS MATERIALIZED (SELECT n.\"__pgs_row_id\" AS \"__pgs_id\", n::text AS \"__pgs_txt\" FROM {new} AS n)"
    ));
    ctes.push(format!(
        "{del} AS (DELETE FROM {st} AS st WHERE {gate_and}st.ctid = ANY (ARRAY(SELECT o.\"__pgs_tid\" FROM {old} AS o \
         WHERE NOT EXISTS (SELECT 1 FROM {newt} AS n WHERE n.\"__pgs_id\" = o.\"__pgs_id\" AND n.\"__pgs_txt\" = o.\"__pgs_txt\"))) RETURNING 1)"
    ));
    ctes.push(format!(
        "{ins} AS (INSERT INTO {st} SELECT n.* FROM {new} AS n WHERE NOT EXISTS (SELECT 1 FROM {old} AS o \
         WHERE o.\"__pgs_id\" = n.\"__pgs_row_id\" AND o.\"__pgs_txt\" = n::text) RETURNING 1)"
    ));
    ctes
}
