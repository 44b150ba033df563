//! The refresh paths of catalog version 5: the generated refresh function (the
//! differential statement planned once per session), a refresh that finds no changes
//! (does nothing, leaves the frontiers), the adaptive switch to a full refresh when
//! the window is large, its setting, the statistics and status that show which path
//! ran, and stream tables created before version 5 (no generated function).

use pgstream_runtime::{Mode, RuntimeHandle, StreamTableStatus};
use pgstream_tests::{test_db, TestDb};
use sqlx::PgPool;

const Q: &str = "SELECT d.id, d.name, count(e.id) AS n, COALESCE(sum(e.x), 0) AS total \
                 FROM d LEFT JOIN e ON e.d_id = d.id GROUP BY d.id, d.name";

async fn setup(db: &TestDb) -> RuntimeHandle {
    db.exec(
        "CREATE TABLE d (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE e (id int PRIMARY KEY, d_id int, x int);
         INSERT INTO d SELECT g, 'd' || g FROM generate_series(1, 50) g;
         INSERT INTO e SELECT g, 1 + g % 60, g % 7 FROM generate_series(1, 3000) g;
         ANALYZE d, e;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", Q, "1h", Mode::Differential)
        .await
        .unwrap();
    h
}

/// Rows that differ between the stream table and its query (0 when equal).
async fn difference(pool: &PgPool) -> i64 {
    pgstream_tests::compare::difference(pool, Q, "st", "id, name, n, total").await
}

async fn status(pool: &PgPool) -> StreamTableStatus {
    pgstream_runtime::status(pool)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == "st")
        .expect("st in status")
}

async fn frontier(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT f.frontier::text FROM pgstream.pgs_frontiers f
           JOIN pgstream.pgs_stream_tables s ON s.id = f.st_id
          WHERE s.table_name = 'st' ORDER BY f.source_oid",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn no_changes_does_nothing_and_keeps_the_frontiers() {
    let db = test_db().await;
    let h = setup(&db).await;
    let before = frontier(&db.pool).await;
    // Some other transaction commits meanwhile: the frontiers would move if the
    // refresh took a new snapshot.
    db.exec("CREATE TABLE unrelated (x int); INSERT INTO unrelated VALUES (1)")
        .await;
    for _ in 0..3 {
        assert_eq!(h.refresh("st").await.unwrap().rows_changed, 0);
    }
    assert_eq!(frontier(&db.pool).await, before);
    let s = status(&db.pool).await;
    assert_eq!(s.last_strategy.as_deref(), Some("NO CHANGES"));
    assert_eq!(s.no_change_count, 3);
    assert_eq!(s.differential_count, 0);
    assert_eq!(s.refresh_count, 3);
    assert_eq!(s.last_window_rows, Some(0));
    assert!(s.last_refresh_at.is_some());

    // A change after no-change refreshes is applied exactly once.
    db.exec("UPDATE e SET x = x + 100 WHERE id <= 10; DELETE FROM e WHERE id = 11")
        .await;
    let out = h.refresh("st").await.unwrap();
    assert!(out.rows_changed > 0);
    assert_eq!(difference(&db.pool).await, 0);
    let s = status(&db.pool).await;
    assert_eq!(s.last_strategy.as_deref(), Some("DIFFERENTIAL"));
    // Ten updates (old and new images) and one delete.
    assert_eq!(s.last_window_rows, Some(21));
    assert_eq!(s.differential_count, 1);
    assert_ne!(frontier(&db.pool).await, before);
    assert_eq!(h.refresh("st").await.unwrap().rows_changed, 0);
    assert_eq!(difference(&db.pool).await, 0);
}

