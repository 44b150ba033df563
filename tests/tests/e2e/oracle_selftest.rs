//! Self-test of the equivalence oracle, without pgstream: the "stream table" `st` is a
//! plain table that a refresh closure recomputes (`TRUNCATE st; INSERT INTO st query`).

use std::time::Instant;

use pgstream_tests::oracle::{Domain, FailureKind, Oracle};
use pgstream_tests::test_db;

const QUERY: &str = "SELECT d.name AS dept, count(e.id) AS n, sum(e.salary) AS total, \
     avg(e.salary) AS avg_salary, min(e.name) AS first_name \
     FROM departments d LEFT JOIN employees e ON e.department_id = d.id \
     GROUP BY d.name";

fn base_oracle(seed: u64) -> Oracle {
    Oracle::new("st", QUERY)
        .table(
            "departments",
            "CREATE TABLE departments (id int PRIMARY KEY, name text)",
        )
        .table(
            "employees",
            "CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL, \
             department_id int, salary numeric(10,2))",
        )
        .domain(
            "employees",
            "department_id",
            Domain::existing("departments", "id", &["999", "NULL"]),
        )
        .seed(seed)
        .batches(25)
}

/// Creates `st` from the query, plus a hidden column the oracle must ignore.
async fn create_st(pool: &sqlx::PgPool, query: &str) {
    sqlx::raw_sql(&format!(
        "CREATE TABLE st AS {query}; ALTER TABLE st ADD COLUMN __pgs_count bigint DEFAULT 1"
    ))
    .execute(pool)
    .await
    .unwrap();
}

fn recompute(query: &'static str) -> impl Fn(sqlx::PgPool) -> futures_like::Fut + Send + Sync {
    move |pool| {
        Box::pin(async move {
            let cols: Vec<String> = sqlx::query_scalar(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = 'st'::regclass \
                 AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_\\_pgs%' \
                 ORDER BY attnum",
            )
            .fetch_all(&pool)
            .await?;
            sqlx::raw_sql(&format!(
                "BEGIN; TRUNCATE st; INSERT INTO st ({}) {query}; COMMIT",
                cols.join(", ")
            ))
            .execute(&pool)
            .await
            .map(|_| ())
        })
    }
}

mod futures_like {
    pub type Fut =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send>>;
}

#[tokio::test]
async fn correct_refresh_passes() {
    let db = test_db().await;
    let oracle = base_oracle(1).refresh_with(recompute(QUERY));
    oracle.setup(&db.pool).await;
    create_st(&db.pool, QUERY).await;
    let t = Instant::now();
    oracle.assert_equivalent(&db.pool).await;
    eprintln!("25 batches in {:?}", t.elapsed());
    // The DML really changed things.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM employees")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(n > 0);
}

#[tokio::test]
async fn broken_refresh_is_detected() {
    let db = test_db().await;
    let oracle = base_oracle(7).refresh_sql("SELECT 1");
    oracle.setup(&db.pool).await;
    create_st(&db.pool, QUERY).await;
    let err = oracle.run(&db.pool).await.unwrap_err();
    assert_eq!(err.seed, 7);
    assert!(err.batch >= 1, "batch 0 has no DML: {err}");
    assert!(matches!(err.kind, FailureKind::Mismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("seed 7"), "{text}");
    assert!(text.contains("batch"), "{text}");
    assert!(!err.statements.is_empty(), "{text}");
    eprintln!("{text}");
}

#[tokio::test]
async fn runs_are_reproducible() {
    let mut failures = Vec::new();
    for _ in 0..2 {
        let db = test_db().await;
        let oracle = base_oracle(99).refresh_sql("SELECT 1").quiet();
        oracle.setup(&db.pool).await;
        create_st(&db.pool, QUERY).await;
        failures.push(oracle.run(&db.pool).await.unwrap_err());
    }
    assert_eq!(failures[0].batch, failures[1].batch);
    assert_eq!(failures[0].statements, failures[1].statements);
}

#[tokio::test]
#[should_panic(expected = "PGS_ORACLE_SEED=3 reproduces")]
async fn assert_equivalent_panics_with_seed() {
    let db = test_db().await;
    let oracle = base_oracle(3).refresh_sql("SELECT 1").quiet();
    oracle.setup(&db.pool).await;
    create_st(&db.pool, QUERY).await;
    oracle.assert_equivalent(&db.pool).await;
}

const BAG_QUERY: &str = "SELECT k, v, w FROM bag WHERE k IS DISTINCT FROM 3";

/// A table without a primary key (duplicate rows), TRUNCATE turned on, several types.
#[tokio::test]
async fn bag_semantics_and_truncate() {
    let db = test_db().await;
    let oracle = Oracle::new("st", BAG_QUERY)
        .table(
            "bag",
            "CREATE TABLE bag (k int, v text, w numeric, d date, ts timestamptz, b bool, \
             g int GENERATED ALWAYS AS (k * 2) STORED)",
        )
        .truncate_probability(0.05)
        .seed(5)
        .batches(30)
        .refresh_with(recompute(BAG_QUERY));
    oracle.setup(&db.pool).await;
    create_st(&db.pool, BAG_QUERY).await;
    oracle.assert_equivalent(&db.pool).await;
    // One extra (possibly duplicate) row in the copy is detected.
    sqlx::raw_sql("INSERT INTO st (k, v, w) VALUES (1, 'alpha', 1)")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(oracle.check(&db.pool).await.is_err());
}

const FLOAT_QUERY: &str = "SELECT k, sum(x) AS s FROM f GROUP BY k";

/// Floating-point columns compare within the tolerance, and only with it.
#[tokio::test]
async fn float_tolerance() {
    let db = test_db().await;
    let noisy = "SELECT k, sum(x) + 1e-12 AS s FROM f GROUP BY k";
    let make = || {
        Oracle::new("st", FLOAT_QUERY)
            .table("f", "CREATE TABLE f (id int PRIMARY KEY, k int, x float8)")
            .seed(11)
            .batches(3)
            .quiet()
            .refresh_with(recompute(noisy))
    };
    make().setup(&db.pool).await;
    create_st(&db.pool, FLOAT_QUERY).await;
    make().float_tolerance(6).assert_equivalent(&db.pool).await;
    let err = make().run(&db.pool).await.unwrap_err();
    assert!(matches!(err.kind, FailureKind::Mismatch { .. }), "{err}");
}
