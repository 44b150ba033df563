//! Faults: a refresh whose backend is terminated, failing refreshes (error recorded,
//! exponential backoff, suspension, resume, other stream tables unaffected), and a
//! database restart under a running runtime.

use std::str::FromStr;
use std::time::{Duration, Instant};

use pgstream_runtime::{Mode, Runtime, RuntimeHandle};
use pgstream_tests::compare::{difference, scalar_i64, status_of, wait_until};
use pgstream_tests::{embedded_cluster, test_db};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const Q: &str = "SELECT id, x FROM t WHERE x > 0";

/// The refresh's backend is terminated while the refresh runs (a slow statement
/// trigger on the storage table widens the window): the stream table, its frontier and
/// the buffer keep their previous state, the error is recorded, and the next refresh
/// applies every change.
#[tokio::test]
async fn terminated_refresh_keeps_previous_state_and_loses_nothing() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL);
         INSERT INTO t SELECT i, i % 4 FROM generate_series(1, 100) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", Q, "1h", Mode::Differential)
        .await
        .unwrap();
    db.exec(
        "CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
         CREATE TRIGGER slow BEFORE INSERT ON st FOR EACH STATEMENT EXECUTE FUNCTION public.slow();
         INSERT INTO t SELECT i, 1 FROM generate_series(101, 150) i;
         UPDATE t SET x = 0 WHERE id <= 10;
         DELETE FROM t WHERE id BETWEEN 11 AND 20;",
    )
    .await;
    let before: Vec<(i32, i32)> = sqlx::query_as("SELECT id, x FROM st ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let frontier_before: String =
        sqlx::query_scalar("SELECT frontier::text FROM pgstream.pgs_frontiers")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let pending = status_of(&db.pool, "st").await.pending_changes;
    assert!(pending > 0);

    let victim = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(db.connect_options().application_name("pgs_victim"))
        .await
        .unwrap();
    let refresh = tokio::spawn(async move { pgstream_runtime::refresh(&victim, "st").await });
    // Wait until the refresh sits in the slow trigger, then terminate its backend.
    let pool = db.pool.clone();
    wait_until(
        "the refresh to reach pg_sleep",
        Duration::from_secs(20),
        || {
            let pool = pool.clone();
            async move {
                scalar_i64(
                    &pool,
                    "SELECT count(*) FROM pg_stat_activity
                  WHERE application_name = 'pgs_victim' AND wait_event = 'PgSleep'",
                )
                .await
                    == 1
            }
        },
    )
    .await;
    let t0 = Instant::now();
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                    WHERE application_name = 'pgs_victim') k"
        )
        .await,
        1
    );
    let err = refresh.await.unwrap().unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(10));
    eprintln!("terminated refresh: {err}");

    // Previous state: rows, frontier and buffer untouched.
    let after: Vec<(i32, i32)> = sqlx::query_as("SELECT id, x FROM st ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(before, after);
    let frontier_after: String =
        sqlx::query_scalar("SELECT frontier::text FROM pgstream.pgs_frontiers")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(frontier_before, frontier_after);
    let s = status_of(&db.pool, "st").await;
    assert_eq!(s.pending_changes, pending);
    assert_eq!(s.refresh_count, 0);
    assert_eq!(s.error_count, 1, "the failure is recorded");
    assert!(
        s.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("terminat"),
        "{:?}",
        s.last_error
    );
    assert_eq!(s.status, "ACTIVE");

    // The next refresh catches up.
    let s = status_of(&db.pool, "st").await;
    eprintln!(
        "after the kill: {} refreshes committed, {} changes pending",
        s.refresh_count, s.pending_changes
    );
    db.exec("DROP TRIGGER slow ON st").await;
    h.refresh("st").await.unwrap();
    assert_eq!(difference(&db.pool, Q, "st", "id, x").await, 0);
    assert_eq!(status_of(&db.pool, "st").await.pending_changes, 0);
}

