//! Pinning `search_path` for every statement pgstream runs (the CVE-2018-1058
//! pattern: a role that can create objects in a schema on the session's
//! `search_path` plants a function, aggregate or operator that is a better match than
//! the built-in one for an unqualified call such as `array_agg(text)` or
//! `text[] @> text[]`; whoever runs the statement then runs the planted code).
//!
//! The connections belong to the application's pool, whose session settings are the
//! application's: pgstream never changes them. Every statement pgstream sends runs in
//! a transaction of its own that starts with `SET LOCAL search_path = pg_catalog,
//! pg_temp` (one round trip with the `BEGIN`), so the setting ends with the
//! transaction whether it commits, fails or is dropped. `pg_temp` comes last
//! explicitly: left out, it would be searched first for relations and types.
//! (Functions and operators are never looked up in `pg_temp`.)

use sqlx::{Connection, Encode, PgConnection, PgPool, Postgres, Transaction, Type};

/// The value of `search_path` for every statement pgstream runs.
pub(crate) const SEARCH_PATH: &str = "pg_catalog, pg_temp";

/// Starts a transaction with `search_path` pinned (see the module documentation).
const BEGIN_PINNED: &str = "BEGIN; SET LOCAL search_path = pg_catalog, pg_temp";

/// A transaction on a connection of `pool`, with `search_path` pinned to
/// [`SEARCH_PATH`] until it ends.
pub(crate) async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(BEGIN_PINNED).await
}

/// A pool of one connection, opened with `pool`'s options, for a task that holds its
/// connection for good (a `LISTEN`ing one): `sqlx`'s `PgListener` keeps a connection
/// of the pool it is given, so two listeners on the application's pool of two
/// connections (the request listener and the on-commit listener) left none for the
/// scheduler, which then never refreshed (`runtime_faults`, `runtime_stress`).
pub(crate) fn listener_pool(pool: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .connect_lazy_with(pool.connect_options().as_ref().clone())
}

/// A REPEATABLE READ transaction on a connection of `pool`, with `search_path`
/// pinned to [`SEARCH_PATH`] until it ends: all its statements read one snapshot.
pub(crate) async fn begin_repeatable_read(
    pool: &PgPool,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(
        "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL search_path = pg_catalog, pg_temp",
    )
    .await
}

/// A transaction (a savepoint when `conn` is in one already) with `search_path`
/// pinned. Inside a savepoint the setting lasts until the outer transaction ends
/// unless the savepoint is rolled back: callers that must leave the caller's
/// setting as it was roll it back.
pub(crate) async fn begin_on(
    conn: &mut PgConnection,
) -> Result<Transaction<'_, Postgres>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_catalog.set_config('search_path', $1, true)")
        .bind(SEARCH_PATH)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Runs `sql` (statements without parameters, through the simple query protocol) on
/// `conn`. Not `sqlx::raw_sql(sql).execute(conn)`: rustc cannot prove that future
/// `Send` inside an async fn that borrows (higher-ranked lifetimes), which made the
/// futures of `Runtime::start`, `create_stream_table` and `process_requests` not
/// `Send`, so that an application could not `tokio::spawn` them or call them from an
/// axum handler (`tests/tests/e2e/runtime_send.rs`).
pub(crate) async fn script(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sql).await.map(|_| ())
}

/// Runs the statement `sql` with its one parameter `$1` bound to `value` on `conn`, for
/// its effect (a function call, a `set_config`): what most of pgstream's calls of its
/// SQL functions are.
pub(crate) async fn execute<'q, T>(
    conn: &mut PgConnection,
    sql: &'q str,
    value: T,
) -> Result<(), sqlx::Error>
where
    T: 'q + Encode<'q, Postgres> + Type<Postgres> + Send,
{
    sqlx::query(sql).bind(value).execute(conn).await.map(|_| ())
}
