//! Parallel scheduled refreshes (issue 15): with .parallel_refreshes(2)`, a refresh
//! held up (here by a lock on its storage table) does not hold up an unrelated stream
//! table due in the same pass, while a stream table that reads the held-up one waits
//! for it and then sees its new rows.

use std::time::Duration;

use pgstream_runtime::{Mode, Runtime, RuntimeBuilder};
use pgstream_tests::compare::scalar_i64;
use pgstream_tests::{test_db, TestDb};
use sqlx::Connection;

async fn refresh_count(db: &TestDb, name: &str) -> i64 {
    scalar_i64(
        &db.pool,
        &format!("SELECT refresh_count FROM pgstream.pg_stat_stream_tables WHERE name = '{name}'"),
    )
    .await
}

/// Sources a and b, a runtime with `parallel_refreshes(2)` configured further by
/// `configure`, and the stream tables sa (over a), sb (over b) and ssa (over sa).
async fn setup(configure: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder) -> (TestDb, Runtime) {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v int NOT NULL);
         CREATE TABLE b (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO a SELECT i, i FROM generate_series(1, 10) i;
         INSERT INTO b SELECT i, i FROM generate_series(1, 10) i;",
    )
    .await;
    let runtime = configure(Runtime::builder(db.pool.clone()).parallel_refreshes(2))
        .start()
        .await
        .unwrap();
    let h = runtime.handle();
    for (name, query) in [
        ("sa", "SELECT id, v FROM a"),
        ("sb", "SELECT id, v FROM b"),
        ("ssa", "SELECT sum(v) AS total FROM sa"),
    ] {
        h.create_stream_table(name, query, "1s", Mode::Differential)
            .await
            .unwrap();
    }
    (db, runtime)
}

#[tokio::test]
async fn a_held_up_refresh_delays_only_its_readers() {
    let (db, runtime) = setup(|b| b.scheduler(false)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    db.exec("UPDATE a SET v = v + 100 WHERE id = 1; UPDATE b SET v = v + 100 WHERE id = 1;")
        .await;
    let before = (
        refresh_count(&db, "sa").await,
        refresh_count(&db, "sb").await,
        refresh_count(&db, "ssa").await,
    );

    // Another session holds sa's storage table: sa's refresh waits for it.
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE sa IN ACCESS EXCLUSIVE MODE;")
        .execute(&mut holder)
        .await
        .unwrap();
    let observe = async {
        // sb is refreshed while sa waits.
        let mut waited = Duration::ZERO;
        while refresh_count(&db, "sb").await == before.1 {
            assert!(
                waited < Duration::from_secs(30),
                "sb was not refreshed while sa waited"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += Duration::from_millis(50);
        }
        assert_eq!(refresh_count(&db, "sa").await, before.0);
        // ssa reads sa: it has not started.
        assert_eq!(refresh_count(&db, "ssa").await, before.2);
        sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    };
    let (pass, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(runtime.run_once(), observe)
    })
    .await
    .expect("the pass ends once sa is released");
    pass.unwrap();
    assert_eq!(refresh_count(&db, "sa").await, before.0 + 1);
    assert_eq!(refresh_count(&db, "ssa").await, before.2 + 1);
    // ssa ran after sa: it holds sa's new rows.
    assert_eq!(
        scalar_i64(&db.pool, "SELECT total::int8 FROM ssa").await,
        scalar_i64(&db.pool, "SELECT sum(v)::int8 FROM a").await
    );
    runtime.shutdown().await;
}

/// Issue 15's "no refresh waits behind an unrelated slow one for more than one
/// tick", across passes: sa's refresh is held up for as long as the test runs, and a
/// change of b made while it waits is still refreshed by a later pass of the running
/// scheduler (before, every pass waited for all its refreshes, so sb waited for sa).
/// ssa reads sa: it is not refreshed before sa's refresh ends, and then sees its rows.
#[tokio::test]
async fn a_slow_refresh_does_not_hold_up_later_passes() {
    let (db, runtime) = setup(|b| b.tick(Duration::from_millis(200))).await;
    // Another session holds sa's storage table: the next refresh of sa waits for it.
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE sa IN ACCESS EXCLUSIVE MODE;")
        .execute(&mut holder)
        .await
        .unwrap();
    let before_a = (
        refresh_count(&db, "sa").await,
        refresh_count(&db, "ssa").await,
    );
    db.exec("UPDATE a SET v = v + 100 WHERE id = 1").await;
    // Until the scheduler's refresh of sa waits for the lock.
    let waiting = "SELECT count(*) FROM pg_catalog.pg_locks l
                    WHERE l.relation = 'sa'::regclass AND NOT l.granted";
    let mut waited = Duration::ZERO;
    while scalar_i64(&db.pool, waiting).await == 0 {
        assert!(
            waited < Duration::from_secs(60),
            "sa's refresh never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    // A change of b now: a later pass refreshes sb while sa still waits.
    let before_b = refresh_count(&db, "sb").await;
    db.exec("UPDATE b SET v = v + 100 WHERE id = 1").await;
    let mut waited = Duration::ZERO;
    while scalar_i64(&db.pool, "SELECT sum(v)::int8 FROM sb").await
        != scalar_i64(&db.pool, "SELECT sum(v)::int8 FROM b").await
    {
        assert!(
            waited < Duration::from_secs(60),
            "sb was not refreshed while sa's refresh waited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert!(refresh_count(&db, "sb").await > before_b);
    // sa is still waiting, and its reader was not refreshed meanwhile.
    assert_eq!(scalar_i64(&db.pool, waiting).await, 1);
    assert_eq!(refresh_count(&db, "sa").await, before_a.0);
    assert_eq!(refresh_count(&db, "ssa").await, before_a.1);
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    // Then sa, and after it ssa, with sa's new rows.
    let mut waited = Duration::ZERO;
    while scalar_i64(&db.pool, "SELECT total::int8 FROM ssa").await
        != scalar_i64(&db.pool, "SELECT sum(v)::int8 FROM a").await
    {
        assert!(waited < Duration::from_secs(60), "ssa never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert_eq!(refresh_count(&db, "sa").await, before_a.0 + 1);
    runtime.shutdown().await;
}