/// A stream table whose refresh fails: the error is in the status and statistics,
/// retries back off exponentially, it is SUSPENDED after the configured number of
/// failures in a row, while another stream table keeps refreshing; `resume` brings it
/// back.
#[tokio::test]
async fn failing_refresh_backs_off_is_suspended_and_resumed() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL);
         INSERT INTO t SELECT i, i FROM generate_series(1, 10) i;
         CREATE TABLE u (id int PRIMARY KEY, y int NOT NULL);",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    let bad = "SELECT id, 100 / x AS q FROM t";
    h.create_stream_table("bad", bad, "100ms", Mode::Full)
        .await
        .unwrap();
    h.create_stream_table("good", "SELECT id, y FROM u", "100ms", Mode::Differential)
        .await
        .unwrap();
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_millis(50))
        .max_consecutive_failures(4)
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(400))
        .start()
        .await
        .unwrap();

    db.exec("INSERT INTO t VALUES (0, 0)").await; // division by zero at every refresh
    let started = Instant::now();
    let pool = db.pool.clone();
    let mut seen_failures = Vec::new();
    let mut last = -1;
    loop {
        let s = status_of(&pool, "bad").await;
        if i64::from(s.consecutive_failures) != last {
            last = i64::from(s.consecutive_failures);
            seen_failures.push((last, started.elapsed()));
        }
        // The other stream table keeps refreshing meanwhile.
        if s.status == "SUSPENDED" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not suspended: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = status_of(&pool, "bad").await;
    eprintln!("failures seen at: {seen_failures:?}");
    assert_eq!(s.consecutive_failures, 4);
    assert!(s.error_count >= 4);
    assert!(
        s.last_error
            .as_deref()
            .unwrap()
            .contains("division by zero"),
        "{s:?}"
    );
    let reason = s.status_reason.clone().unwrap();
    assert!(
        reason.contains("suspended after 4 consecutive failures") && reason.contains("division"),
        "{reason}"
    );
    // Backoff: 100, 200, 400 ms between retries, nominally 700 ms from the first
    // failure to the fourth; without it, a retry every 100 ms schedule (300 ms). The
    // failures are seen by polling, late when the machine is loaded. A CI run with 8
    // test threads once saw 480 ms (failures at 10, 90, 287, 557 and 570 ms: the
    // fourth 13 ms after the third), a pass that read the catalog while the third
    // refresh was recording its failure and then found it no longer in flight; a pass
    // now leaves what was in flight when it began to read. 450 ms tells the two apart.
    let first = seen_failures.iter().find(|(n, _)| *n == 1).unwrap().1;
    let fourth = seen_failures.iter().find(|(n, _)| *n == 4).unwrap().1;
    assert!(
        fourth - first >= Duration::from_millis(450),
        "retries did not back off: {seen_failures:?}"
    );
    let n_err = s.error_count;

    // The other stream table is unaffected.
    db.exec("INSERT INTO u VALUES (1, 1), (2, 2)").await;
    wait_until("good to refresh", Duration::from_secs(10), || {
        let pool = pool.clone();
        async move { scalar_i64(&pool, "SELECT count(*) FROM good").await == 2 }
    })
    .await;

    // Suspended: no more attempts.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(status_of(&pool, "bad").await.error_count, n_err);

    // Fix the data and resume: it refreshes again.
    db.exec("DELETE FROM t WHERE x = 0").await;
    rt.resume("bad").await.unwrap();
    wait_until(
        "bad to refresh after resume",
        Duration::from_secs(10),
        || {
            let pool = pool.clone();
            async move {
                let s = status_of(&pool, "bad").await;
                s.status == "ACTIVE" && s.refresh_count > 0 && s.consecutive_failures == 0
            }
        },
    )
    .await;
    assert_eq!(difference(&pool, bad, "bad", "id, q").await, 0);
    assert!(status_of(&pool, "bad").await.status_reason.is_none());
    rt.shutdown().await;
}

