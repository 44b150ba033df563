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
    st: &Sql,
    ctx: &RenderContext,
    leading_ctes: &[(String, Sql)],
    new_rows: &Sql,
    gate: Option<&Sql>,
) -> Sql {
    let mut ctes: Vec<Sql> = leading_ctes
        .iter()
        .map(|(n, b)| sql!("{} AS MATERIALIZED ({})", Sql::ident(n), b))
        .collect();
    ctes.push(sql!("\"__pgs_adv\" AS ({})", frontier_advance(ctx)));
    ctes.extend(apply_ctes(st, "", new_rows, gate));
    sql!(
        "WITH {}\nSELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"",
        Sql::join(ctes, ",\n")
    )
}

pub(crate) fn storage_ddl(st: &Sql, new_rows: &Sql) -> Vec<Sql> {
    vec![
        sql!(
            "CREATE TABLE {} AS SELECT nr.* FROM ({}) AS nr WITH NO DATA",
            st,
            new_rows
        ),
        sql!("CREATE INDEX ON {} (\"__pgs_row_id\")", st),
    ]
}

/// The CTEs that apply `new_rows` to the storage table `st` as a difference (see
/// [`diff_statement`]): `__pgs_<prefix>new`, `_old`, `_newt`, `_del` (the rows
/// deleted) and `_ins` (the rows inserted). With a `gate`, nothing is read or
/// written unless it holds.
pub(crate) fn apply_ctes(st: &Sql, prefix: &str, new_rows: &Sql, gate: Option<&Sql>) -> Vec<Sql> {
    let gate_where = gate.map(|g| sql!(" WHERE {}", g)).unwrap_or_default();
    let gate_and = gate.map(|g| sql!("{} AND ", g)).unwrap_or_default();
    let n = |s: &str| Sql::ident(&format!("__pgs_{prefix}{s}"));
    let (new, old, newt, del, ins) = (n("new"), n("old"), n("newt"), n("del"), n("ins"));
    vec![
        sql!(
            "{} AS MATERIALIZED (SELECT nr.* FROM ({}) AS nr{})",
            new,
            new_rows,
            gate_where
        ),
        sql!(
            "{} AS MATERIALIZED (SELECT st.ctid AS \"__pgs_tid\", st.\"__pgs_row_id\" AS \"__pgs_id\", st::text AS \"__pgs_txt\" FROM {} AS st{})",
            old,
            st,
            gate_where
        ),
        sql!(
            "{} AS MATERIALIZED (SELECT n.\"__pgs_row_id\" AS \"__pgs_id\", n::text AS \"__pgs_txt\" FROM {} AS n)",
            newt,
            new
        ),
        sql!(
            "{} AS (DELETE FROM {} AS st WHERE {}st.ctid = ANY (ARRAY(SELECT o.\"__pgs_tid\" FROM {} AS o \
             WHERE NOT EXISTS (SELECT 1 FROM {} AS n WHERE n.\"__pgs_id\" = o.\"__pgs_id\" AND n.\"__pgs_txt\" = o.\"__pgs_txt\"))) RETURNING 1)",
            del,
            st,
            gate_and,
            old,
            newt
        ),
        sql!(
            "{} AS (INSERT INTO {} SELECT n.* FROM {} AS n WHERE NOT EXISTS (SELECT 1 FROM {} AS o \
             WHERE o.\"__pgs_id\" = n.\"__pgs_row_id\" AND o.\"__pgs_txt\" = n::text) RETURNING 1)",
            ins,
            st,
            new,
            old
        ),
    ]
}
