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

/// The stream table equals its query on `conn`, inside its transaction.
async fn exact_on(conn: &mut PgConnection, what: &str) {
    let d = diff_on(conn, STATS, "dept_stats", STATS_COLS).await;
    assert_eq!(
        d, 0,
        "after {what}: {d} row(s) differ inside the transaction"
    );
}

#[tokio::test]
async fn nested_statements_and_truncate_are_applied_once() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    // A table that is no source, whose trigger writes both sources: the sources'
    // statements run inside a statement the stream table knows nothing of.
    db.exec(
        "CREATE TABLE hires (dept int, emp int, salary numeric);
         CREATE FUNCTION hire() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO departments VALUES (NEW.dept, 'd' || NEW.dept) ON CONFLICT DO NOTHING;
             INSERT INTO employees VALUES (NEW.emp, 'e' || NEW.emp, NEW.dept, NEW.salary);
             UPDATE employees SET salary = salary + 1 WHERE department_id = NEW.dept;
             RETURN NEW;
         END $$;
         CREATE TRIGGER hire AFTER INSERT ON hires FOR EACH ROW EXECUTE FUNCTION hire();
         -- A trigger on a source that writes the other source (and itself).
         CREATE FUNCTION rename_dept() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.name <> OLD.name THEN
                 INSERT INTO employees VALUES (1000 + NEW.id, 'welcome', NEW.id, 1);
             END IF;
             RETURN NULL;
         END $$;
         CREATE TRIGGER rename_dept AFTER UPDATE ON departments FOR EACH ROW EXECUTE FUNCTION rename_dept();",
    )
    .await;
    create(&db, "dept_stats", STATS, Mode::Immediate).await;
    let mut conn = db.connect().await;
    exec_on(&mut conn, "BEGIN").await;
    let steps = [
        "INSERT INTO hires VALUES (3, 10, 100), (3, 11, 110), (1, 12, 5)",
        // RI actions: ON UPDATE CASCADE moves the employees with their department.
        "UPDATE departments SET id = 4 WHERE id = 3",
        // A source's row trigger writing the other source, twice in one statement.
        "UPDATE departments SET name = name || '!'",
        // A writable CTE writing both sources, with an RI cascade inside.
        "WITH d AS (DELETE FROM departments WHERE id = 2 RETURNING id),
              e AS (UPDATE employees SET salary = salary * 2 WHERE department_id = 1 RETURNING id)
         INSERT INTO departments SELECT 5, 'five' FROM d",
        "INSERT INTO employees SELECT 20 + g, 'x', 5, g FROM generate_series(1, 30) g",
        "MERGE INTO employees e USING (VALUES (21, 500), (99, 7)) v(id, s) ON e.id = v.id
         WHEN MATCHED THEN UPDATE SET salary = v.s
         WHEN NOT MATCHED THEN INSERT VALUES (v.id, 'm', 4, v.s)",
        "TRUNCATE employees",
        "INSERT INTO employees VALUES (1, 'a', 1, 10)",
        "TRUNCATE departments CASCADE",
        "INSERT INTO departments VALUES (7, 'seven')",
        "INSERT INTO hires VALUES (7, 70, 7)",
    ];
    for step in steps {
        exec_on(&mut conn, step).await;
        exact_on(&mut conn, step).await;
    }
    exec_on(&mut conn, "COMMIT").await;
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
    // Each statement on its own, autocommit.
    for step in [
        "INSERT INTO hires VALUES (8, 80, 8)",
        "UPDATE departments SET id = 9 WHERE id = 8",
        "TRUNCATE employees",
        "INSERT INTO employees VALUES (1, 'a', 9, 10)",
    ] {
        db.exec(step).await;
        assert_eq!(
            difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
            0,
            "after {step}"
        );
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn stream_tables_over_an_immediate_one_follow_in_the_same_transaction() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    create(&db, "dept_stats", STATS, Mode::Immediate).await;
    // IMMEDIATE over IMMEDIATE: maintained by the same writer.
    let big = "SELECT department_id, total FROM dept_stats WHERE headcount >= 2";
    create(&db, "big_depts", big, Mode::Immediate).await;
    // DIFFERENTIAL over IMMEDIATE: on its own schedule.
    let totals = "SELECT sum(total) AS total, count(*) AS n FROM dept_stats";
    create(&db, "all_totals", totals, Mode::Differential).await;
    // IMMEDIATE over DIFFERENTIAL: maintained by whoever refreshes the upstream.
    let names = "SELECT id, name FROM departments WHERE name <> 'ops'";
    create(&db, "dept_names", names, Mode::Differential).await;
    let named = "SELECT count(*) AS n FROM dept_names";
    create(&db, "named_count", named, Mode::Immediate).await;

    let mut conn = db.connect().await;
    exec_on(&mut conn, "BEGIN").await;
    exec_on(
        &mut conn,
        "INSERT INTO employees VALUES (4, 'd', 2, 40); UPDATE employees SET salary = 1 WHERE id = 1",
    )
    .await;
    assert_eq!(
        diff_on(&mut conn, big, "big_depts", "department_id, total").await,
        0
    );
    exec_on(&mut conn, "DELETE FROM employees WHERE department_id = 1").await;
    assert_eq!(
        diff_on(&mut conn, big, "big_depts", "department_id, total").await,
        0
    );
    exec_on(&mut conn, "INSERT INTO departments VALUES (3, 'new')").await;
    exec_on(&mut conn, "COMMIT").await;
    assert_eq!(
        difference(&db.pool, big, "big_depts", "department_id, total").await,
        0
    );
    // The DIFFERENTIAL reader waits for its refresh; then it is exact too.
    assert_ne!(
        difference(&db.pool, totals, "all_totals", "total, n").await,
        0
    );
    db.exec("SELECT pgstream.refresh_stream_table('all_totals')")
        .await;
    assert_eq!(
        difference(&db.pool, totals, "all_totals", "total, n").await,
        0
    );
    // The IMMEDIATE reader of a DIFFERENTIAL stream table follows its refresh, in
    // the refresh's transaction.
    let base = "SELECT count(*) AS n FROM departments WHERE name <> 'ops'";
    assert_ne!(difference(&db.pool, base, "named_count", "n").await, 0);
    let mut conn2 = db.connect().await;
    exec_on(&mut conn2, "BEGIN").await;
    exec_on(
        &mut conn2,
        "SELECT pgstream.refresh_stream_table('dept_names')",
    )
    .await;
    assert_eq!(diff_on(&mut conn2, base, "named_count", "n").await, 0);
    assert_eq!(diff_on(&mut conn2, named, "named_count", "n").await, 0);
    exec_on(&mut conn2, "COMMIT").await;
    assert_eq!(difference(&db.pool, named, "named_count", "n").await, 0);
    conn.close().await.unwrap();
    conn2.close().await.unwrap();
}

