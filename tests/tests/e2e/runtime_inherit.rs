//! Schedules that follow their readers (issue 14, item 3): a stream table with the
//! schedule `inherit` is refreshed just before the stream tables that read it, as
//! often as the most demanding of them; inheriting stream tables read together are
//! refreshed together, so a reader never sees two of them at different states of a
//! common source (a diamond); `pgs_status()` shows the effective schedule.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgstream_runtime::{Mode, Runtime};
use pgstream_tests::compare::scalar_i64;
use pgstream_tests::{test_db, TestDb};
use sqlx::PgPool;

async fn wait_for(pool: &PgPool, sql: &str, want: i64, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if scalar_i64(pool, sql).await == want {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `count` (an expression over the columns of `pgstream.pg_stat_stream_tables`) for
/// stream table `name`, 0 before its first refresh.
async fn stat_count(db: &TestDb, name: &str, count: &str) -> i64 {
    scalar_i64(
        &db.pool,
        &format!(
            "SELECT coalesce(max({count}), 0)::int8 FROM pgstream.pg_stat_stream_tables WHERE name = '{name}'"
        ),
    )
    .await
}

async fn refresh_count(db: &TestDb, name: &str) -> i64 {
    stat_count(db, name, "refresh_count").await
}

/// Refreshes of `name` that found changes to apply (the refresh count without the
/// refreshes whose windows were empty).
async fn working_refresh_count(db: &TestDb, name: &str) -> i64 {
    stat_count(db, name, "refresh_count - no_change_count").await
}

async fn effective(db: &TestDb, name: &str) -> String {
    sqlx::query_scalar("SELECT effective_schedule FROM pgstream.pgs_status() WHERE name = $1")
        .bind(name)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_chain_follows_its_last_reader_and_status_shows_it() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         INSERT INTO t SELECT g, g % 3, g FROM generate_series(1, 30) g;",
    )
    .await;
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    // a (inherit) -> b (inherit) -> c (1s); d (inherit) has no reader.
    rt.create_stream_table(
        "a",
        "SELECT id, g, v FROM t WHERE v > 0",
        "inherit",
        Mode::Differential,
    )
    .await
    .unwrap();
    rt.create_stream_table(
        "b",
        "SELECT g, sum(v) AS s, count(*) AS n FROM a GROUP BY g",
        "inherit",
        Mode::Differential,
    )
    .await
    .unwrap();
    rt.create_stream_table(
        "c",
        "SELECT g, s FROM b WHERE n > 0",
        "1s",
        Mode::Differential,
    )
    .await
    .unwrap();
    rt.create_stream_table("d", "SELECT id FROM t", "inherit", Mode::Differential)
        .await
        .unwrap();

    assert_eq!(effective(&db, "a").await, "1s (from c)");
    assert_eq!(effective(&db, "b").await, "1s (from c)");
    assert_eq!(effective(&db, "c").await, "1s");
    assert_eq!(effective(&db, "d").await, "1m (no readers)");
    let st = rt.status().await.unwrap();
    let a = st.iter().find(|s| s.name == "a").unwrap();
    assert_eq!(a.schedule, "inherit");
    assert_eq!(a.effective_schedule.as_deref(), Some("1s (from c)"));

    // A change reaches c through a and b, by c's schedule alone.
    db.exec("UPDATE t SET v = v + 100 WHERE id = 4").await;
    assert!(
        wait_for(
            &db.pool,
            "SELECT s::int8 FROM c WHERE g = 1",
            scalar_i64(&db.pool, "SELECT sum(v)::int8 FROM t WHERE g = 1").await,
            Duration::from_secs(20),
        )
        .await,
        "the change did not reach the end of the chain"
    );
    // Every refresh of c that had changes came after a and b were refreshed: the three
    // hold the same data at every moment after a pass.
    for _ in 0..5 {
        db.exec("UPDATE t SET v = v + 1 WHERE id % 5 = 0").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        wait_for(
            &db.pool,
            "SELECT count(*)::int8 FROM (SELECT g, sum(v) AS s FROM t GROUP BY g) q
               FULL JOIN c USING (g) WHERE q.s IS DISTINCT FROM c.s",
            0,
            Duration::from_secs(20),
        )
        .await
    );
    // a and b are refreshed when c is, not more often (c: every second at most): a
    // refresh of a or b that applies changes gives c changes, and c is refreshed in
    // the same pass.
    let (ra, rb, rc) = (
        working_refresh_count(&db, "a").await,
        working_refresh_count(&db, "b").await,
        refresh_count(&db, "c").await,
    );
    let all = (refresh_count(&db, "a").await, refresh_count(&db, "b").await);
    assert!(ra >= 1 && rb >= 1 && rc >= 1, "{ra} {rb} {rc}");
    assert!(
        ra <= rc + 1 && rb <= rc + 1,
        "with changes: a {ra}, b {rb}; c {rc}; all refreshes of a and b {all:?}"
    );
    // Nothing changes now, but t's buffer holds the rows d (every minute) has not
    // read, and c, whose buffer is empty, stays due at every tick (100 ms): a and b
    // are not refreshed for it (their windows are empty: the scheduler's probe,
    // `pgstream._windows_hold_rows`). Before it, they were, about ten times a second.
    let before = (refresh_count(&db, "a").await, refresh_count(&db, "b").await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = (refresh_count(&db, "a").await, refresh_count(&db, "b").await);
    // (At most one: a pass that started before `before` was read may still end.)
    assert!(
        after.0 <= before.0 + 1 && after.1 <= before.1 + 1,
        "refreshes of a and b with nothing changed: {before:?} then {after:?}"
    );

    // A reader with a shorter schedule: the chain now follows it.
    rt.create_stream_table("e", "SELECT id FROM a", "200ms", Mode::Differential)
        .await
        .unwrap();
    assert_eq!(effective(&db, "a").await, "200ms (from e)");
    assert_eq!(effective(&db, "b").await, "1s (from c)");
    rt.shutdown().await;
}

/// The diamond: `p1` and `p2` both read `t`, `r` joins them. Writers commit all the
/// time; whenever `r` (or a reader of `p1` and `p2` in one statement) looks, the two
/// producers must agree (`w = 2 * v` for every id, the same ids on both sides).
#[tokio::test]
async fn a_diamond_reader_never_sees_its_producers_at_two_frontiers() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g FROM generate_series(1, 50) g;",
    )
    .await;
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_millis(50))
        .parallel_refreshes(2)
        .start()
        .await
        .unwrap();
    rt.create_stream_table("p1", "SELECT id, v FROM t", "inherit", Mode::Differential)
        .await
        .unwrap();
    rt.create_stream_table(
        "p2",
        "SELECT id, v * 2 AS w FROM t",
        "inherit",
        Mode::Differential,
    )
    .await
    .unwrap();
    rt.create_stream_table(
        "r",
        "SELECT p1.id, p1.v, p2.w FROM p1 JOIN p2 ON p2.id = p1.id",
        "100ms",
        Mode::Differential,
    )
    .await
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    // Two writers: single-row updates and inserts, committed back to back.
    let mut writers = Vec::new();
    for w in 0..2 {
        let (pool, stop) = (db.pool.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let sql = if i % 4 == 0 {
                    format!("INSERT INTO t VALUES ({}, 1)", 1000 + w * 100_000 + i)
                } else {
                    format!("UPDATE t SET v = v + 1 WHERE id = {}", 1 + (i * 7 + w) % 50)
                };
                sqlx::query(&sql).execute(&pool).await.unwrap();
            }
            i
        }));
    }
    let mismatch_pr = "SELECT count(*)::int8 FROM p1 FULL JOIN p2 USING (id)
                        WHERE p2.w IS DISTINCT FROM 2 * p1.v";
    let mismatch_r = "SELECT count(*)::int8 FROM r WHERE w <> 2 * v";
    let start = Instant::now();
    let mut checks = 0;
    while start.elapsed() < Duration::from_secs(6) {
        let bad = scalar_i64(&db.pool, mismatch_pr).await;
        assert_eq!(
            bad, 0,
            "p1 and p2 seen at two frontiers after {checks} checks"
        );
        let bad = scalar_i64(&db.pool, mismatch_r).await;
        assert_eq!(
            bad, 0,
            "r joined p1 and p2 at two frontiers after {checks} checks"
        );
        checks += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut commits = 0;
    for w in writers {
        commits += w.await.unwrap();
    }
    // The refreshes happened, and kept up.
    let (r1, r2, rr) = (
        refresh_count(&db, "p1").await,
        refresh_count(&db, "p2").await,
        refresh_count(&db, "r").await,
    );
    println!("{commits} commits, {checks} checks; refreshes p1 {r1}, p2 {r2}, r {rr}");
    assert!(commits > 100, "{commits}");
    assert!(r1 >= 5 && rr >= 5, "p1 {r1}, r {rr}");
    assert_eq!(r1, r2, "p1 and p2 are refreshed together");
    assert!(
        wait_for(
            &db.pool,
            "SELECT count(*)::int8 FROM (SELECT id, v, 2 * v AS w FROM t) q
               FULL JOIN r USING (id) WHERE (q.v, q.w) IS DISTINCT FROM (r.v, r.w)",
            0,
            Duration::from_secs(20),
        )
        .await
    );
    assert_eq!(effective(&db, "p2").await, "100ms (from r)");
    rt.shutdown().await;
}

