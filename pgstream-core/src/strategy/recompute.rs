//! Recompute and apply the difference: FULL mode, and the constructs without a delta
//! rule (`WITH RECURSIVE` when a window holds more than inserts, `ORDER BY ...
//! LIMIT`, aggregates below the top of the query). The query is evaluated afresh,
//! rows are numbered among equal rows, and only the difference is written; in
//! DIFFERENTIAL mode only when some source's window is not empty.

use super::*;

pub(crate) fn recompute_artifacts(
    c: &Compiled,
    ctx: &RenderContext,
    st: &str,
    query_sql: &str,
) -> Artifacts {
    // The compiled output columns, by position (a column alias list) and named as
    // compiled: a `*` the compiler could not expand (over a subquery, or a join with
    // `USING`) then still gives the compiled columns after a column is added to a
    // source. (Output names are distinct: `plan::compile` refuses duplicates.)
    let names: Vec<String> = c.columns.iter().map(|c| qi(&c.name)).collect();
    let query_sql = format!(
        "SELECT {} FROM ({query_sql}) AS \"__pgs_q\"({})",
        names
            .iter()
            .map(|n| format!("\"__pgs_q\".{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        names.join(", ")
    );
    // Duplicate rows are told apart by their ordinal among equal rows.
    let new_rows = numbered(&query_sql);
    let full = diff_statement(st, ctx, &[], &new_rows, None);
    let differential = match c.strategy {
        Strategy::RecomputeDiff { .. } => {
            let wins: Vec<(String, String)> = (0..c.sources.len())
                .map(|s| (format!("__pgs_win{s}"), window_sql(ctx, s, None, &[])))
                .collect();
            let gate = format!(
                "(SELECT {})",
                wins.iter()
                    .map(|(n, _)| format!("EXISTS (SELECT 1 FROM {})", qi(n)))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            );
            Some(diff_statement(st, ctx, &wins, &new_rows, Some(&gate)))
        }
        _ => None,
    };
    Artifacts {
        storage_ddl: storage_ddl(st, &new_rows),
        full_refresh: full,
        differential_refresh: differential,
        hidden_columns: vec!["__pgs_n".into(), contract::ROW_ID.into()],
        refresh_function: None,
    }
}
