//! What the SQL API tests share: the tutorial database, a runtime, `pgstream run` as a
//! child process, and psql-style statements.
#![allow(dead_code)] // each test binary uses a part

pub use std::process::{Child, Command, Stdio};
pub use std::time::{Duration, Instant};

pub use pgstream::Runtime;
pub use pgstream_tests::tutorial::STEP1;
pub use pgstream_tests::{test_db, TestDb};
pub use sqlx::{Connection, PgPool};

/// `pgstream run` as a child process, killed when dropped.
pub struct Cli(Child);

impl Cli {
    pub fn run(db: &TestDb, args: &[&str]) -> Cli {
        Cli(Command::new(env!("CARGO_BIN_EXE_pgstream"))
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start pgstream"))
    }

    /// `pgstream run --once`, to completion.
    pub fn once(db: &TestDb) {
        let out = Command::new(env!("CARGO_BIN_EXE_pgstream"))
            .args(["run", "--once"])
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run pgstream run --once");
        assert!(
            out.status.success(),
            "pgstream run --once: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Until a runtime has installed the catalog and listens for requests.
pub async fn wait_for_runtime(pool: &PgPool) {
    let start = Instant::now();
    loop {
        let up: Option<bool> = sqlx::query_scalar(
            "SELECT CASE WHEN to_regprocedure('pgstream._runtime_running()') IS NOT NULL
                         THEN pgstream._runtime_running() END",
        )
        .fetch_one(pool)
        .await
        .ok()
        .flatten();
        if up == Some(true) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "pgstream run did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `request` (a call of a pgstream request function) on `conn`, then waits
/// there for stream table `name`: the wait's outcome.
pub async fn request_and_wait(
    conn: &mut sqlx::PgConnection,
    request: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(request).execute(&mut *conn).await?;
    sqlx::raw_sql(&format!("SELECT pgstream.wait_for_stream_table('{name}')"))
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

pub async fn sql(pool: &PgPool, statement: &str) {
    sqlx::raw_sql(statement)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

pub async fn sql_err(pool: &PgPool, statement: &str) -> sqlx::Error {
    match sqlx::raw_sql(statement).execute(pool).await {
        Ok(_) => panic!("{statement}: succeeded, expected an error"),
        Err(e) => e,
    }
}

pub fn code_of(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

/// Rows as text, one string per row (`|`-separated), in the query's order.
pub async fn rows(pool: &PgPool, query: &str) -> Vec<String> {
    sqlx::query_scalar::<_, String>(&format!(
        "SELECT (SELECT string_agg(coalesce(j.v, ''), '|' ORDER BY j.ord)
                   FROM json_each_text(to_json(q)) WITH ORDINALITY AS j(k, v, ord))
           FROM ({query}) AS q"
    ))
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("{query}: {e}"))
}

pub async fn scalar_text(pool: &PgPool, query: &str) -> Option<String> {
    sqlx::query_scalar::<_, Option<String>>(query)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// The stream table equals its query, as multisets.
pub async fn assert_matches_query(pool: &PgPool, table: &str, query: &str) {
    let diff: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM (
            (SELECT * FROM ({query}) q EXCEPT ALL SELECT {cols} FROM {table})
            UNION ALL
            (SELECT {cols} FROM {table} EXCEPT ALL SELECT * FROM ({query}) q)) d",
        cols = "department_id, department_name, headcount, total_salary, avg_salary"
    ))
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(diff, 0, "{table} differs from its query");
}

pub const STEP2: &str = "SELECT pgstream.create_stream_table(
    'department_tree',
    $$
    WITH RECURSIVE tree AS (
        -- Base case: root departments (no parent)
        SELECT id, name, parent_id, name AS path, 0 AS depth
        FROM departments
        WHERE parent_id IS NULL

        UNION ALL

        -- Recursive step: children join back to the tree
        SELECT d.id, d.name, d.parent_id,
               tree.path || ' > ' || d.name AS path,
               tree.depth + 1
        FROM departments d
        JOIN tree ON d.parent_id = tree.id
    )
    SELECT id, name, parent_id, path, depth FROM tree
    $$,
    '30s',
    'DIFFERENTIAL'
)";

pub const STATS_QUERY: &str = "
    SELECT
        d.id AS department_id,
        d.name AS department_name,
        COUNT(e.id) AS headcount,
        COALESCE(SUM(e.salary), 0) AS total_salary,
        COALESCE(AVG(e.salary), 0) AS avg_salary
    FROM departments d
    LEFT JOIN employees e ON e.department_id = d.id
    GROUP BY d.id, d.name";

pub fn step3() -> String {
    format!(
        "SELECT pgstream.create_stream_table('department_stats', $${STATS_QUERY}$$, '30s', 'DIFFERENTIAL')"
    )
}

/// A database holding the reference's step 1 (departments and employees).
pub async fn tutorial_db() -> TestDb {
    let db = test_db().await;
    sql(&db.pool, STEP1).await;
    db
}

/// A runtime (no stream tables of its own) on `pool`, ticking every `tick`.
pub async fn start(pool: &PgPool, tick: Duration) -> Runtime {
    Runtime::builder(pool.clone())
        .tick(tick)
        .start()
        .await
        .unwrap()
}
