//! The small table `t` of the runtime tests, the query over it, and what those tests
//! count around it: capture triggers and change buffers.

use sqlx::PgPool;

use crate::compare::{self, scalar_i64};
use crate::TestDb;

/// The query of the runtime tests over `t`: `id, name` of the rows with `x > 1`.
pub const Q: &str = "SELECT id, name FROM t WHERE x > 1";

/// Creates `t (id, name, x)` with 20 rows (`x` = `id % 4`).
pub async fn setup_t(db: &TestDb) {
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, x int NOT NULL);
         INSERT INTO t SELECT g, 'n' || g, g % 4 FROM generate_series(1, 20) g;",
    )
    .await;
}

/// Rows of `(query) EXCEPT ALL (table)` plus the reverse over `id, name`: 0 when
/// they are equal.
pub async fn difference(pool: &PgPool, query: &str, table: &str) -> i64 {
    compare::difference(pool, query, table, "id, name").await
}

/// pgstream's capture triggers on `table`.
pub async fn capture_triggers(pool: &PgPool, table: &str) -> i64 {
    scalar_i64(
        pool,
        &format!("SELECT count(*) FROM pg_trigger WHERE tgrelid = '{table}'::regclass AND tgname LIKE '\\_\\_pgs\\_capture%'"),
    )
    .await
}

/// Change buffers (tables of the schema `pgstream_changes`).
pub async fn buffers(pool: &PgPool) -> i64 {
    scalar_i64(pool, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgstream_changes' AND c.relkind = 'r'").await
}
