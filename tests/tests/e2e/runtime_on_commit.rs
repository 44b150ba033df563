//! Refresh on commit (issue 14, item 2) and the LISTEN channels of refreshes (item 4,
//! from SQL): a stream table with the schedule `on commit` is refreshed when capture's
//! notification of a committed change arrives, not on the scheduler's tick; a
//! rolled-back transaction notifies nothing; a burst of commits is coalesced; every
//! refresh that changed rows notifies `pgstream_refreshed` and the stream table's own
//! channel with its name and the number of rows changed.
//!
//! No test asserts a duration except as a generous bound on a wait. Commit-to-visible
//! latency is measured by `cargo bench --bench freshness` (docs/BENCHMARKS.md);
//! `commit_latency_measures_every_commit` checks its measurement on a few commits.

use std::time::{Duration, Instant};

use pgstream_runtime::{Mode, Runtime};
use pgstream_tests::compare::scalar_i64;
use pgstream_tests::{test_db, TestDb};
use sqlx::postgres::PgListener;
use sqlx::PgPool;

/// Poll `sql` (one bigint) until it returns `want`, for at most `limit`.
async fn wait_for(pool: &PgPool, sql: &str, want: i64, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if scalar_i64(pool, sql).await == want {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether two JSON texts denote the same value.
async fn json_is(db: &TestDb, got: &str, want: &str) -> bool {
    sqlx::query_scalar("SELECT $1::jsonb = $2::jsonb")
        .bind(got)
        .bind(want)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn refresh_count(db: &TestDb, name: &str) -> i64 {
    scalar_i64(
        &db.pool,
        &format!(
            "SELECT coalesce(max(refresh_count), 0)::int8 FROM pgstream.pg_stat_stream_tables WHERE name = '{name}'"
        ),
    )
    .await
}

/// Whether the capture function of `table` notifies.
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

/// A runtime whose scheduler ticks once an hour: after its first pass (at start),
/// only the on-commit listener refreshes anything.
async fn runtime_long_tick(db: &TestDb, gap: Duration) -> Runtime {
    Runtime::builder(db.pool.clone())
        .tick(Duration::from_secs(3600))
        .on_commit_min_gap(gap)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_commit_refreshes_at_once_and_a_rollback_does_nothing() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         CREATE TABLE u (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g % 3, g FROM generate_series(1, 10) g;
         INSERT INTO u SELECT g, g FROM generate_series(1, 10) g;",
    )
    .await;
    let rt = runtime_long_tick(&db, Duration::from_millis(10)).await;
    // Let the scheduler's first pass (at start) go by.
    tokio::time::sleep(Duration::from_millis(300)).await;
    rt.create_stream_table(
        "sums",
        "SELECT g, sum(v) AS s, count(*) AS n FROM t GROUP BY g",
        "on commit",
        Mode::Differential,
    )
    .await
    .unwrap();
    rt.create_stream_table("u_copy", "SELECT id, v FROM u", "1s", Mode::Differential)
        .await
        .unwrap();
    // Only the source an on-commit stream table reads pays for the notification.
    assert!(capture_notifies(&db, "t").await);
    assert!(!capture_notifies(&db, "u").await);
    let status: String =
        sqlx::query_scalar("SELECT schedule FROM pgstream.pgs_status() WHERE name = 'sums'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "on commit");

    let before = refresh_count(&db, "sums").await;
    db.exec("INSERT INTO t VALUES (100, 1, 1000)").await;
    // The tick is an hour away: only the notification can have done it.
    assert!(
        wait_for(
            &db.pool,
            "SELECT s::int8 FROM sums WHERE g = 1",
            scalar_i64(&db.pool, "SELECT sum(v)::int8 FROM t WHERE g = 1").await,
            Duration::from_secs(20)
        )
        .await,
        "the commit was not applied"
    );
    let after_commit = refresh_count(&db, "sums").await;
    assert!(after_commit > before);
    // u_copy (1 s schedule) is not refreshed on commit.
    db.exec("INSERT INTO u VALUES (100, 100)").await;

    // A rolled-back transaction: no notification, no refresh.
    let mut listener = PgListener::connect_with(&db.pool).await.unwrap();
    listener.listen("pgstream_changes").await.unwrap();
    db.exec("BEGIN; INSERT INTO t VALUES (101, 1, 1); UPDATE t SET v = v + 1; ROLLBACK;")
        .await;
    let heard = tokio::time::timeout(Duration::from_millis(1500), listener.recv()).await;
    assert!(heard.is_err(), "a rollback notified: {heard:?}");
    assert_eq!(refresh_count(&db, "sums").await, after_commit);
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM u_copy WHERE id = 100").await,
        0
    );

    // One transaction of several statements: one notification for the source.
    db.exec("BEGIN; INSERT INTO t VALUES (102, 2, 1); UPDATE t SET v = v + 1 WHERE id = 102; DELETE FROM t WHERE id = 1; COMMIT;")
        .await;
    let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("no notification after a commit")
        .unwrap();
    assert_eq!(n.channel(), "pgstream_changes");
    assert_eq!(
        n.payload(),
        scalar_i64(&db.pool, "SELECT 't'::regclass::oid::int8")
            .await
            .to_string()
    );
    let again = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(again.is_err(), "a second notification for one transaction");
    assert!(
        wait_for(
            &db.pool,
            "SELECT count(*) FROM ((SELECT g, sum(v) AS s, count(*) AS n FROM t GROUP BY g)
                                   EXCEPT ALL (SELECT g, s, n FROM sums)) d",
            0,
            Duration::from_secs(20)
        )
        .await
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_commits_is_coalesced_and_cascades() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         INSERT INTO t SELECT g, g % 3, g FROM generate_series(1, 10) g;",
    )
    .await;
    let rt = runtime_long_tick(&db, Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    rt.create_stream_table(
        "sums",
        "SELECT g, sum(v) AS s FROM t GROUP BY g",
        "on commit",
        Mode::Differential,
    )
    .await
    .unwrap();
    // A stream table over it, also on commit: refreshed when the refresh of `sums`
    // commits (its storage table's capture notifies).
    rt.create_stream_table(
        "total",
        "SELECT sum(s) AS s FROM sums",
        "on commit",
        Mode::Differential,
    )
    .await
    .unwrap();
    let before = refresh_count(&db, "sums").await;
    for i in 0..60 {
        db.exec(&format!(
            "INSERT INTO t VALUES ({}, {}, 1)",
            1000 + i,
            i % 3
        ))
        .await;
    }
    let want = scalar_i64(&db.pool, "SELECT sum(v)::int8 FROM t").await;
    assert!(
        wait_for(
            &db.pool,
            "SELECT coalesce((SELECT s::int8 FROM total), 0)",
            want,
            Duration::from_secs(30)
        )
        .await,
        "the cascade did not reach `total`"
    );
    let refreshes = refresh_count(&db, "sums").await - before;
    // 60 commits, refreshes at least 500 ms apart: a handful (the bound is generous).
    assert!(
        (1..30).contains(&refreshes),
        "{refreshes} refreshes for 60 commits"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn the_schedule_moves_the_notification_on_every_path() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g FROM generate_series(1, 10) g;",
    )
    .await;
    let rt = runtime_long_tick(&db, Duration::from_millis(10)).await;
    rt.create_stream_table("a", "SELECT id, v FROM t", "1s", Mode::Differential)
        .await
        .unwrap();
    rt.create_stream_table("b", "SELECT id FROM t", "1s", Mode::Differential)
        .await
        .unwrap();
    assert!(!capture_notifies(&db, "t").await);
    // From SQL: alter to `on commit` (carried out by the runtime), and back.
    db.exec("SELECT pgstream.alter_stream_table('a', schedule => 'ON COMMIT')")
        .await;
    db.exec("SELECT pgstream.wait_for_stream_table('a')").await;
    assert!(capture_notifies(&db, "t").await);
    assert_eq!(
        sqlx::query_scalar::<_, String>(
            "SELECT schedule FROM pgstream.pgs_stream_tables WHERE table_name = 'a'"
        )
        .fetch_one(&db.pool)
        .await
        .unwrap(),
        "on commit"
    );
    db.exec("INSERT INTO t VALUES (11, 11)").await;
    assert!(
        wait_for(
            &db.pool,
            "SELECT count(*) FROM a",
            11,
            Duration::from_secs(20)
        )
        .await
    );
    db.exec("SELECT pgstream.alter_stream_table('a', schedule => '5m')")
        .await;
    db.exec("SELECT pgstream.wait_for_stream_table('a')").await;
    assert!(!capture_notifies(&db, "t").await);
    // Created on commit from SQL; dropped: the remaining reader's source stops notifying.
    db.exec(
        "SELECT pgstream.create_stream_table('c', 'SELECT id, v FROM t WHERE v > 5', 'on commit', 'DIFFERENTIAL')",
    )
    .await;
    db.exec("SELECT pgstream.wait_for_stream_table('c')").await;
    assert!(capture_notifies(&db, "t").await);
    db.exec("SELECT pgstream.drop_stream_table('c')").await;
    assert!(!capture_notifies(&db, "t").await);
    // A bad spelling is refused by the runtime, which records why.
    db.exec("SELECT pgstream.alter_stream_table('a', schedule => 'on comit')")
        .await;
    let err = sqlx::query("SELECT pgstream.wait_for_stream_table('a')")
        .execute(&db.pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("on commit"), "{err}");
    rt.shutdown().await;
}

#[tokio::test]
async fn refreshes_that_change_rows_notify_their_channels() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g FROM generate_series(1, 10) g;",
    )
    .await;
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    rt.create_stream_table(
        "big",
        "SELECT id, v FROM t WHERE v > 5",
        "1m",
        Mode::Differential,
    )
    .await
    .unwrap();
    let long = "a_stream_table_whose_name_is_too_long_for_a_channel_of_its_own";
    rt.create_stream_table(long, "SELECT id FROM t", "1m", Mode::Full)
        .await
        .unwrap();
    let channel: String = sqlx::query_scalar("SELECT pgstream.refreshed_channel('big')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(channel, "pgstream_refreshed:big");
    let none: Option<String> = sqlx::query_scalar("SELECT pgstream.refreshed_channel($1)")
        .bind(long)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(none, None);

    let mut all = PgListener::connect_with(&db.pool).await.unwrap();
    all.listen("pgstream_refreshed").await.unwrap();
    let mut own = PgListener::connect_with(&db.pool).await.unwrap();
    own.listen(&channel).await.unwrap();

    // Three rows change (two inserted, one deleted), by the Rust handle.
    db.exec("INSERT INTO t VALUES (11, 11), (12, 12); DELETE FROM t WHERE id = 10;")
        .await;
    assert_eq!(rt.refresh("big").await.unwrap().rows_changed, 3);
    for l in [&mut all, &mut own] {
        let n = tokio::time::timeout(Duration::from_secs(10), l.recv())
            .await
            .expect("no notification")
            .unwrap();
        assert!(
            json_is(
                &db,
                n.payload(),
                r#"{"name": "big", "schema": "public", "table": "big", "rows": 3}"#
            )
            .await,
            "{}",
            n.payload()
        );
    }
    // Nothing changed: nothing said (from SQL this time).
    db.exec("SELECT pgstream.refresh_stream_table('big')").await;
    assert!(tokio::time::timeout(Duration::from_millis(700), all.recv())
        .await
        .is_err());
    assert!(tokio::time::timeout(Duration::from_millis(100), own.recv())
        .await
        .is_err());
    // A refresh in a transaction that rolls back says nothing either.
    db.exec("BEGIN; INSERT INTO t VALUES (13, 13); SELECT pgstream.refresh_stream_table('big'); ROLLBACK;")
        .await;
    assert!(tokio::time::timeout(Duration::from_millis(700), all.recv())
        .await
        .is_err());
    // The long name is announced on the common channel only.
    db.exec("INSERT INTO t VALUES (14, 14)").await;
    db.exec(&format!("SELECT pgstream.refresh_stream_table('{long}')"))
        .await;
    let n = tokio::time::timeout(Duration::from_secs(10), all.recv())
        .await
        .expect("no notification")
        .unwrap();
    let (name, rows): (String, i64) =
        sqlx::query_as("SELECT $1::jsonb ->> 'name', ($1::jsonb ->> 'rows')::int8")
            .bind(n.payload())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(name, long);
    assert!(rows >= 1);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_lost_listener_refreshes_everything_once_it_is_back() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g FROM generate_series(1, 10) g;",
    )
    .await;
    let rt = runtime_long_tick(&db, Duration::from_millis(10)).await;
    rt.create_stream_table("a", "SELECT id, v FROM t", "on commit", Mode::Differential)
        .await
        .unwrap();
    // Terminate the listening connection(s) and commit at once: the notification
    // may go to nobody; the listener's reconnection refreshes every on-commit table.
    db.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND query LIKE 'LISTEN \"pgstream_changes\"%';
         INSERT INTO t VALUES (11, 11);",
    )
    .await;
    assert!(
        wait_for(
            &db.pool,
            "SELECT count(*) FROM a",
            11,
            Duration::from_secs(30)
        )
        .await
    );
    // And it listens again.
    db.exec("INSERT INTO t VALUES (12, 12)").await;
    assert!(
        wait_for(
            &db.pool,
            "SELECT count(*) FROM a",
            12,
            Duration::from_secs(30)
        )
        .await
    );
    rt.shutdown().await;
}

/// The measurement of `cargo bench --bench freshness` (commit-to-visible latency of the
/// tutorial's stream tables under a steady stream of single-row commits) on a few
/// commits, with `on commit` and with a 1 s schedule: every commit becomes visible
/// and is counted once, so the benchmark cannot silently measure nothing.
#[tokio::test]
async fn commit_latency_measures_every_commit() {
    for schedule in ["on commit", "1s"] {
        let db = test_db().await;
        let lat = pgstream_tests::freshness::commit_latency(
            &db.pool,
            &db.url,
            schedule,
            10,
            Duration::from_millis(30),
        )
        .await
        .unwrap();
        assert_eq!(lat.samples_ms.len(), 10, "{schedule}");
        assert!(lat.refreshes > 0, "{schedule}");
        assert!(lat.quantile(0.0) >= 0.0 && lat.quantile(1.0) >= lat.quantile(0.5));
    }
}
