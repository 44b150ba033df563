//! `#[sqlx::test]` with the runtime, as the README's "Testing" section shows it (the
//! block between the markers below is the README's, checked by `tests/readme.rs`,
//! less the `#[ignore]` line).
//!
//! `#[sqlx::test]` reads `DATABASE_URL` when the test starts, so the test is
//! `#[ignore]`d here and run by `sqlx_test_runs_against_the_test_cluster`, which
//! starts this test binary again with `DATABASE_URL` set to a fresh database of the
//! test cluster.

use std::process::Command;

// README testing block: begin
use pgstream::{Runtime, StreamTable};

#[pgstream::stream_table(
    query = "SELECT d.id AS department_id, COUNT(e.id) AS headcount
             FROM departments d LEFT JOIN employees e ON e.department_id = d.id
             GROUP BY d.id",
    schedule = "1h"
)]
#[derive(Debug, PartialEq)]
pub struct Headcount {
    pub department_id: i32,
    pub headcount: i64,
}

#[sqlx::test] // a fresh database for this test, with migrations/ applied
#[ignore = "needs DATABASE_URL: run by sqlx_test_runs_against_the_test_cluster"]
async fn headcount_counts_hires(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder(pool.clone())
        .register::<Headcount>()
        .scheduler(false) // nothing refreshes behind the test's back
        .start()
        .await?;
    sqlx::query("INSERT INTO departments (id, name) VALUES (1, 'Engineering'), (2, 'Sales')")
        .execute(&pool)
        .await?;
    sqlx::query("INSERT INTO employees (name, department_id, salary) VALUES ('Heidi', 1, 105000), ('Ivan', 1, 98000)")
        .execute(&pool)
        .await?;
    runtime.refresh("headcount").await?; // explicit: the test decides when

    let sql = format!("{} ORDER BY department_id", Headcount::SELECT);
    let rows: Vec<Headcount> = sqlx::query_as(&sql).fetch_all(&pool).await?;
    assert_eq!(
        rows,
        [
            Headcount {
                department_id: 1,
                headcount: 2
            },
            Headcount {
                department_id: 2,
                headcount: 0
            },
        ]
    );
    runtime.shutdown().await;
    Ok(())
}
// README testing block: end

/// Runs `headcount_counts_hires` in a child process of this test binary, with
/// `DATABASE_URL` set to a fresh database of the test cluster (the throwaway cluster,
/// or the server of `DATABASE_URL`): sqlx creates the test's own database beside it.
#[tokio::test]
async fn sqlx_test_runs_against_the_test_cluster() {
    let db = pgstream_tests::test_db().await;
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "headcount_counts_hires",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run the test binary")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the #[sqlx::test] failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
