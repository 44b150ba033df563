//! Cron schedules against a real PostgreSQL: the scheduler refreshes a stream table at
//! its fire times and not between them; an invalid cron expression is refused before
//! anything is installed.

use std::time::{Duration, Instant};

use pgstream_runtime::{Error, Mode, Runtime, RuntimeHandle};
use pgstream_tests::compare::scalar_i64;
use pgstream_tests::table_t::{setup_t, Q};
use pgstream_tests::test_db;
use sqlx::PgPool;

/// Scheduled refreshes of a stream table so far (the initial one does not count).
async fn refresh_count(pool: &PgPool, name: &str) -> i64 {
    scalar_i64(
        pool,
        &format!("SELECT refresh_count FROM pgstream.pg_stat_stream_tables WHERE name = '{name}'"),
    )
    .await
}

#[tokio::test]
async fn scheduler_refreshes_at_cron_fire_times_only() {
    let db = test_db().await;
    setup_t(&db).await;
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    // Fires every second (six fields, seconds first).
    rt.create_stream_table("every_second", Q, "* * * * * *", Mode::Differential)
        .await
        .unwrap();
    // Fires at midnight of 29 February only: not during this test.
    rt.create_stream_table("leap_day", Q, "0 0 29 FEB *", Mode::Differential)
        .await
        .unwrap();

    // The catalog holds the expression and its longest gap between fire times.
    let rows: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT table_name::text, schedule, extract(epoch FROM schedule_interval)::float8
           FROM pgstream.pgs_stream_tables ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("every_second".into(), "* * * * * *".into(), 1.0),
            // 2096-02-29 to 2104-02-29 (2100 is not a leap year).
            ("leap_day".into(), "0 0 29 FEB *".into(), 2921.0 * 86_400.0),
        ]
    );

    db.exec("INSERT INTO t VALUES (300, 'cron', 3)").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while scalar_i64(&db.pool, "SELECT count(*) FROM every_second WHERE id = 300").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the scheduler did not refresh `every_second` within 5s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Again at the following fire times, for a new change. (The buffer of `t` still
    // holds the row `leap_day` has not applied; `every_second`'s frontier covers it,
    // so that alone calls no refresh: the scheduler advances it, see
    // runtime_change_filters.rs.)
    db.exec("INSERT INTO t VALUES (301, 'cron', 3)").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while refresh_count(&db.pool, "every_second").await < 2 {
        assert!(
            Instant::now() < deadline,
            "`every_second` was not refreshed at the next fire time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Not due: no scheduled refresh, the change is still pending.
    assert_eq!(refresh_count(&db.pool, "leap_day").await, 0);
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM leap_day WHERE id = 300").await,
        0
    );
    let status = rt.status().await.unwrap();
    let leap = status.iter().find(|s| s.name == "leap_day").unwrap();
    assert_eq!(leap.schedule, "0 0 29 FEB *");
    assert_eq!(leap.pending_changes, 2);
    assert!(
        !leap.stale,
        "no fire time has passed since the last refresh"
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn invalid_cron_is_refused_and_nothing_is_installed() {
    let db = test_db().await;
    setup_t(&db).await;
    let h = RuntimeHandle::new(db.pool.clone());
    let err = h
        .create_stream_table("bad", Q, "*/5 25 * * *", Mode::Differential)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("invalid cron expression `*/5 25 * * *`: hour `25` is out of range 0-23"),
        "{err}"
    );
    // Through the builder as well: refused before the catalog is installed.
    let err = pgstream_runtime::spec("bad", Q, "0 0 31 APR *", Mode::Full).unwrap_err();
    assert!(
        err.to_string()
            .contains("day-of-month `31` does not occur in April"),
        "{err}"
    );

    // Nothing: no storage table, no capture trigger, no catalog.
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pg_class WHERE relname = 'bad'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass"
        )
        .await,
        0
    );
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pgstream%'"
        )
        .await,
        0
    );

    // With the catalog installed, a valid stream table beside it, and a bad schedule
    // for another: the catalog holds only the valid one.
    h.create_stream_table("good", Q, "@hourly", Mode::Differential)
        .await
        .unwrap();
    let err = h
        .create_stream_table("bad", Q, "0 9 * * MON-FUN", Mode::Differential)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("day-of-week `FUN` is not a valid value (expected 0-7 or SUN-SAT)"),
        "{err}"
    );
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_stream_tables").await,
        1
    );
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pg_class WHERE relname = 'bad'"
        )
        .await,
        0
    );
}
