//! Recompute and apply the difference: FULL mode, and the constructs without a delta
//! rule (`WITH RECURSIVE` when a window holds more than inserts, `ORDER BY ...
//! LIMIT`, aggregates below the top of the query). The query is evaluated afresh,
//! rows are numbered among equal rows, and only the difference is written; in
//! DIFFERENTIAL mode only when some source's window is not empty.

use super::*;

pub(crate) fn recompute_artifacts(
    c: &Compiled,
    ctx: &RenderContext,
    st: &Sql,
    query_sql: &Sql,
) -> Statements {
    // The compiled output columns, by position (a column alias list) and named as
    // compiled: a `*` the compiler could not expand (over a subquery, or a join with
    // `USING`) then still gives the compiled columns after a column is added to a
    // source. (Output names are distinct: `plan::compile` refuses duplicates.)
    let names: Vec<Sql> = c.columns.iter().map(|c| Sql::ident(&c.name)).collect();
    let query_sql = sql!(
        "SELECT {} FROM ({}) AS \"__pgs_q\"({})",
        names
            .iter()
            .map(|n| sql!("\"__pgs_q\".{}", n))
            .collect::<Vec<_>>()
            .join_sql(", "),
        query_sql,
        names.join_sql(", ")
    );
    // Duplicate rows are told apart by their ordinal among equal rows.
    let new_rows = NewRows::Copies(Copies::numbered(query_sql, names.len()));
    let full = diff_statement(st, ctx, &[], &new_rows, None);
    let differential = match c.strategy {
        Strategy::RecomputeDiff { .. } => {
            let wins: Vec<(String, Sql)> = (0..c.sources.len())
                .map(|s| {
                    (
                        format!("__pgs_win{}", s),
                        window_sql(ctx, s, None, &[], None),
                    )
                })
                .collect();
            let gate = sql!(
                "(SELECT {})",
                wins.iter()
                    .map(|(n, _)| sql!("EXISTS (SELECT 1 FROM {})", Sql::ident(n)))
                    .collect::<Vec<_>>()
                    .join_sql(" OR ")
            );
            Some(diff_statement(st, ctx, &wins, &new_rows, Some(&gate)))
        }
        _ => None,
    };
    Statements {
        storage_ddl: storage_ddl(st, new_rows.rows()),
        full_refresh: full,
        differential_refresh: differential,
        hidden_columns: vec!["__pgs_n".into(), contract::ROW_ID.into()],
    }
}
