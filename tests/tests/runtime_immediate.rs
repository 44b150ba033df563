//! IMMEDIATE mode (issue 14, item 1): the stream table is maintained inside the
//! writing transaction. A writer reads its own writes through it, a rollback leaves
//! it as it was, nested statements (RI actions, triggers writing other sources) and
//! TRUNCATE are applied once, stream tables over an IMMEDIATE one follow in the same
//! transaction, switching between IMMEDIATE and DIFFERENTIAL keeps it exact, the
//! scheduler leaves it alone, and what it cannot maintain is refused at creation.
//! Concurrent writers: `oracle_immediate.rs`.

use pgstream_runtime::{Mode, Runtime};
use pgstream_tests::compare::{difference, scalar_i64};
use pgstream_tests::{test_db, TestDb};
use sqlx::{Connection, PgConnection};

const SCHEMA: &str = "
CREATE TABLE departments (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL,
    department_id int REFERENCES departments(id) ON DELETE CASCADE ON UPDATE CASCADE,
    salary numeric(10,2) NOT NULL);
INSERT INTO departments VALUES (1, 'eng'), (2, 'ops');
INSERT INTO employees VALUES (1, 'a', 1, 10), (2, 'b', 1, 20), (3, 'c', 2, 30);
";

const STATS: &str = "SELECT d.id AS department_id, d.name, count(e.id) AS headcount, \
     COALESCE(sum(e.salary), 0) AS total FROM departments d LEFT JOIN employees e \
     ON e.department_id = d.id GROUP BY d.id, d.name";
const STATS_COLS: &str = "department_id, name, headcount, total";

async fn create(db: &TestDb, name: &str, query: &str, mode: Mode) {
    let spec = pgstream_runtime::spec(name, query, "1h", mode).unwrap();
    pgstream_runtime::create_stream_table(&db.pool, &spec)
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {e}"));
}

/// The rows of `(query)` and `SELECT cols FROM st` that differ, on `conn` (inside
/// its transaction).
async fn diff_on(conn: &mut PgConnection, query: &str, st: &str, cols: &str) -> i64 {
    let sql = format!(
        "SELECT (SELECT count(*) FROM (({query}) EXCEPT ALL (SELECT {cols} FROM {st})) a)
              + (SELECT count(*) FROM ((SELECT {cols} FROM {st}) EXCEPT ALL ({query})) b)"
    );
    sqlx::query_scalar(&sql)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn exec_on(conn: &mut PgConnection, sql: &str) {
    if let Err(e) = sqlx::raw_sql(sql).execute(&mut *conn).await {
        panic!("{sql}: {e}");
    }
}

async fn headcount(conn: &mut PgConnection, dept: i32) -> i64 {
    sqlx::query_scalar("SELECT headcount FROM dept_stats WHERE department_id = $1")
        .bind(dept)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_writer_reads_its_own_writes_and_a_rollback_changes_nothing() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    create(&db, "dept_stats", STATS, Mode::Immediate).await;
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );

    let mut conn = db.connect().await;
    exec_on(&mut conn, "BEGIN").await;
    exec_on(
        &mut conn,
        "INSERT INTO employees VALUES (4, 'd', 2, 40), (5, 'e', 2, 50)",
    )
    .await;
    // Inside the transaction, before any refresh: the writer sees its rows.
    assert_eq!(headcount(&mut conn, 2).await, 3);
    assert_eq!(diff_on(&mut conn, STATS, "dept_stats", STATS_COLS).await, 0);
    exec_on(
        &mut conn,
        "UPDATE employees SET department_id = 1 WHERE id = 4",
    )
    .await;
    exec_on(&mut conn, "DELETE FROM employees WHERE id = 1").await;
    assert_eq!(headcount(&mut conn, 1).await, 2);
    assert_eq!(diff_on(&mut conn, STATS, "dept_stats", STATS_COLS).await, 0);
    // Others do not see it before the commit.
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT headcount FROM dept_stats WHERE department_id = 2"
        )
        .await,
        1
    );
    exec_on(&mut conn, "COMMIT").await;
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
    let before: Vec<(i32, i64)> =
        sqlx::query_as("SELECT department_id, headcount FROM dept_stats ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();

    // A rollback leaves the stream table as it was (and its buffer rows with it).
    exec_on(&mut conn, "BEGIN").await;
    exec_on(&mut conn, "INSERT INTO departments VALUES (3, 'new')").await;
    exec_on(&mut conn, "INSERT INTO employees VALUES (6, 'f', 3, 5)").await;
    assert_eq!(headcount(&mut conn, 3).await, 1);
    exec_on(&mut conn, "ROLLBACK").await;
    let after: Vec<(i32, i64)> =
        sqlx::query_as("SELECT department_id, headcount FROM dept_stats ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(before, after);
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );

    // A savepoint rolled back inside the transaction: its changes leave the stream
    // table too; the rest of the transaction stays.
    exec_on(&mut conn, "BEGIN").await;
    exec_on(&mut conn, "INSERT INTO employees VALUES (7, 'g', 2, 70)").await;
    exec_on(&mut conn, "SAVEPOINT s").await;
    exec_on(&mut conn, "INSERT INTO employees VALUES (8, 'h', 2, 80)").await;
    assert_eq!(headcount(&mut conn, 2).await, 4);
    exec_on(&mut conn, "ROLLBACK TO SAVEPOINT s").await;
    assert_eq!(headcount(&mut conn, 2).await, 3);
    exec_on(&mut conn, "INSERT INTO employees VALUES (9, 'i', 2, 90)").await;
    assert_eq!(diff_on(&mut conn, STATS, "dept_stats", STATS_COLS).await, 0);
    exec_on(&mut conn, "COMMIT").await;
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
    conn.close().await.unwrap();
}
