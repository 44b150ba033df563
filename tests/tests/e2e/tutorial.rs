//! The tutorial (GETTING_STARTED.md) end to end: the two stream tables declared as
//! structs, every step through the Rust API with the exact rows PostgreSQL returns,
//! a refresh by the scheduler, status and statistics; then the same steps through
//! the SQL functions a `psql` user calls.

use std::time::{Duration, Instant};

use pgstream::{Mode, Runtime, StreamTable};
use pgstream_tests::tutorial::STEP1;
use pgstream_tests::{test_db, TestDb};
use rust_decimal::Decimal;
use sqlx::PgPool;

#[pgstream::stream_table(
    query = "
    WITH RECURSIVE tree AS (
        SELECT id, name, parent_id, name AS path, 0 AS depth
        FROM departments
        WHERE parent_id IS NULL
        UNION ALL
        SELECT d.id, d.name, d.parent_id,
               tree.path || ' > ' || d.name AS path,
               tree.depth + 1
        FROM departments d
        JOIN tree ON d.parent_id = tree.id
    )
    SELECT id, name, parent_id, path, depth FROM tree",
    schedule = "30s",
    mode = "differential"
)]
#[derive(Debug, Clone, PartialEq)]
pub struct DepartmentTree {
    pub id: i32,
    pub name: String,
    pub parent_id: Option<i32>,
    pub path: String,
    pub depth: i32,
}

#[pgstream::stream_table(
    query = "
    SELECT
        d.id AS department_id,
        d.name AS department_name,
        COUNT(e.id) AS headcount,
        COALESCE(SUM(e.salary), 0) AS total_salary,
        COALESCE(AVG(e.salary), 0) AS avg_salary
    FROM departments d
    LEFT JOIN employees e ON e.department_id = d.id
    GROUP BY d.id, d.name",
    schedule = "30s",
    mode = "differential"
)]
#[derive(Debug, Clone, PartialEq)]
pub struct DepartmentStats {
    pub department_id: i32,
    pub department_name: String,
    pub headcount: i64,
    pub total_salary: Decimal,
    pub avg_salary: Decimal,
}