#[tokio::test]
async fn own_transaction_changes_are_not_skipped() {
    // The no-change check runs in the refreshing transaction: its own uncommitted
    // changes count, and a second refresh in that transaction sees none.
    let db = test_db().await;
    setup(&db).await;
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO e VALUES (5001, 3, 1000)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT pgstream.refresh_stream_table('st')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n: i64 = sqlx::query_scalar("SELECT pgstream.refresh_stream_table('st')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
    tx.commit().await.unwrap();
    assert_eq!(
        pgstream_runtime::refresh(&db.pool, "st")
            .await
            .unwrap()
            .rows_changed,
        0
    );
    assert_eq!(difference(&db.pool).await, 0);
}

#[tokio::test]
async fn a_large_window_switches_to_a_full_refresh() {
    let db = test_db().await;
    let h = setup(&db).await;
    // Default ratio 0.05 of 3,050 source rows is under the floor of 1,000 window rows.
    let ratio: Option<f64> = sqlx::query_scalar(
        "SELECT full_refresh_ratio FROM pgstream.pgs_stream_tables WHERE table_name = 'st'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(ratio, Some(0.05));

    // 600 updates = 1,200 window rows: over the floor, so a full refresh.
    db.exec("UPDATE e SET x = x + 1, d_id = d_id % 40 + 1 WHERE id <= 600")
        .await;
    h.refresh("st").await.unwrap();
    assert_eq!(difference(&db.pool).await, 0);
    let s = status(&db.pool).await;
    assert_eq!(s.last_strategy.as_deref(), Some("FULL (adaptive)"));
    assert_eq!(s.last_window_rows, Some(1000), "counted up to the cap");
    assert_eq!((s.full_count, s.adaptive_full_count), (1, 1));

    // The full refresh advanced every frontier: nothing left to apply.
    assert_eq!(h.refresh("st").await.unwrap().rows_changed, 0);
    assert_eq!(
        status(&db.pool).await.last_strategy.as_deref(),
        Some("NO CHANGES")
    );

    // Below the cap: differential.
    db.exec("UPDATE e SET x = x + 1 WHERE id <= 400").await;
    h.refresh("st").await.unwrap();
    assert_eq!(
        status(&db.pool).await.last_strategy.as_deref(),
        Some("DIFFERENTIAL")
    );
    assert_eq!(difference(&db.pool).await, 0);

    // Never switch: the same large window is applied differentially.
    db.exec("SELECT pgstream.set_full_refresh_ratio('st', NULL)")
        .await;
    db.exec("UPDATE e SET x = x + 1, d_id = NULL WHERE id <= 600")
        .await;
    h.refresh("st").await.unwrap();
    let s = status(&db.pool).await;
    assert_eq!(s.last_strategy.as_deref(), Some("DIFFERENTIAL"));
    assert_eq!(s.last_window_rows, Some(1200));
    assert_eq!(difference(&db.pool).await, 0);

    // Bad settings change nothing.
    for bad in [
        "SELECT pgstream.set_full_refresh_ratio('st', 0)",
        "SELECT pgstream.set_full_refresh_ratio('st', -1)",
        "SELECT pgstream.set_full_refresh_ratio('nope', 0.1)",
        "SELECT pgstream.set_full_refresh_ratio('st', 'NaN')",
        "SELECT pgstream.set_full_refresh_ratio('st', 'Infinity')",
        "SELECT pgstream.set_full_refresh_ratio('st', '-Infinity')",
    ] {
        let err = sqlx::query(bad).execute(&db.pool).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("greater than 0") || msg.contains("does not exist"),
            "{bad}: {msg}"
        );
    }
    let ratio: Option<f64> = sqlx::query_scalar(
        "SELECT full_refresh_ratio FROM pgstream.pgs_stream_tables WHERE table_name = 'st'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(ratio, None);
}

/// A large finite ratio is a valid setting (never switch, in practice): the cap it
/// gives is bounded, the refresh does not overflow.
#[tokio::test]
async fn a_huge_ratio_does_not_overflow_the_cap() {
    let db = test_db().await;
    let h = setup(&db).await;
    db.exec("SELECT pgstream.set_full_refresh_ratio('st', 1e300)")
        .await;
    db.exec("UPDATE e SET x = x + 1 WHERE id <= 10").await;
    h.refresh("st").await.unwrap();
    assert_eq!(
        status(&db.pool).await.last_strategy.as_deref(),
        Some("DIFFERENTIAL")
    );
    assert_eq!(difference(&db.pool).await, 0);
}

#[tokio::test]
async fn status_names_the_strategy_and_drop_removes_the_function() {
    let db = test_db().await;
    let h = setup(&db).await;
    db.exec("CREATE TABLE nodes (id int PRIMARY KEY, parent_id int)")
        .await;
    h.create_stream_table(
        "tree",
        "WITH RECURSIVE r AS (SELECT id, 0 AS depth FROM nodes WHERE parent_id IS NULL \
         UNION ALL SELECT n.id, r.depth + 1 FROM nodes n JOIN r ON n.parent_id = r.id) \
         SELECT id, depth FROM r",
        "1h",
        Mode::Differential,
    )
    .await
    .unwrap();
    h.create_stream_table("st_full", Q, "1h", Mode::Full)
        .await
        .unwrap();
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT name, strategy FROM pgstream.pgs_status() ORDER BY name")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let strategy = |n: &str| {
        rows.iter()
            .find(|(name, _)| name == n)
            .and_then(|(_, s)| s.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        strategy("st"),
        "incremental: delta rules, per-group counters"
    );
    assert!(
        strategy("tree").starts_with("recompute and apply the difference when a source changed"),
        "{}",
        strategy("tree")
    );
    assert!(strategy("st_full").starts_with("full:"));
    assert_eq!(
        status(&db.pool).await.strategy.as_deref(),
        Some("incremental: delta rules, per-group counters")
    );

    let functions = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'pgstream' AND p.proname LIKE '\\_refresh\\_%' ORDER BY 1",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap()
    };
    // One generated function per DIFFERENTIAL stream table, none for FULL mode.
    assert_eq!(functions().await.len(), 2);
    db.exec("INSERT INTO nodes VALUES (1, NULL), (2, 1)").await;
    h.refresh("tree").await.unwrap();
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tree")
            .fetch_one(&db.pool)
            .await
            .unwrap(),
        2
    );
    h.drop_stream_table("tree").await.unwrap();
    h.drop_stream_table("st").await.unwrap();
    assert!(functions().await.is_empty());
}

