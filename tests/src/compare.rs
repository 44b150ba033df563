//! Small query helpers shared by the integration tests.

use std::future::Future;
use std::time::{Duration, Instant};

use pgstream::StreamTableStatus;
use sqlx::PgPool;

/// The single `bigint` that `sql` returns; panics with the SQL on error.
pub async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The number of stage tables (`pgstream._stage_<id>`) in the database.
pub async fn stage_tables(pool: &PgPool) -> i64 {
    scalar_i64(
        pool,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'pgstream' AND c.relkind = 'r' AND c.relname LIKE '\\_stage\\_%'",
    )
    .await
}

/// The names of the state tables of one-row aggregates (`pgstream._scalar_<id>_<leaf>`)
/// in the database, in order.
pub async fn scalar_state_tables(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'pgstream' AND c.relkind = 'r' AND c.relname LIKE '\\_scalar\\_%' \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("listing the state tables")
}

/// The single `boolean` that `sql` returns; panics with the SQL on error.
pub async fn scalar_bool(pool: &PgPool, sql: &str) -> bool {
    sqlx::query_scalar::<_, bool>(sql)
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

/// The columns of `table` a user sees (not dropped, not pgstream's `__pgs_*`), quoted
/// and comma-separated in their order.
pub async fn visible_columns(pool: &PgPool, table: &str) -> String {
    sqlx::query_scalar(
        "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
          WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
            AND attname NOT LIKE '\\_\\_pgs\\_%'",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("columns of {table}: {e}"))
}

/// [`difference`] over every visible column of the stream table `st`.
pub async fn difference_visible(pool: &PgPool, query: &str, st: &str) -> i64 {
    let cols = visible_columns(pool, st).await;
    difference(pool, query, st, &cols).await
}

/// The status row of the stream table `name`; panics when there is none.
pub async fn status_of(pool: &PgPool, name: &str) -> StreamTableStatus {
    pgstream::status(pool)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no status for {name}"))
}

/// Polls `f` every 50 ms until it is true; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