/// The database restarts (fast shutdown: every connection is cut; down for 1.5 s)
/// under a running runtime: the scheduler backs off, reconnects, and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_reconnects_after_database_restart() {
    let (mut guard, url) = embedded_cluster().await.unwrap();
    let opts = PgConnectOptions::from_str(&url).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts.clone())
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL);
         INSERT INTO t SELECT i, i FROM generate_series(1, 10) i;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let rt = Runtime::builder(pool.clone())
        .tick(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    rt.create_stream_table("st", Q, "100ms", Mode::Differential)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES (11, 11)")
        .execute(&pool)
        .await
        .unwrap();
    let p = pool.clone();
    wait_until(
        "the first scheduled refresh",
        Duration::from_secs(10),
        || {
            let p = p.clone();
            async move { scalar_i64(&p, "SELECT count(*) FROM st").await == 11 }
        },
    )
    .await;

    let down = Instant::now();
    // Down for 1.5 s: the scheduler's passes fail meanwhile and it backs off.
    tokio::task::block_in_place(|| guard.cluster.restart_after(Duration::from_millis(1500)))
        .unwrap();
    eprintln!("restarted in {:?}", down.elapsed());
    // Writes after the restart (the pool opens new connections).
    let mut tries = 0;
    loop {
        match sqlx::query("INSERT INTO t SELECT i, i FROM generate_series(12, 30) i")
            .execute(&pool)
            .await
        {
            Ok(_) => break,
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("write after restart: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let p = pool.clone();
    wait_until("the scheduler to catch up", Duration::from_secs(30), || {
        let p = p.clone();
        async move { scalar_i64(&p, "SELECT count(*) FROM st").await == 30 }
    })
    .await;
    eprintln!("caught up {:?} after the restart began", down.elapsed());
    assert_eq!(difference(&pool, Q, "st", "id, x").await, 0);
    rt.shutdown().await;
    pool.close().await;
}

/// The child process of `killed_runtime_process_loses_nothing`: a runtime whose
/// scheduler refreshes `st` (slowed by a trigger) until the parent kills it. Runs only
/// with `PGS_CHILD_URL` set.
#[tokio::test]
#[ignore = "child process of killed_runtime_process_loses_nothing"]
async fn child_runtime_process() {
    let Ok(url) = std::env::var("PGS_CHILD_URL") else {
        return;
    };
    let opts = PgConnectOptions::from_str(&url)
        .unwrap()
        .application_name("pgs_child");
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .unwrap();
    let _rt = Runtime::builder(pool)
        .tick(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// The process running the runtime is killed (SIGKILL) while its scheduler is in the
/// middle of a refresh: the refresh is applied wholly or not at all, and the next
/// refresh makes the stream table equal to its query.
#[tokio::test]
async fn killed_runtime_process_loses_nothing() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL);
         INSERT INTO t SELECT i, i % 4 FROM generate_series(1, 100) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", Q, "100ms", Mode::Differential)
        .await
        .unwrap();
    db.exec(
        "CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
         CREATE TRIGGER slow BEFORE INSERT ON st FOR EACH STATEMENT EXECUTE FUNCTION public.slow();
         INSERT INTO t SELECT i, 1 FROM generate_series(101, 150) i;
         DELETE FROM t WHERE id <= 10;",
    )
    .await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            // The test's name in this binary: its module path without the crate's.
            &format!(
                "{}::child_runtime_process",
                module_path!().split_once("::").unwrap().1
            ),
            "--nocapture",
        ])
        .env("PGS_CHILD_URL", &db.url)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pool = db.pool.clone();
    wait_until(
        "the child's refresh to reach pg_sleep",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                scalar_i64(
                    &pool,
                    "SELECT count(*) FROM pg_stat_activity
                  WHERE application_name = 'pgs_child' AND wait_event = 'PgSleep'",
                )
                .await
                    == 1
            }
        },
    )
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Writes continue meanwhile.
    db.exec("UPDATE t SET x = x + 1 WHERE id BETWEEN 50 AND 60")
        .await;
    // Whatever the orphaned backend does (it may still finish and commit its one
    // statement, or roll back), the stream table is consistent afterwards.
    wait_until(
        "the child's backend to end",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                scalar_i64(
                    &pool,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgs_child'",
                )
                .await
                    == 0
            }
        },
    )
    .await;
    let s = status_of(&db.pool, "st").await;
    eprintln!(
        "after the kill: {} refreshes committed, {} changes pending",
        s.refresh_count, s.pending_changes
    );
    db.exec("DROP TRIGGER slow ON st").await;
    h.refresh("st").await.unwrap();
    assert_eq!(difference(&db.pool, Q, "st", "id, x").await, 0);
    assert_eq!(status_of(&db.pool, "st").await.pending_changes, 0);
}