#[tokio::test]
async fn stream_tables_without_a_generated_function_still_refresh() {
    // Created by a runtime of catalog version 4: no generated function.
    let db = test_db().await;
    let h = setup(&db).await;
    db.exec(
        "DO $$ DECLARE f text; BEGIN
           SELECT refresh_function INTO f FROM pgstream.pgs_stream_tables WHERE table_name = 'st';
           EXECUTE format('DROP FUNCTION %s(bigint)', f);
           UPDATE pgstream.pgs_stream_tables SET refresh_function = NULL WHERE table_name = 'st';
         END $$",
    )
    .await;
    db.exec("UPDATE e SET x = x * 2 WHERE id % 3 = 0; INSERT INTO d VALUES (99, 'new')")
        .await;
    h.refresh("st").await.unwrap();
    assert_eq!(difference(&db.pool).await, 0);
    assert_eq!(
        status(&db.pool).await.last_strategy.as_deref(),
        Some("DIFFERENTIAL")
    );
    h.drop_stream_table("st").await.unwrap();
}

#[tokio::test]
async fn the_switch_follows_the_measured_costs() {
    let db = test_db().await;
    let h = setup(&db).await;
    // Measured costs: a full refresh takes 10 ms, a differential one 0.1 ms per window
    // row: a full refresh pays from 100 rows on (the least the model allows).
    db.exec(
        "UPDATE pgstream.pgs_refresh_stats r SET full_ms_avg = 10, diff_ms_per_row = 0.1
          FROM pgstream.pgs_stream_tables s WHERE s.id = r.st_id AND s.table_name = 'st'",
    )
    .await;
    db.exec("UPDATE e SET x = x + 1 WHERE id <= 60").await;
    h.refresh("st").await.unwrap();
    let s = status(&db.pool).await;
    assert_eq!(s.last_strategy.as_deref(), Some("FULL (adaptive)"));
    assert_eq!(s.last_window_rows, Some(100));
    assert_eq!(difference(&db.pool).await, 0);
    // The full refresh's duration entered the average.
    let full_ms: f64 = sqlx::query_scalar(
        "SELECT r.full_ms_avg FROM pgstream.pgs_refresh_stats r
           JOIN pgstream.pgs_stream_tables s ON s.id = r.st_id WHERE s.table_name = 'st'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(full_ms > 7.0 && full_ms != 10.0, "{full_ms}");

    // A full refresh that costs a lot: the same window (and a larger one) is applied
    // differentially, and its cost per row is learned.
    db.exec(
        "UPDATE pgstream.pgs_refresh_stats r SET full_ms_avg = 1e9, diff_ms_per_row = 0.1
          FROM pgstream.pgs_stream_tables s WHERE s.id = r.st_id AND s.table_name = 'st'",
    )
    .await;
    db.exec("UPDATE e SET x = x + 1 WHERE id <= 700").await;
    h.refresh("st").await.unwrap();
    let s = status(&db.pool).await;
    assert_eq!(s.last_strategy.as_deref(), Some("DIFFERENTIAL"));
    assert_eq!(s.last_window_rows, Some(1400));
    assert_eq!(difference(&db.pool).await, 0);
    let per_row: f64 = sqlx::query_scalar(
        "SELECT diff_ms_per_row FROM pgstream.pg_stat_stream_tables WHERE name = 'st'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(per_row > 0.0 && per_row != 0.1, "{per_row}");
}

/// The initial population is a full refresh: its duration seeds `full_ms_avg`, so the
/// switch uses measured costs as soon as a differential refresh has been measured too,
/// without waiting for a full refresh chosen by the fallback ratio. Nothing counts as a
/// refresh yet.
#[tokio::test]
async fn creation_seeds_the_cost_of_a_full_refresh() {
    let db = test_db().await;
    let _h = setup(&db).await;
    let (full_ms, count): (Option<f64>, i64) = sqlx::query_as(
        "SELECT r.full_ms_avg, r.refresh_count FROM pgstream.pgs_refresh_stats r
           JOIN pgstream.pgs_stream_tables s ON s.id = r.st_id WHERE s.table_name = 'st'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(full_ms.is_some_and(|ms| ms > 0.0), "{full_ms:?}");
    assert_eq!(count, 0);
    let s = status(&db.pool).await;
    assert_eq!((s.full_count, s.adaptive_full_count), (0, 0));
}