/// Whether the capture function of `table` notifies (refresh on commit).
async fn capture_notifies(db: &TestDb, table: &str) -> bool {
    sqlx::query_scalar::<_, bool>(&format!(
        "SELECT p.prosrc LIKE '%pg_notify%' FROM pg_proc p
          WHERE p.oid = 'pgstream_changes.capture_{}'::regproc",
        scalar_i64(&db.pool, &format!("SELECT '{table}'::regclass::oid::int8")).await
    ))
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Under an `on commit` reader, inheriting stream tables are refreshed on commit too,
/// before the reader, and a diamond stays consistent.
#[tokio::test]
async fn an_on_commit_reader_refreshes_what_it_inherits_at_each_commit() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g FROM generate_series(1, 20) g;",
    )
    .await;
    // The tick is an hour: after the first pass only the on-commit listener refreshes.
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    rt.create_stream_table("p1", "SELECT id, v FROM t", "inherit", Mode::Differential)
        .await
        .unwrap();
    rt.create_stream_table(
        "p2",
        "SELECT id, v * 2 AS w FROM t",
        "inherit",
        Mode::Differential,
    )
    .await
    .unwrap();
    assert!(!capture_notifies(&db, "t").await);
    rt.create_stream_table(
        "r",
        "SELECT p1.id, p1.v, p2.w FROM p1 JOIN p2 ON p2.id = p1.id",
        "on commit",
        Mode::Differential,
    )
    .await
    .unwrap();
    // t now notifies: an on-commit stream table reads it through p1 and p2.
    assert!(capture_notifies(&db, "t").await);
    assert_eq!(effective(&db, "p1").await, "on commit (from r)");

    for k in 1..=5 {
        db.exec(&format!("UPDATE t SET v = v + 100 WHERE id = {k}"))
            .await;
        assert!(
            wait_for(
                &db.pool,
                &format!("SELECT coalesce(max(w), 0)::int8 FROM r WHERE id = {k}"),
                2 * (k + 100),
                Duration::from_secs(20),
            )
            .await,
            "commit {k} did not reach r"
        );
        assert_eq!(
            scalar_i64(&db.pool, "SELECT count(*)::int8 FROM r WHERE w <> 2 * v").await,
            0
        );
    }
    assert_eq!(
        refresh_count(&db, "p1").await,
        refresh_count(&db, "p2").await
    );

    // Without the on-commit reader, t stops notifying.
    rt.drop_stream_table("r").await.unwrap();
    assert!(!capture_notifies(&db, "t").await);
    // A reader made on commit later (alter): t notifies again.
    rt.create_stream_table("r2", "SELECT id, v FROM p1", "1h", Mode::Differential)
        .await
        .unwrap();
    assert!(!capture_notifies(&db, "t").await);
    db.exec(
        "UPDATE pgstream.pgs_stream_tables SET schedule = 'on commit', schedule_kind = 'on commit'
          WHERE table_name = 'r2'",
    )
    .await;
    assert!(capture_notifies(&db, "t").await);
    rt.shutdown().await;
}