/// Rows as psql prints their values, `|`-separated, in the given order.
async fn rows(pool: &PgPool, sql: &str) -> Vec<String> {
    let q = format!("SELECT concat_ws('|', VARIADIC ARRAY(SELECT COALESCE(v, '') FROM json_each_text(row_to_json(r)) AS j(k, v))) FROM ({sql}) r");
    sqlx::query_scalar::<_, String>(&q)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const STATS: &str = "SELECT department_id, department_name, headcount, total_salary, avg_salary FROM department_stats";
const TREE: &str = "SELECT id, name, parent_id, path, depth FROM department_tree";

fn expect(actual: Vec<String>, expected: &[&str]) {
    assert_eq!(
        actual,
        expected.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
}

async fn step1(db: &TestDb) {
    sqlx::raw_sql(STEP1).execute(&db.pool).await.unwrap();
}

async fn assert_initial_tables(pool: &PgPool) {
    expect(
        rows(pool, &format!("{TREE} ORDER BY path")).await,
        &[
            "1|Company||Company|0",
            "2|Engineering|1|Company > Engineering|1",
            "5|Backend|2|Company > Engineering > Backend|2",
            "6|Frontend|2|Company > Engineering > Frontend|2",
            "7|Platform|2|Company > Engineering > Platform|2",
            "4|Operations|1|Company > Operations|1",
            "3|Sales|1|Company > Sales|1",
        ],
    );
    // PostgreSQL's own values: AVG(numeric) has scale 12 here, empty groups sum to 0.
    expect(
        rows(pool, &format!("{STATS} ORDER BY department_name")).await,
        &[
            "5|Backend|2|235000.00|117500.000000000000",
            "1|Company|0|0|0",
            "2|Engineering|0|0|0",
            "6|Frontend|1|110000.00|110000.000000000000",
            "4|Operations|1|100000.00|100000.000000000000",
            "7|Platform|1|130000.00|130000.000000000000",
            "3|Sales|2|185000.00|92500.000000000000",
        ],
    );
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_through_the_rust_api() {
    let db = test_db().await;
    let pool = &db.pool;
    step1(&db).await;

    // Steps 2 and 3: the runtime creates both stream tables, populated at once.
    let runtime = Runtime::builder(pool.clone())
        .register::<DepartmentTree>()
        .register::<DepartmentStats>()
        .start()
        .await
        .expect("runtime starts");
    assert_initial_tables(pool).await;
    let typed: Vec<DepartmentStats> =
        sqlx::query_as(&format!("{STATS} WHERE department_name = 'Backend'"))
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(typed[0].avg_salary.to_string(), "117500.000000000000");
    assert_eq!(DepartmentStats::DEF.columns.len(), 5);

    // 4a: hire Heidi; only the Frontend group changes.
    sqlx::query("INSERT INTO employees (name, department_id, salary) VALUES ('Heidi', 6, 105000)")
        .execute(pool)
        .await
        .unwrap();
    let pending = count(
        pool,
        "SELECT sum(pending_changes)::bigint FROM pgstream.pgs_status()",
    )
    .await;
    assert!(pending >= 1, "the change waits in the buffer: {pending}");
    let out = runtime.refresh("department_stats").await.unwrap();
    assert_eq!(out.rows_changed, 1, "only the Frontend row is touched");
    expect(
        rows(pool, &format!("{STATS} WHERE department_name = 'Frontend'")).await,
        &["6|Frontend|2|215000.00|107500.000000000000"],
    );

    // 4b: a new department flows into the tree (recompute-and-diff) and the stats.
    sqlx::query("INSERT INTO departments (id, name, parent_id) VALUES (8, 'DevOps', 2)")
        .execute(pool)
        .await
        .unwrap();
    let out = runtime.refresh("department_tree").await.unwrap();
    assert_eq!(out.rows_changed, 1);
    expect(
        rows(pool, &format!("{TREE} WHERE name = 'DevOps'")).await,
        &["8|DevOps|2|Company > Engineering > DevOps|2"],
    );
    runtime.refresh("department_stats").await.unwrap();
    expect(
        rows(pool, &format!("{STATS} WHERE department_id = 8")).await,
        &["8|DevOps|0|0|0"],
    );

    // 4c: Platform moves under Operations.
    sqlx::query("UPDATE departments SET parent_id = 4 WHERE id = 7")
        .execute(pool)
        .await
        .unwrap();
    runtime.refresh("department_tree").await.unwrap();
    expect(
        rows(pool, &format!("{TREE} WHERE name = 'Platform'")).await,
        &["7|Platform|4|Company > Operations > Platform|2"],
    );

    // 4d: Bob leaves.
    sqlx::query("DELETE FROM employees WHERE name = 'Bob'")
        .execute(pool)
        .await
        .unwrap();
    runtime.refresh("department_stats").await.unwrap();
    expect(
        rows(pool, &format!("{STATS} WHERE department_name = 'Backend'")).await,
        &["5|Backend|1|120000.00|120000.000000000000"],
    );

    // A refresh with nothing to do changes nothing.
    assert_eq!(
        runtime
            .refresh("department_stats")
            .await
            .unwrap()
            .rows_changed,
        0
    );
    assert_eq!(
        runtime
            .refresh("department_tree")
            .await
            .unwrap()
            .rows_changed,
        0
    );

    // Step 5: the scheduler refreshes a stream table whose data is older than its
    // schedule, with no manual call.
    runtime
        .create_stream_table(
            "headcount_by_parent",
            "SELECT d.parent_id, count(*) AS departments FROM departments d GROUP BY d.parent_id",
            "1s",
            Mode::Differential,
        )
        .await
        .unwrap();
    sqlx::query("INSERT INTO departments (id, name, parent_id) VALUES (9, 'SRE', 4)")
        .execute(pool)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = count(
            pool,
            "SELECT departments FROM headcount_by_parent WHERE parent_id = 4",
        )
        .await;
        if n == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduler did not refresh within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Status and statistics.
    let status = runtime.status().await.unwrap();
    let names: Vec<&str> = status.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["department_stats", "department_tree", "headcount_by_parent"]
    );
    let stats = status
        .iter()
        .find(|s| s.name == "department_stats")
        .unwrap();
    assert_eq!(stats.refresh_mode, "DIFFERENTIAL");
    assert_eq!(stats.schedule, "30s");
    assert!(stats.refresh_count >= 4, "{stats:?}");
    assert!(stats.last_refresh_at.is_some());
    assert!(stats.avg_duration_ms.is_some() && stats.max_duration_ms >= stats.min_duration_ms);
    assert!(stats.last_error.is_none());
    let sched = status
        .iter()
        .find(|s| s.name == "headcount_by_parent")
        .unwrap();
    assert!(sched.refresh_count >= 1, "{sched:?}");
    let view = count(
        pool,
        "SELECT count(*) FROM pgstream.pg_stat_stream_tables WHERE refresh_count > 0 AND avg_duration_ms IS NOT NULL",
    )
    .await;
    assert_eq!(view, 3);

    runtime.shutdown().await;

    // Step 7: clean up: storage tables, triggers, buffers and catalog rows go.
    for st in ["headcount_by_parent", "department_stats", "department_tree"] {
        pgstream::drop_stream_table(pool, st).await.unwrap();
    }
    assert_eq!(
        count(pool, "SELECT count(*) FROM pgstream.pgs_stream_tables").await,
        0
    );
    assert_eq!(count(pool, "SELECT count(*) FROM pg_class WHERE relname IN ('department_stats', 'department_tree')").await, 0);
    assert_eq!(
        count(pool, "SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('departments'::regclass, 'employees'::regclass) AND NOT tgisinternal").await,
        0
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgstream_changes' AND c.relkind = 'r'").await,
        0
    );
    sqlx::raw_sql("DROP TABLE employees; DROP TABLE departments;")
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_through_sql_functions() {
    let db = test_db().await;
    step1(&db).await;
    // Creation needs the compiler, which lives in the application (or the CLI).
    for def in [DepartmentTree::DEF, DepartmentStats::DEF] {
        pgstream::create_stream_table(&db.pool, &def.spec())
            .await
            .unwrap();
    }
    // From here on, only SQL, on a plain connection in autocommit (READ COMMITTED).
    let psql = db.new_pool(1).await;
    assert_initial_tables(&psql).await;
    let refresh = |name: &'static str| {
        let psql = psql.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT pgstream.refresh_stream_table('{name}')"))
                .fetch_one(&psql)
                .await
                .unwrap()
        }
    };
    sqlx::raw_sql(
        "INSERT INTO employees (name, department_id, salary) VALUES ('Heidi', 6, 105000)",
    )
    .execute(&psql)
    .await
    .unwrap();
    assert_eq!(refresh("department_stats").await, 1);
    expect(
        rows(
            &psql,
            &format!("{STATS} WHERE department_name = 'Frontend'"),
        )
        .await,
        &["6|Frontend|2|215000.00|107500.000000000000"],
    );
    sqlx::raw_sql("INSERT INTO departments (id, name, parent_id) VALUES (8, 'DevOps', 2)")
        .execute(&psql)
        .await
        .unwrap();
    refresh("department_tree").await;
    sqlx::raw_sql("UPDATE departments SET parent_id = 4 WHERE id = 7")
        .execute(&psql)
        .await
        .unwrap();
    refresh("department_tree").await;
    expect(
        rows(&psql, &format!("{TREE} WHERE id IN (7, 8) ORDER BY id")).await,
        &[
            "7|Platform|4|Company > Operations > Platform|2",
            "8|DevOps|2|Company > Engineering > DevOps|2",
        ],
    );
    sqlx::raw_sql("DELETE FROM employees WHERE name = 'Bob'")
        .execute(&psql)
        .await
        .unwrap();
    refresh("department_stats").await;
    expect(
        rows(&psql, &format!("{STATS} WHERE department_name = 'Backend'")).await,
        &["5|Backend|1|120000.00|120000.000000000000"],
    );

    // A transaction that refreshes and rolls back leaves the previous state.
    let mut tx = psql.begin().await.unwrap();
    sqlx::query("DELETE FROM employees WHERE name = 'Alice'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT pgstream.refresh_stream_table('department_stats')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    expect(
        rows(&psql, &format!("{STATS} WHERE department_name = 'Backend'")).await,
        &["5|Backend|1|120000.00|120000.000000000000"],
    );

    // Status and statistics from SQL.
    let names = rows(
        &psql,
        "SELECT name, refresh_mode FROM pgstream.pgs_status() ORDER BY name",
    )
    .await;
    assert_eq!(
        names,
        [
            "department_stats|DIFFERENTIAL",
            "department_tree|DIFFERENTIAL"
        ]
    );
    assert_eq!(count(&psql, "SELECT refresh_count FROM pgstream.pg_stat_stream_tables WHERE name = 'department_stats'").await, 2);

    // Step 7 from SQL.
    sqlx::raw_sql(
        "SELECT pgstream.drop_stream_table('department_stats'); SELECT pgstream.drop_stream_table('department_tree');
         DROP TABLE employees; DROP TABLE departments;",
    )
    .execute(&psql)
    .await
    .unwrap();
    assert_eq!(
        count(&psql, "SELECT count(*) FROM pgstream.pgs_stream_tables").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorials_comparison_trap_fails_with_the_reason_and_leaves_nothing() {
    let db = test_db().await;
    step1(&db).await;
    let trap = DepartmentTree::DEF.query.replace("' > '", "'' > ''");
    let err = pgstream::create_stream_table(
        &db.pool,
        &pgstream::spec("department_tree", &trap, "30s", Mode::Differential).unwrap(),
    )
    .await
    .expect_err("PostgreSQL rejects the tutorial's query as written");
    let msg = err.to_string();
    assert!(msg.contains("department_tree"), "{msg}");
    // Caught before anything is installed, with PostgreSQL's reason and the fix.
    assert!(msg.contains("UNION types cannot be matched"), "{msg}");
    assert!(msg.contains("text") && msg.contains("boolean"), "{msg}");
    assert!(msg.contains("write the string literal ' > '"), "{msg}");
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM pg_class WHERE relname = 'department_tree'"
        )
        .await,
        0
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'departments'::regclass AND NOT tgisinternal").await, 0);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM pgstream.pgs_stream_tables").await,
        0
    );
}
