//! An idle scheduler (issue 15): a DIFFERENTIAL stream table whose sources have no
//! changes is not refreshed at all (its refresh would find empty windows), so a tick
//! with no changes costs one probe per source, whatever the number of stream tables.
//! A change reaches exactly the readers of its source, and a stream table that reads
//! a refreshed one in the same pass; without the DDL event trigger (drift and new
//! partitions are then found by the refresh), every due stream table is refreshed as
//! before.

use std::time::Duration;

use pgstream_runtime::{Mode, Runtime};
use pgstream_tests::compare::scalar_i64;
use pgstream_tests::{test_db, TestDb};

/// Scheduled refreshes per stream table, by name.
async fn counts(db: &TestDb) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT name::text, refresh_count FROM pgstream.pg_stat_stream_tables ORDER BY name",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// The stream tables whose refresh count grew between `before` and `after`.
fn refreshed(before: &[(String, i64)], after: &[(String, i64)]) -> Vec<String> {
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| a.1 > b.1)
        .map(|(_, a)| a.0.clone())
        .collect()
}

#[tokio::test]
async fn only_stream_tables_with_changes_are_refreshed() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         CREATE TABLE b (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO a SELECT g, g % 3, g FROM generate_series(1, 30) g;
         INSERT INTO b SELECT g, g FROM generate_series(1, 30) g;",
    )
    .await;
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .tick(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    for i in 0..10 {
        rt.create_stream_table(
            &format!("a_{i:02}"),
            &format!("SELECT g, sum(v) AS s FROM a WHERE id > {i} GROUP BY g"),
            "1s",
            Mode::Differential,
        )
        .await
        .unwrap();
        rt.create_stream_table(
            &format!("b_{i:02}"),
            &format!("SELECT id, v FROM b WHERE id > {i}"),
            "1s",
            Mode::Differential,
        )
        .await
        .unwrap();
    }
    // Reads a stream table over `a`; and a FULL one, always refreshed.
    rt.create_stream_table(
        "c_down",
        "SELECT sum(s) AS t FROM a_00",
        "1s",
        Mode::Differential,
    )
    .await
    .unwrap();
    rt.create_stream_table("f_full", "SELECT count(*) AS n FROM b", "1s", Mode::Full)
        .await
        .unwrap();
    let due = "UPDATE pgstream.pgs_stream_tables SET last_refresh_at = now() - interval '1 hour'";

    // No changes: only the FULL stream table is refreshed.
    db.exec(due).await;
    let before = counts(&db).await;
    rt.run_once().await.unwrap();
    assert_eq!(refreshed(&before, &counts(&db).await), ["f_full"]);

    // A change to `a`: its readers, and the reader of `a_00` in the same pass.
    db.exec("UPDATE a SET v = v + 1 WHERE id = 20").await;
    db.exec(due).await;
    let before = counts(&db).await;
    rt.run_once().await.unwrap();
    let mut expected: Vec<String> = (0..10).map(|i| format!("a_{i:02}")).collect();
    expected.push("c_down".into());
    expected.push("f_full".into());
    assert_eq!(refreshed(&before, &counts(&db).await), expected);
    assert_eq!(
        scalar_i64(&db.pool, "SELECT t::int8 FROM c_down").await,
        scalar_i64(&db.pool, "SELECT sum(v) FROM a").await
    );

    // Quiet again: the buffers were trimmed.
    db.exec(due).await;
    let before = counts(&db).await;
    rt.run_once().await.unwrap();
    assert_eq!(refreshed(&before, &counts(&db).await), ["f_full"]);

    // A change no committed statement made (rolled back) is no change.
    db.exec("BEGIN; DELETE FROM b; ROLLBACK;").await;
    db.exec(due).await;
    let before = counts(&db).await;
    rt.run_once().await.unwrap();
    assert_eq!(refreshed(&before, &counts(&db).await), ["f_full"]);

    // The status of a stream table left alone is not stale: nothing is pending.
    let status = rt.status().await.unwrap();
    assert!(status.iter().all(|s| !s.stale && s.pending_changes == 0));

    // A TRUNCATE (a pending full refresh) is refreshed without buffer rows.
    db.exec("TRUNCATE b").await;
    db.exec(due).await;
    let before = counts(&db).await;
    rt.run_once().await.unwrap();
    let mut expected: Vec<String> = (0..10).map(|i| format!("b_{i:02}")).collect();
    expected.push("f_full".into());
    assert_eq!(refreshed(&before, &counts(&db).await), expected);
    assert_eq!(scalar_i64(&db.pool, "SELECT count(*) FROM b_00").await, 0);

    // Without the event trigger, every due stream table is refreshed, as before.
    db.exec("ALTER EVENT TRIGGER pgstream_ddl DISABLE").await;
    db.exec(due).await;
    let before = counts(&db).await;
    rt.run_once().await.unwrap();
    assert_eq!(refreshed(&before, &counts(&db).await).len(), 22);
    rt.shutdown().await;
}