/// The number of refreshes of `name` so far.
async fn refreshes(db: &TestDb, name: &str) -> i64 {
    scalar_i64(
        &db.pool,
        &format!(
            "SELECT coalesce(max(refresh_count), 0)::int8 FROM pgstream.pg_stat_stream_tables WHERE name = '{name}'"
        ),
    )
    .await
}

/// Whether `table` carries the IMMEDIATE triggers.
async fn has_immediate_triggers(db: &TestDb, table: &str) -> bool {
    scalar_i64(
        &db.pool,
        &format!(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = '{table}'::regclass AND tgname LIKE '__pgs_immediate%'"
        ),
    )
    .await
        == 2
}

#[tokio::test]
async fn switching_modes_keeps_the_stream_table_exact() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    create(&db, "dept_stats", STATS, Mode::Differential).await;
    assert!(!has_immediate_triggers(&db, "employees").await);
    db.exec("INSERT INTO employees VALUES (4, 'd', 2, 40)")
        .await;
    // DIFFERENTIAL -> IMMEDIATE (replace with the same query): switched in place
    // (the storage table is the same), refreshed at once, then maintained by writers.
    let oid = scalar_i64(&db.pool, "SELECT 'dept_stats'::regclass::oid::int8").await;
    let spec = pgstream_runtime::spec("dept_stats", STATS, "1h", Mode::Immediate).unwrap();
    assert!(pgstream_runtime::replace_stream_table(&db.pool, &spec)
        .await
        .unwrap());
    assert_eq!(
        scalar_i64(&db.pool, "SELECT 'dept_stats'::regclass::oid::int8").await,
        oid
    );
    assert!(has_immediate_triggers(&db, "employees").await);
    assert!(has_immediate_triggers(&db, "departments").await);
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
    db.exec("INSERT INTO employees VALUES (5, 'e', 2, 50)")
        .await;
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
    // The scheduler does not refresh an IMMEDIATE stream table.
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    let n = refreshes(&db, "dept_stats").await;
    db.exec("UPDATE pgstream.pgs_stream_tables SET last_refresh_at = now() - interval '2 hours'")
        .await;
    rt.run_once().await.unwrap();
    assert_eq!(refreshes(&db, "dept_stats").await, n);

    // IMMEDIATE -> DIFFERENTIAL from SQL (alter_stream_table, carried out by a
    // runtime): the triggers go, the rows stay exact, the scheduler takes over.
    db.exec("SELECT pgstream.alter_stream_table('dept_stats', refresh_mode => 'differential')")
        .await;
    pgstream_runtime::process_requests(&db.pool).await.unwrap();
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pgstream.pgs_stream_tables WHERE mode = 'DIFFERENTIAL'"
        )
        .await,
        1
    );
    assert!(!has_immediate_triggers(&db, "employees").await);
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
    db.exec("DELETE FROM employees WHERE id = 5").await;
    assert_ne!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
    rt.run_once().await.unwrap();
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
    db.exec("INSERT INTO employees VALUES (6, 'f', 1, 60)")
        .await;
    // And back from SQL, with pending changes: applied by the switch.
    db.exec("SELECT pgstream.alter_stream_table('dept_stats', refresh_mode => 'IMMEDIATE')")
        .await;
    pgstream_runtime::process_requests(&db.pool).await.unwrap();
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
    db.exec("UPDATE employees SET department_id = 2").await;
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );

    // IMMEDIATE -> FULL and back: rebuilt, exact.
    db.exec("SELECT pgstream.alter_stream_table('dept_stats', refresh_mode => 'full')")
        .await;
    pgstream_runtime::process_requests(&db.pool).await.unwrap();
    assert!(!has_immediate_triggers(&db, "employees").await);
    let spec = pgstream_runtime::spec("dept_stats", STATS, "1h", Mode::Immediate).unwrap();
    assert!(pgstream_runtime::replace_stream_table(&db.pool, &spec)
        .await
        .unwrap());
    assert!(has_immediate_triggers(&db, "employees").await);
    db.exec("DELETE FROM employees WHERE id = 2").await;
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );

    // Dropped: the triggers go with it.
    pgstream_runtime::drop_stream_table(&db.pool, "dept_stats")
        .await
        .unwrap();
    assert!(!has_immediate_triggers(&db, "employees").await);
    assert!(!has_immediate_triggers(&db, "departments").await);
    rt.shutdown().await;
}

