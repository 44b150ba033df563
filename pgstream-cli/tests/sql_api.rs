//! The SQL API through a running runtime (issue 17): `pgstream.create_stream_table`,
//! `wait_for_stream_table`, `alter_stream_table`, with the requests carried out by
//! `pgstream run` (the command line, as a child process) or by runtimes in this
//! process. Every SQL statement below is a psql-style autocommit statement.

mod sql_api_common;

use sql_api_common::*;

#[tokio::test]
async fn the_reference_from_sql_against_pgstream_run() {
    let db = test_db().await;
    let p = &db.pool;
    let _cli = Cli::run(&db, &["run", "--tick", "200ms"]);
    wait_for_runtime(p).await;

    // Step 1.
    sql(p, STEP1).await;

    // Step 2, then the one wait, then the query of the reference.
    sql(p, STEP2).await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_tree')",
    )
    .await;
    assert_eq!(
        rows(
            p,
            "SELECT id, name, parent_id, path, depth FROM department_tree ORDER BY path"
        )
        .await,
        [
            "1|Company||Company|0",
            "2|Engineering|1|Company > Engineering|1",
            "5|Backend|2|Company > Engineering > Backend|2",
            "6|Frontend|2|Company > Engineering > Frontend|2",
            "7|Platform|2|Company > Engineering > Platform|2",
            "4|Operations|1|Company > Operations|1",
            "3|Sales|1|Company > Sales|1",
        ]
    );

    // Step 3.
    sql(p, &step3()).await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    assert_eq!(
        rows(p, "SELECT department_id, department_name, headcount, total_salary, avg_salary FROM department_stats ORDER BY department_name").await,
        [
            "5|Backend|2|235000.00|117500.000000000000",
            "1|Company|0|0|0",
            "2|Engineering|0|0|0",
            "6|Frontend|1|110000.00|110000.000000000000",
            "4|Operations|1|100000.00|100000.000000000000",
            "7|Platform|1|130000.00|130000.000000000000",
            "3|Sales|2|185000.00|92500.000000000000",
        ]
    );

    // Step 4a.
    sql(
        p,
        "INSERT INTO employees (name, department_id, salary) VALUES ('Heidi', 6, 105000)",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.refresh_stream_table('department_stats')",
    )
    .await;
    assert_eq!(
        rows(p, "SELECT department_id, department_name, headcount, total_salary, avg_salary FROM department_stats WHERE department_name = 'Frontend'").await,
        ["6|Frontend|2|215000.00|107500.000000000000"]
    );
    // 4b.
    sql(
        p,
        "INSERT INTO departments (id, name, parent_id) VALUES (8, 'DevOps', 2)",
    )
    .await;
    sql(p, "SELECT pgstream.refresh_stream_table('department_tree')").await;
    assert_eq!(
        rows(
            p,
            "SELECT id, name, parent_id, path, depth FROM department_tree WHERE name = 'DevOps'"
        )
        .await,
        ["8|DevOps|2|Company > Engineering > DevOps|2"]
    );
    // 4c.
    sql(p, "UPDATE departments SET parent_id = 4 WHERE id = 7").await;
    sql(p, "SELECT pgstream.refresh_stream_table('department_tree')").await;
    assert_eq!(
        rows(
            p,
            "SELECT id, name, parent_id, path, depth FROM department_tree WHERE name = 'Platform'"
        )
        .await,
        ["7|Platform|4|Company > Operations > Platform|2"]
    );
    // 4d.
    sql(p, "DELETE FROM employees WHERE name = 'Bob'").await;
    sql(
        p,
        "SELECT pgstream.refresh_stream_table('department_stats')",
    )
    .await;
    assert_eq!(
        rows(p, "SELECT department_id, department_name, headcount, total_salary, avg_salary FROM department_stats WHERE department_name = 'Backend'").await,
        ["5|Backend|1|120000.00|120000.000000000000"]
    );

    // Step 5: the scheduler of `pgstream run` refreshes by itself; a shorter schedule
    // through alter_stream_table makes it visible quickly.
    sql(
        p,
        "SELECT pgstream.alter_stream_table('department_stats', schedule => '1s')",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    assert_eq!(
        scalar_text(
            p,
            "SELECT schedule FROM pgstream.pgs_status() WHERE name = 'department_stats'"
        )
        .await
        .as_deref(),
        Some("1s")
    );
    sql(
        p,
        "INSERT INTO employees (name, department_id, salary) VALUES ('Ivan', 3, 80000)",
    )
    .await;
    let start = Instant::now();
    loop {
        let n = scalar_text(
            p,
            "SELECT headcount::text FROM department_stats WHERE department_id = 3",
        )
        .await;
        if n.as_deref() == Some("3") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the scheduler did not refresh department_stats"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = rows(
        p,
        "SELECT name, refresh_mode, status FROM pgstream.pgs_status() ORDER BY name",
    )
    .await;
    assert_eq!(
        status,
        [
            "department_stats|DIFFERENTIAL|ACTIVE",
            "department_tree|DIFFERENTIAL|ACTIVE"
        ]
    );
    let refreshed: i64 =
        sqlx::query_scalar("SELECT min(refresh_count) FROM pgstream.pg_stat_stream_tables")
            .fetch_one(p)
            .await
            .unwrap();
    assert!(refreshed >= 1);

    // Step 6: the two strategies.
    let strategies = rows(
        p,
        "SELECT name, strategy FROM pgstream.pgs_status() ORDER BY name",
    )
    .await;
    assert!(
        strategies[1].contains("recompute") || strategies[1].to_lowercase().contains("recursive"),
        "{strategies:?}"
    );

    // Step 7.
    sql(p, "SELECT pgstream.drop_stream_table('department_stats')").await;
    sql(p, "SELECT pgstream.drop_stream_table('department_tree')").await;
    sql(p, "DROP TABLE employees; DROP TABLE departments;").await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pgstream.pgs_stream_tables")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_failing_query_reaches_sql_with_the_compilers_message() {
    let db = tutorial_db().await;
    let p = &db.pool;
    let runtime = start(p, Duration::from_millis(200)).await;
    // The reference's own step 2, with its `'' > ''` trap (a comparison: text UNION boolean).
    sql(p, &STEP2.replace("' > '", "'' > ''")).await;
    let e = sql_err(
        p,
        "SELECT pgstream.wait_for_stream_table('department_tree')",
    )
    .await;
    assert_eq!(code_of(&e), "PGS02", "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("department_tree") && msg.contains("boolean"),
        "{msg}"
    );
    // A misspelt column: the compiler's diagnostic with its hint.
    sql(p, "SELECT pgstream.create_stream_table('bad', 'SELECT nmae FROM departments', '30s', 'DIFFERENTIAL')").await;
    let e = sql_err(p, "SELECT pgstream.wait_for_stream_table('bad')").await;
    assert_eq!(code_of(&e), "PGS02");
    assert!(e.to_string().contains("nmae"), "{e}");
    let (state, message): (String, String) =
        sqlx::query_as("SELECT state, message FROM pgstream.pgs_request_status WHERE name = 'bad'")
            .fetch_one(p)
            .await
            .unwrap();
    assert_eq!(state, "failed");
    assert!(message.contains("nmae"), "{message}");
    // A misspelt table: the request compiles against the relations the query names,
    // and again against the whole schema to suggest the nearest name.
    sql(p, "SELECT pgstream.create_stream_table('bad_table', 'SELECT id FROM departmnts', '30s', 'DIFFERENTIAL')").await;
    let e = sql_err(p, "SELECT pgstream.wait_for_stream_table('bad_table')").await;
    assert_eq!(code_of(&e), "PGS02");
    assert!(
        e.to_string().contains("unknown table `departmnts`")
            && e.to_string().contains("departments"),
        "{e}"
    );
    // Nothing was created.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pgstream.pgs_stream_tables")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        scalar_text(p, "SELECT to_regclass('bad')::text").await,
        None
    );
    // Bad arguments are refused at once, in the caller's statement.
    let e = sql_err(
        p,
        "SELECT pgstream.create_stream_table('x', 'SELECT 1', '30s', 'SOMETIMES')",
    )
    .await;
    assert!(e.to_string().contains("unknown refresh mode"), "{e}");
    sql(p, "SELECT pgstream.create_stream_table('sched', 'SELECT id FROM departments', 'soon', 'FULL')").await;
    let e = sql_err(p, "SELECT pgstream.wait_for_stream_table('sched')").await;
    assert!(e.to_string().contains("soon"), "{e}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_rolled_back_request_never_happens_and_an_open_one_cannot_be_waited_for() {
    let db = tutorial_db().await;
    let p = &db.pool;
    let runtime = start(p, Duration::from_millis(200)).await;
    let mut conn = p.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::raw_sql(&step3()).execute(&mut *tx).await.unwrap();
    let e = sqlx::raw_sql("SELECT pgstream.wait_for_stream_table('department_stats', '1s')")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not committed yet"), "{e}");
    tx.rollback().await.unwrap();
    drop(conn);
    runtime.run_once().await.unwrap();
    let requests: i64 = sqlx::query_scalar("SELECT count(*) FROM pgstream.pgs_requests")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(requests, 0);
    assert_eq!(
        scalar_text(p, "SELECT to_regclass('department_stats')::text").await,
        None
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn two_runtimes_racing_for_requests_make_one_stream_table() {
    let db = tutorial_db().await;
    let p = &db.pool;
    pgstream::install(p).await.unwrap();
    // Requests made while no runtime runs, so both runtimes start on the same ones:
    // the same definition twice, and two definitions for one name.
    sql(p, &step3()).await;
    sql(p, &step3()).await;
    sql(
        p,
        "SELECT pgstream.create_stream_table('clash', 'SELECT id FROM departments', '30s', 'FULL')",
    )
    .await;
    sql(p, "SELECT pgstream.create_stream_table('clash', 'SELECT id, name FROM departments', '30s', 'FULL')").await;
    let (a, b) = tokio::join!(
        start(p, Duration::from_millis(100)),
        start(p, Duration::from_millis(100)),
    );
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    // The last request for `clash` may be the one that failed.
    let _ = sqlx::raw_sql("SELECT pgstream.wait_for_stream_table('clash')")
        .execute(p)
        .await;
    let states = rows(
        p,
        "SELECT name, state FROM pgstream.pgs_requests ORDER BY name, state",
    )
    .await;
    // Which of the two clashing requests wins depends on the race; one does.
    assert_eq!(
        states,
        [
            "clash|created",
            "clash|failed",
            "department_stats|created",
            "department_stats|created",
        ]
    );
    let msg = scalar_text(
        p,
        "SELECT message FROM pgstream.pgs_requests WHERE state = 'failed'",
    )
    .await
    .unwrap();
    assert!(msg.contains("already exists"), "{msg}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pgstream.pgs_stream_tables")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_matches_query(p, "department_stats", STATS_QUERY).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn without_a_runtime_a_request_stays_pending_until_run_once() {
    let db = tutorial_db().await;
    let p = &db.pool;
    pgstream::install(p).await.unwrap();
    sql(p, &step3()).await;
    let (state, note) = sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT state, note FROM pgstream.pgs_request_status WHERE name = 'department_stats'",
    )
    .fetch_one(p)
    .await
    .unwrap();
    assert_eq!(state, "pending");
    assert!(note
        .unwrap_or_default()
        .contains("no pgstream runtime is running"));
    let e = sql_err(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats', '200ms')",
    )
    .await;
    assert!(
        e.to_string().contains("no pgstream runtime is running"),
        "{e}"
    );
    Cli::once(&db);
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats', '1s')",
    )
    .await;
    assert_matches_query(p, "department_stats", STATS_QUERY).await;

    // Requests made before an application starts are carried out at its start.
    sql(
        p,
        "SELECT pgstream.alter_stream_table('department_stats', refresh_mode => 'FULL')",
    )
    .await;
    let runtime = Runtime::builder(p.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats', '1s')",
    )
    .await;
    assert_eq!(
        scalar_text(p, "SELECT refresh_mode FROM pgstream.pgs_status()")
            .await
            .as_deref(),
        Some("FULL")
    );
    runtime.shutdown().await;
}
