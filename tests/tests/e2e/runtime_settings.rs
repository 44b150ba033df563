//! The settings that change what a query computes (TimeZone, DateStyle,
//! IntervalStyle, extra_float_digits, bytea_output, ...) are recorded when a stream
//! table is created, and every refresh computes with them, whoever calls it: the
//! runtime, `SELECT pgstream.refresh_stream_table(...)` from a session with other
//! settings, a differential, adaptive or full refresh, FULL mode. The caller's
//! settings are back after the refresh.

use pgstream_runtime::{Mode, RuntimeHandle};
use pgstream_tests::{test_db, TestDb};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection};

/// Settings of the "other" sessions: every one differs from sqlx's (UTC, ISO, 2, hex).
const OTHER: &str = "SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'SQL, DMY';
                     SET IntervalStyle = 'postgres_verbose'; SET extra_float_digits = 0;
                     SET bytea_output = 'escape'";

/// (name, query, mode, visible columns).
const STREAMS: &[(&str, &str, Mode, &str)] = &[
    (
        "s_hour",
        "SELECT date_trunc('hour', occurred_at) AS bucket, count(*) AS n FROM ev GROUP BY 1",
        Mode::Differential,
        "bucket, n",
    ),
    (
        "s_text",
        "SELECT id, occurred_at::text AS at_text, (occurred_at - timestamptz '2026-01-01 00:00+00')::text AS since, \
         amount::text AS amount_text, payload::text AS payload_text, \
         to_char(occurred_at, 'YYYY-MM-DD HH24:MI') AS local_minute FROM ev",
        Mode::Differential,
        "id, at_text, since, amount_text, payload_text, local_minute",
    ),
    (
        "s_full",
        "SELECT date_trunc('day', occurred_at)::text AS day, sum(amount) AS total FROM ev GROUP BY 1",
        Mode::Full,
        "day, total",
    ),
];

// The query is evaluated on `db.pool`, whose sessions have the creation settings
// (sqlx's: UTC, ISO, extra_float_digits 2, hex bytea).
async fn check_all(db: &TestDb, step: &str) {
    for (name, query, _, cols) in STREAMS {
        assert_eq!(
            db.difference(query, cols, name).await,
            0,
            "{step}: {name} differs from its query under the creation settings"
        );
    }
}

async fn other_session(db: &TestDb) -> PgConnection {
    let mut c = PgConnection::connect_with(&db.connect_options())
        .await
        .unwrap();
    sqlx::raw_sql(OTHER).execute(&mut c).await.unwrap();
    c
}

async fn timezone(c: &mut PgConnection) -> String {
    sqlx::query_scalar("SELECT current_setting('TimeZone')")
        .fetch_one(&mut *c)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_refresh_computes_with_the_settings_recorded_at_creation() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE ev (id int PRIMARY KEY, occurred_at timestamptz NOT NULL,
                          amount float8 NOT NULL, payload bytea NOT NULL);
         INSERT INTO ev SELECT i, timestamptz '2026-03-01 15:10:00+00' + i * interval '17 minutes',
                               i / 3.0, convert_to('p' || i, 'UTF8')
           FROM generate_series(1, 50) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    for (name, query, mode, _) in STREAMS {
        h.create_stream_table(name, query, "1h", *mode)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    let recorded: String = sqlx::query_scalar(
        "SELECT settings ->> 'TimeZone' FROM pgstream.pgs_stream_tables WHERE table_name = 's_hour'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(recorded, "UTC");
    check_all(&db, "created").await;

    // psql-like: the SQL entry point from a session with other settings.
    let mut psql = other_session(&db).await;
    db.exec(
        "INSERT INTO ev SELECT i, timestamptz '2026-03-02 15:10:00+00' + i * interval '7 minutes',
                               i / 7.0, convert_to('q' || i, 'UTF8')
           FROM generate_series(100, 120) i;
         UPDATE ev SET occurred_at = occurred_at + interval '45 minutes' WHERE id % 4 = 0;",
    )
    .await;
    for (name, _, _, _) in STREAMS {
        psql.execute(sqlx::query("SELECT pgstream.refresh_stream_table($1)").bind(name))
            .await
            .unwrap();
    }
    check_all(&db, "differential from another session").await;
    assert_eq!(
        timezone(&mut psql).await,
        "Asia/Kolkata",
        "caller's settings back"
    );
    let datestyle: String = sqlx::query_scalar("SELECT current_setting('DateStyle')")
        .fetch_one(&mut psql)
        .await
        .unwrap();
    assert_eq!(datestyle, "SQL, DMY");

    // The runtime on a pool whose sessions have other settings: the adaptive switch
    // (a large window) and the full refresh after a TRUNCATE.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .after_connect(|c, _| {
            Box::pin(async move {
                for stmt in OTHER.split(';') {
                    c.execute(stmt).await?;
                }
                Ok(())
            })
        })
        .connect_with(db.connect_options())
        .await
        .unwrap();
    let other = RuntimeHandle::new(pool.clone());
    db.exec(
        "INSERT INTO ev SELECT i, timestamptz '2026-03-03 15:10:00+00' + i * interval '3 minutes',
                               i / 9.0, convert_to('r' || i, 'UTF8')
           FROM generate_series(1000, 3500) i;",
    )
    .await;
    for (name, _, _, _) in STREAMS {
        other.refresh(name).await.unwrap();
    }
    let adaptive = db.adaptive_refreshes().await;
    assert!(adaptive > 0, "the adaptive switch ran");
    check_all(&db, "adaptive from another session").await;

    db.exec(
        "TRUNCATE ev;
         INSERT INTO ev SELECT i, timestamptz '2026-03-04 18:40:00+00' + i * interval '13 minutes',
                               i / 11.0, convert_to('s' || i, 'UTF8')
           FROM generate_series(1, 40) i;",
    )
    .await;
    for (name, _, _, _) in STREAMS {
        other.refresh(name).await.unwrap();
    }
    check_all(&db, "full refresh from another session").await;

    // The generated refresh function computes with them when called on its own too.
    let pinned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_proc p JOIN pgstream.pgs_stream_tables s
             ON p.oid = to_regprocedure(s.refresh_function || '(bigint)')
          WHERE 'TimeZone=UTC' = ANY (p.proconfig)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(pinned, 2, "the two differential stream tables' functions");
    pool.close().await;
}