#[tokio::test]
async fn what_immediate_mode_cannot_maintain_is_refused_at_creation() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    let q = "SELECT department_id, salary FROM employees LIMIT 3";
    let spec = pgstream_runtime::spec("bad", q, "1h", Mode::Immediate).unwrap();
    let e = pgstream_runtime::create_stream_table(&db.pool, &spec)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad"), "{e}");
    assert!(e.contains("IMMEDIATE mode cannot maintain"), "{e}");
    // A VOLATILE user function: only the database knows; refused at creation.
    db.exec("CREATE FUNCTION jitter(numeric) RETURNS numeric LANGUAGE sql VOLATILE AS 'SELECT $1'")
        .await;
    let q = "SELECT id, public.jitter(salary) AS s FROM employees";
    let spec = pgstream_runtime::spec("bad", q, "1h", Mode::Immediate).unwrap();
    let e = pgstream_runtime::create_stream_table(&db.pool, &spec)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("IMMEDIATE mode cannot maintain"), "{e}");
    // Nothing half-installed.
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('employees'::regclass, 'departments'::regclass) AND NOT tgisinternal").await,
        0
    );
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_stream_tables").await,
        0
    );
}

/// SQLSTATE of `sql` run on `conn`, or "" when it succeeds.
async fn sqlstate(conn: &mut PgConnection, sql: &str) -> String {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Ok(_) => String::new(),
        Err(e) => e
            .as_database_error()
            .and_then(|d| d.code().map(|c| c.to_string()))
            .unwrap_or_else(|| e.to_string()),
    }
}

