//! The SQL API through a running runtime (issue 17): `pgstream.create_stream_table`,
//! `wait_for_stream_table`, `alter_stream_table`, with the requests carried out by
//! `pgstream run` (the command line, as a child process) or by runtimes in this
//! process. Every SQL statement below is a psql-style autocommit statement.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pgstream::Runtime;
use pgstream_tests::tutorial::STEP1;
use pgstream_tests::{test_db, TestDb};
use sqlx::{Connection, PgPool};

/// `pgstream run` as a child process, killed when dropped.
struct Cli(Child);

impl Cli {
    fn run(db: &TestDb, args: &[&str]) -> Cli {
        Cli(Command::new(env!("CARGO_BIN_EXE_pgstream"))
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start pgstream"))
    }

    /// `pgstream run --once`, to completion.
    fn once(db: &TestDb) {
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
async fn wait_for_runtime(pool: &PgPool) {
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
async fn request_and_wait(
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

async fn sql(pool: &PgPool, statement: &str) {
    sqlx::raw_sql(statement)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn sql_err(pool: &PgPool, statement: &str) -> sqlx::Error {
    match sqlx::raw_sql(statement).execute(pool).await {
        Ok(_) => panic!("{statement}: succeeded, expected an error"),
        Err(e) => e,
    }
}

fn code_of(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

/// Rows as text, one string per row (`|`-separated), in the query's order.
async fn rows(pool: &PgPool, query: &str) -> Vec<String> {
    sqlx::query_scalar::<_, String>(&format!(
        "SELECT (SELECT string_agg(coalesce(j.v, ''), '|' ORDER BY j.ord)
                   FROM json_each_text(to_json(q)) WITH ORDINALITY AS j(k, v, ord))
           FROM ({query}) AS q"
    ))
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("{query}: {e}"))
}

async fn scalar_text(pool: &PgPool, query: &str) -> Option<String> {
    sqlx::query_scalar::<_, Option<String>>(query)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// The stream table equals its query, as multisets.
async fn assert_matches_query(pool: &PgPool, table: &str, query: &str) {
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

const STEP2: &str = "SELECT pgstream.create_stream_table(
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

const STATS_QUERY: &str = "
    SELECT
        d.id AS department_id,
        d.name AS department_name,
        COUNT(e.id) AS headcount,
        COALESCE(SUM(e.salary), 0) AS total_salary,
        COALESCE(AVG(e.salary), 0) AS avg_salary
    FROM departments d
    LEFT JOIN employees e ON e.department_id = d.id
    GROUP BY d.id, d.name";

fn step3() -> String {
    format!(
        "SELECT pgstream.create_stream_table('department_stats', $${STATS_QUERY}$$, '30s', 'DIFFERENTIAL')"
    )
}

/// A database holding the reference's step 1 (departments and employees).
async fn tutorial_db() -> TestDb {
    let db = test_db().await;
    sql(&db.pool, STEP1).await;
    db
}

/// A runtime (no stream tables of its own) on `pool`, ticking every `tick`.
async fn start(pool: &PgPool, tick: Duration) -> Runtime {
    Runtime::builder(pool.clone())
        .tick(tick)
        .start()
        .await
        .unwrap()
}

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

#[tokio::test]
async fn alter_changes_schedule_and_mode_and_keeps_the_table_right() {
    let db = tutorial_db().await;
    let p = &db.pool;
    let runtime = start(p, Duration::from_secs(3600)).await;
    sql(p, &step3()).await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.alter_stream_table('department_stats', schedule => '*/5 * * * *')",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    assert_eq!(
        rows(
            p,
            "SELECT schedule, refresh_mode FROM pgstream.pgs_status()"
        )
        .await,
        ["*/5 * * * *|DIFFERENTIAL"]
    );
    // Changes made before the mode change are not lost by it.
    sql(
        p,
        "INSERT INTO employees (name, department_id, salary) VALUES ('Judy', 2, 99000)",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.alter_stream_table('department_stats', refresh_mode => 'full')",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    assert_eq!(
        rows(
            p,
            "SELECT schedule, refresh_mode FROM pgstream.pgs_status()"
        )
        .await,
        ["*/5 * * * *|FULL"]
    );
    assert_matches_query(p, "department_stats", STATS_QUERY).await;
    sql(
        p,
        "UPDATE employees SET salary = salary * 2 WHERE department_id = 5",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.refresh_stream_table('department_stats')",
    )
    .await;
    assert_matches_query(p, "department_stats", STATS_QUERY).await;
    sql(
        p,
        "SELECT pgstream.alter_stream_table('department_stats', refresh_mode => 'DIFFERENTIAL')",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    sql(p, "DELETE FROM employees WHERE department_id = 3").await;
    sql(
        p,
        "SELECT pgstream.refresh_stream_table('department_stats')",
    )
    .await;
    assert_matches_query(p, "department_stats", STATS_QUERY).await;
    // A bad schedule fails the request and changes nothing.
    sql(
        p,
        "SELECT pgstream.alter_stream_table('department_stats', schedule => '61 * * * *')",
    )
    .await;
    let e = sql_err(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    assert_eq!(code_of(&e), "PGS02");
    assert_eq!(
        rows(
            p,
            "SELECT schedule, refresh_mode FROM pgstream.pgs_status()"
        )
        .await,
        ["*/5 * * * *|DIFFERENTIAL"]
    );
    // Altering what does not exist.
    sql(
        p,
        "SELECT pgstream.alter_stream_table('nope', schedule => '1m')",
    )
    .await;
    let e = sql_err(p, "SELECT pgstream.wait_for_stream_table('nope')").await;
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = sql_err(p, "SELECT pgstream.alter_stream_table('department_stats')").await;
    assert!(e.to_string().contains("changes nothing"), "{e}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_role_may_request_only_over_what_it_may_read() {
    let db = tutorial_db().await;
    let p = &db.pool;
    pgstream::install(p).await.unwrap();
    let alice = format!("alice_{}", db.name);
    let bob = format!("bob_{}", db.name);
    sql(
        p,
        &format!(
            "CREATE ROLE {alice} LOGIN; CREATE ROLE {bob} LOGIN;
             GRANT USAGE ON SCHEMA pgstream TO {alice}, {bob};
             GRANT SELECT ON departments TO {alice}, {bob};
             GRANT CREATE ON SCHEMA public TO {alice};"
        ),
    )
    .await;
    let runtime = start(p, Duration::from_secs(3600)).await;
    let as_role = |role: &str| db.connect_options().username(role);
    let mut a = sqlx::PgConnection::connect_with(&as_role(&alice))
        .await
        .unwrap();

    // No SELECT on employees: refused, nothing created.
    let e = request_and_wait(&mut a, &step3(), "department_stats")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("may not read") && e.to_string().contains("employees"),
        "{e}"
    );
    assert_eq!(
        scalar_text(p, "SELECT to_regclass('department_stats')::text").await,
        None
    );
    // A request in another role's name is recorded in the inserting role's.
    let e = request_and_wait(&mut a, "INSERT INTO pgstream.pgs_requests (kind, name, query, schedule, refresh_mode, requested_by, state)
         VALUES ('create', 'spoof', 'SELECT id FROM employees', '1m', 'FULL', 'postgres', 'created')", "spoof").await.unwrap_err();
    assert!(e.to_string().contains("may not read"), "{e}");
    assert_eq!(
        scalar_text(
            p,
            "SELECT requested_by::text FROM pgstream.pgs_requests WHERE name = 'spoof'"
        )
        .await,
        Some(alice.clone())
    );

    // A function of its own would run as the runtime's role at every refresh.
    sql(
        p,
        &format!(
        "CREATE FUNCTION public.bump(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x + 1';
         ALTER FUNCTION public.bump(int) OWNER TO {alice};"
    ),
    )
    .await;
    let e = request_and_wait(&mut a, "SELECT pgstream.create_stream_table('bumped', 'SELECT public.bump(id) AS b FROM departments', '1m', 'FULL')", "bumped").await.unwrap_err();
    assert!(
        e.to_string().contains("public.bump, outside pg_catalog"),
        "{e}"
    );

    // With SELECT on every source: created, readable by alice, owned by the runtime's role.
    sql(p, &format!("GRANT SELECT ON employees TO {alice}")).await;
    request_and_wait(&mut a, &step3(), "department_stats")
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM department_stats")
        .fetch_one(&mut a)
        .await
        .unwrap();
    assert_eq!(n, 7);
    assert_eq!(
        scalar_text(
            p,
            "SELECT requested_by::text FROM pgstream.pgs_stream_tables"
        )
        .await,
        Some(alice.clone())
    );
    let owner_is_requester: bool = sqlx::query_scalar(&format!(
        "SELECT pg_get_userbyid(relowner) = '{alice}' FROM pg_class WHERE oid = 'department_stats'::regclass"
    ))
    .fetch_one(p)
    .await
    .unwrap();
    assert!(!owner_is_requester);
    // alice may alter it; bob may not.
    request_and_wait(
        &mut a,
        "SELECT pgstream.alter_stream_table('department_stats', schedule => '5m')",
        "department_stats",
    )
    .await
    .unwrap();
    let mut b = sqlx::PgConnection::connect_with(&as_role(&bob))
        .await
        .unwrap();
    let e = request_and_wait(
        &mut b,
        "SELECT pgstream.alter_stream_table('department_stats', schedule => '1s')",
        "department_stats",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("may not alter"), "{e}");
    // Replacing the query (issue 16): bob may not; alice may, over what she may read
    // only; the replaced stream table stays hers, and her SELECT on it is kept.
    let e = request_and_wait(
        &mut b,
        "SELECT pgstream.replace_stream_table('department_stats', 'SELECT id FROM departments')",
        "department_stats",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("may not replace"), "{e}");
    sql(p, "CREATE TABLE secret (id int PRIMARY KEY)").await;
    let e = request_and_wait(
        &mut a,
        "SELECT pgstream.replace_stream_table('department_stats', 'SELECT id FROM secret')",
        "department_stats",
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("may not read") && e.to_string().contains("secret"),
        "{e}"
    );
    let replaced = "SELECT d.id AS department_id, d.name AS department_name FROM departments d";
    request_and_wait(
        &mut a,
        &format!("SELECT pgstream.replace_stream_table('department_stats', '{replaced}')"),
        "department_stats",
    )
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM department_stats")
        .fetch_one(&mut a)
        .await
        .unwrap();
    let departments: i64 = sqlx::query_scalar("SELECT count(*) FROM departments")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(n, departments);
    assert_eq!(
        scalar_text(
            p,
            "SELECT requested_by::text FROM pgstream.pgs_stream_tables WHERE table_name = 'department_stats'"
        )
        .await,
        Some(alice.clone())
    );
    assert_eq!(
        scalar_text(
            p,
            "SELECT query FROM pgstream.pgs_stream_tables WHERE table_name = 'department_stats'"
        )
        .await
        .as_deref(),
        Some(replaced)
    );
    // bob may read the sources but not create in public.
    let e = request_and_wait(
        &mut b,
        "SELECT pgstream.create_stream_table('bobs', 'SELECT id FROM departments', '1m', 'FULL')",
        "bobs",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("may not create tables"), "{e}");
    assert_eq!(
        rows(p, "SELECT schedule FROM pgstream.pgs_status()").await,
        ["5m"]
    );
    drop(a);
    drop(b);
    runtime.shutdown().await;
}