/// A catalog of version 6 upgrades: stream tables created before get the settings a
/// new session of the installing client gets (sqlx's: UTC, ...), their refresh
/// functions get them as SET clauses, and a NaN full refresh ratio (accepted before)
/// becomes the default.
#[tokio::test]
async fn version_6_catalog_upgrades_with_default_settings() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE ev (id int PRIMARY KEY, occurred_at timestamptz NOT NULL);
         INSERT INTO ev VALUES (1, '2026-03-01 15:10:00+00');",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    let q = "SELECT date_trunc('hour', occurred_at) AS bucket, count(*) AS n FROM ev GROUP BY 1";
    h.create_stream_table("st", q, "1h", Mode::Differential)
        .await
        .unwrap();
    let function: String =
        sqlx::query_scalar("SELECT refresh_function FROM pgstream.pgs_stream_tables")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    db.exec(&format!(
        "ALTER TABLE pgstream.pgs_stream_tables DROP COLUMN settings;
         ALTER FUNCTION {function}(bigint) RESET ALL;
         UPDATE pgstream.pgs_stream_tables SET full_refresh_ratio = 'NaN';
         UPDATE pgstream.pgs_meta SET schema_version = 6;"
    ))
    .await;
    let rt = pgstream_runtime::Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    rt.shutdown().await;
    let (tz, ratio): (String, Option<f64>) = sqlx::query_as(
        "SELECT settings ->> 'TimeZone', full_refresh_ratio FROM pgstream.pgs_stream_tables",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(tz, "UTC");
    assert_eq!(ratio, Some(0.05));
    let config: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT unnest(proconfig) FROM pg_proc WHERE oid = to_regprocedure('{function}(bigint)')"
    ))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(config.contains(&"TimeZone=UTC".to_string()), "{config:?}");
    let mut psql = other_session(&db).await;
    db.exec("INSERT INTO ev VALUES (2, '2026-03-01 16:50:00+00')")
        .await;
    psql.execute(sqlx::query("SELECT pgstream.refresh_stream_table('st')"))
        .await
        .unwrap();
    assert_eq!(db.difference(q, "bucket, n", "st").await, 0);
}

/// A stream table requested from SQL (`pgstream.create_stream_table`) is created by a
/// runtime with the requesting session's settings, records them, and is refreshed with
/// them from every session.
#[tokio::test]
async fn a_request_from_sql_records_the_requesting_sessions_settings() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE ev (id int PRIMARY KEY, occurred_at timestamptz NOT NULL);
         INSERT INTO ev SELECT i, timestamptz '2026-03-01 15:10:00+00' + i * interval '17 minutes'
           FROM generate_series(1, 30) i;",
    )
    .await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    let q = "SELECT date_trunc('hour', occurred_at) AS bucket, count(*) AS n FROM ev GROUP BY 1";
    let mut psql = other_session(&db).await;
    psql.execute(sqlx::query("SELECT pgstream.create_stream_table('st', $1, '1h')").bind(q))
        .await
        .unwrap();
    pgstream_runtime::process_requests(&db.pool).await.unwrap();
    let recorded: String = sqlx::query_scalar(
        "SELECT settings ->> 'TimeZone' FROM pgstream.pgs_stream_tables WHERE table_name = 'st'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(recorded, "Asia/Kolkata");
    db.exec("INSERT INTO ev VALUES (100, '2026-03-01 16:50:00+00')")
        .await;
    // Refreshed from a UTC session (the runtime's pool), with the Kolkata buckets.
    RuntimeHandle::new(db.pool.clone())
        .refresh("st")
        .await
        .unwrap();
    let mut kolkata = other_session(&db).await;
    let diff: i64 = sqlx::query_scalar(&format!(
        "SELECT (SELECT count(*) FROM (({q}) EXCEPT ALL (SELECT bucket, n FROM st)) a)
              + (SELECT count(*) FROM ((SELECT bucket, n FROM st) EXCEPT ALL ({q})) b)"
    ))
    .fetch_one(&mut kolkata)
    .await
    .unwrap();
    assert_eq!(diff, 0);
    assert!(
        db.difference(q, "bucket, n", "st").await > 0,
        "UTC buckets differ"
    );
}