#[tokio::test]
async fn repeatable_read_conflicts_are_serialization_failures() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    create(&db, "dept_stats", STATS, Mode::Immediate).await;
    let mut a = db.connect().await;
    let mut b = db.connect().await;
    for iso in ["REPEATABLE READ", "SERIALIZABLE"] {
        // B's snapshot is older than A's commit: B's write is a serialization failure.
        exec_on(&mut b, &format!("BEGIN ISOLATION LEVEL {iso}")).await;
        exec_on(&mut b, "SELECT count(*) FROM departments").await;
        exec_on(&mut a, &format!("BEGIN ISOLATION LEVEL {iso}")).await;
        exec_on(&mut a, "INSERT INTO employees VALUES (100, 'x', 1, 1)").await;
        exec_on(&mut a, "COMMIT").await;
        assert_eq!(
            sqlstate(&mut b, "INSERT INTO employees VALUES (101, 'y', 2, 2)").await,
            "40001",
            "{iso}"
        );
        exec_on(&mut b, "ROLLBACK").await;
        // Retried with a new snapshot: exact, and it read its own write.
        exec_on(&mut b, &format!("BEGIN ISOLATION LEVEL {iso}")).await;
        exec_on(&mut b, "INSERT INTO employees VALUES (101, 'y', 2, 2)").await;
        exact_on(&mut b, iso).await;
        exec_on(&mut b, "COMMIT").await;
        assert_eq!(
            difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
            0
        );
        db.exec("DELETE FROM employees WHERE id >= 100").await;
    }
    // A snapshot taken before the stream table was created (or switched to
    // IMMEDIATE) cannot maintain it: a serialization failure, not a missed write.
    exec_on(&mut b, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    exec_on(&mut b, "SELECT count(*) FROM departments").await;
    create(
        &db,
        "dept_names",
        "SELECT id, name FROM departments",
        Mode::Immediate,
    )
    .await;
    assert_eq!(
        sqlstate(&mut b, "INSERT INTO departments VALUES (9, 'nine')").await,
        "40001"
    );
    exec_on(&mut b, "ROLLBACK").await;
    // A READ COMMITTED writer waits for the first writer's commit, then sees it.
    exec_on(&mut a, "BEGIN").await;
    exec_on(&mut a, "INSERT INTO employees VALUES (200, 'x', 1, 1)").await;
    let pool = db.pool.clone();
    let waiter = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO employees VALUES (201, 'y', 1, 2)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "the second writer did not wait");
    exec_on(&mut a, "COMMIT").await;
    waiter.await.unwrap();
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// Schema drift that no event trigger saw (it is disabled): the writer's refresh
/// puts the stream table in the ERROR state with the reason, and the write goes on.
/// Here a source that got an inheritance child, which the partition and inheritance
/// check finds (that check raised inside the writer's trigger, failing the write).
/// Once the child is gone and the stream table resumed, the next write maintains it
/// again, exactly.
#[tokio::test]
async fn drift_found_by_a_writer_stops_maintenance_and_the_write_goes_on() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    create(&db, "dept_stats", STATS, Mode::Immediate).await;
    db.exec("ALTER EVENT TRIGGER pgstream_ddl DISABLE").await;

    db.exec("CREATE TABLE employees_more () INHERITS (employees)")
        .await;
    db.exec("INSERT INTO employees VALUES (4, 'd', 2, 40)")
        .await;
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM employees").await,
        4
    );
    let (state, reason) = db.status("dept_stats").await;
    assert_eq!(state, "ERROR");
    let reason = reason.unwrap_or_default();
    assert!(
        reason.contains("has inheritance children (public.employees_more)"),
        "{reason}"
    );
    // In the ERROR state writes are not slowed by it, and it keeps its last rows.
    db.exec("UPDATE employees SET salary = salary + 1 WHERE id = 1")
        .await;

    db.exec("DROP TABLE employees_more").await;
    db.exec("SELECT pgstream.resume_stream_table('dept_stats')")
        .await;
    db.exec("INSERT INTO employees VALUES (5, 'e', 1, 50)")
        .await;
    assert_eq!(db.status("dept_stats").await.0, "ACTIVE");
    assert_eq!(
        difference(&db.pool, STATS, "dept_stats", STATS_COLS).await,
        0
    );
}
