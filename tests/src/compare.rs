//! Small query helpers shared by the integration tests.

use sqlx::PgPool;

/// The single `bigint` that `sql` returns; panics with the SQL on error.
pub async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Rows of `(query) EXCEPT ALL (SELECT cols FROM st)` plus the reverse: 0 when the
/// stream table `st` holds exactly the query's rows.
pub async fn difference(pool: &PgPool, query: &str, st: &str, cols: &str) -> i64 {
    scalar_i64(
        pool,
        &format!(
            "SELECT (SELECT count(*) FROM (({query}) EXCEPT ALL (SELECT {cols} FROM {st})) a)
                  + (SELECT count(*) FROM ((SELECT {cols} FROM {st}) EXCEPT ALL ({query})) b)"
        ),
    )
    .await
}
