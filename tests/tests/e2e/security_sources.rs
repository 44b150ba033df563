//! Sources followed by oid (issue 11, item 9). A source renamed, moved to another
//! schema, dropped (and created again), or replaced by a view of its old name is
//! schema drift: the refresh applies nothing and fails with SQLSTATE PGS01 naming the
//! source, the stream table goes to the ERROR state, and no stored statement reads
//! the relation that now has the name. With an attacker: the owner of a source
//! replaces it by a view whose body calls a function that makes the attacker
//! superuser when a superuser runs it; a superuser's refresh (runtime, SQL from a
//! psql session, scheduler) must not run it.

use pgstream_runtime::{Error, Mode, Runtime, RuntimeHandle};
use pgstream_tests::attack::{
    assert_not_pwned, attacker_owned_source, replace_source_by_view, REPLACED_SOURCE,
};
use pgstream_tests::{test_db, TestDb};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

async fn setup(db: &TestDb) -> RuntimeHandle {
    db.exec(
        "CREATE TABLE src (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         INSERT INTO src SELECT i, i % 3, i FROM generate_series(1, 20) i;",
    )
    .await;
    create_readers(db, "1h").await
}

/// The stream tables over `src`: `per_g` (DIFFERENTIAL, on `schedule`) and `all_rows`
/// (FULL).
async fn create_readers(db: &TestDb, schedule: &str) -> RuntimeHandle {
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table(
        "per_g",
        "SELECT g, count(*) AS n, sum(v) AS s FROM src GROUP BY g",
        schedule,
        Mode::Differential,
    )
    .await
    .unwrap();
    h.create_stream_table("all_rows", "SELECT id, v FROM src", "1h", Mode::Full)
        .await
        .unwrap();
    h
}

/// Refreshes `st` through the runtime: it must fail as drift naming `expected`, apply
/// nothing, and leave the stream table in ERROR with that reason.
async fn assert_drift(db: &TestDb, h: &RuntimeHandle, st: &str, expected: &str) {
    let before: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {st}"))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let err = h.refresh(st).await.expect_err("a replaced source is drift");
    assert_eq!(err.sqlstate().as_deref(), Some("PGS01"), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(expected), "{msg}\nexpected: {expected}");
    let (status, reason) = db.status(st).await;
    assert_eq!(status, "ERROR", "{reason:?}");
    assert!(
        reason.as_deref().unwrap_or("").contains(expected),
        "{reason:?}"
    );
    let after: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {st}"))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(before, after, "nothing applied");
    // Resume refuses while the drift is there.
    let err = h.resume(st).await.expect_err("resume refuses");
    assert!(err.to_string().contains(expected), "{err}");
}

#[tokio::test]
async fn renamed_source_is_drift() {
    let db = test_db().await;
    let h = setup(&db).await;
    db.exec("ALTER TABLE src RENAME TO src_old; INSERT INTO src_old VALUES (100, 1, 1)")
        .await;
    let expected = "source table public.src was renamed to public.src_old";
    assert_drift(&db, &h, "per_g", expected).await;
    assert_drift(&db, &h, "all_rows", expected).await;
    // Renamed back: the stream table resumes and catches up.
    db.exec("ALTER TABLE src_old RENAME TO src").await;
    h.resume("per_g").await.unwrap();
    h.refresh("per_g").await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT sum(n)::int8 FROM per_g")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 21);
}

#[tokio::test]
async fn source_moved_to_another_schema_is_drift() {
    let db = test_db().await;
    let h = setup(&db).await;
    db.exec("CREATE SCHEMA other; ALTER TABLE src SET SCHEMA other")
        .await;
    assert_drift(
        &db,
        &h,
        "per_g",
        "source table public.src was renamed to other.src",
    )
    .await;
}

#[tokio::test]
async fn source_dropped_and_created_again_is_drift() {
    let db = test_db().await;
    let h = setup(&db).await;
    db.exec("DROP TABLE src").await;
    assert_drift(&db, &h, "all_rows", "source table public.src was dropped").await;
    // Another table of the same name and shape: the stream table does not silently
    // maintain it.
    db.exec(
        "CREATE TABLE src (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         INSERT INTO src VALUES (1, 1, 1000);",
    )
    .await;
    let expected = "source table public.src was dropped, and public.src now names another relation";
    assert_drift(&db, &h, "per_g", expected).await;
    // Start-up puts it in ERROR too.
    db.exec("UPDATE pgstream.pgs_stream_tables SET status = 'ACTIVE', status_reason = NULL")
        .await;
    Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap()
        .shutdown()
        .await;
    for st in ["per_g", "all_rows"] {
        let (status, reason) = db.status(st).await;
        assert_eq!(status, "ERROR");
        assert!(reason.unwrap().contains(expected));
    }
}

/// Without an attacker: a source renamed and a view of the old name created (a
/// migration that "wraps" a table) is drift, found by the DDL event trigger at once.
#[tokio::test]
async fn source_replaced_by_a_view_is_drift() {
    let db = test_db().await;
    let h = setup(&db).await;
    db.exec(
        "ALTER TABLE src RENAME TO src_v2;
         CREATE VIEW src AS SELECT id, g, v * 2 AS v FROM src_v2;",
    )
    .await;
    let expected =
        "source table public.src was renamed to public.src_v2, and public.src now names another relation";
    let (status, reason) = db.status("per_g").await;
    assert_eq!(status, "ERROR", "the event trigger found it: {reason:?}");
    db.exec("UPDATE pgstream.pgs_stream_tables SET status = 'ACTIVE', status_reason = NULL")
        .await;
    assert_drift(&db, &h, "per_g", expected).await;
    assert_drift(&db, &h, "all_rows", expected).await;
}

/// The attacker owns the source; a superuser created the stream tables over it;
/// then the attacker replaces the source by a view of its name.
async fn attack(db: &TestDb) -> RuntimeHandle {
    attacker_owned_source(db).await;
    let h = create_readers(db, "1s").await;
    replace_source_by_view(db).await;
    h
}

const EXPECTED: &str = REPLACED_SOURCE;

#[tokio::test]
async fn attacker_view_never_runs_in_a_runtime_refresh() {
    let db = test_db().await;
    let h = attack(&db).await;
    // The event trigger has put both in ERROR; whatever the state, a refresh checks.
    db.exec("UPDATE pgstream.pgs_stream_tables SET status = 'ACTIVE', status_reason = NULL")
        .await;
    for st in ["per_g", "all_rows"] {
        let err = h.refresh(st).await.expect_err("drift");
        assert_eq!(err.sqlstate().as_deref(), Some("PGS01"), "{err}");
        assert!(err.to_string().contains(EXPECTED), "{err}");
        assert!(matches!(err, Error::Database { .. }), "{err}");
    }
    assert_not_pwned(&db, "Runtime refresh").await;
}

#[tokio::test]
async fn attacker_view_never_runs_in_a_psql_refresh() {
    let db = test_db().await;
    attack(&db).await;
    db.exec("UPDATE pgstream.pgs_stream_tables SET status = 'ACTIVE', status_reason = NULL")
        .await;
    let mut psql = PgConnection::connect_with(&db.connect_options())
        .await
        .unwrap();
    for st in ["per_g", "all_rows"] {
        let err = sqlx::query("SELECT pgstream.refresh_stream_table($1)")
            .bind(st)
            .execute(&mut psql)
            .await
            .expect_err("drift");
        let db_err = err.as_database_error().unwrap();
        assert_eq!(db_err.code().as_deref(), Some("PGS01"), "{err}");
        assert!(db_err.message().contains(EXPECTED), "{err}");
    }
    assert_not_pwned(&db, "refresh from psql").await;
}

#[tokio::test]
async fn attacker_view_never_runs_in_the_scheduler() {
    let db = test_db().await;
    attack(&db).await;
    db.exec("UPDATE pgstream.pgs_stream_tables SET status = 'ACTIVE', status_reason = NULL")
        .await;
    let created: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM last_refresh_at)::float8 FROM pgstream.pgs_stream_tables
          WHERE table_name = 'per_g'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let runtime = Runtime::builder(db.pool.clone())
        .tick(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    // Polled until start-up's drift check or the scheduler has put it in ERROR, or the
    // scheduler has refreshed it (which must not happen).
    let (status, reason) = loop {
        let (status, reason, refreshed): (String, Option<String>, f64) = sqlx::query_as(
            "SELECT status, status_reason, extract(epoch FROM last_refresh_at)::float8
               FROM pgstream.pgs_stream_tables WHERE table_name = 'per_g'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if status == "ERROR" || refreshed > created {
            break (status, reason);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    runtime.shutdown().await;
    assert_not_pwned(&db, "scheduler").await;
    assert_eq!(status, "ERROR");
    assert!(reason.unwrap().contains(EXPECTED));
}

/// A refresh locks its sources by name before its drift check, so no source can be
/// renamed or replaced between the check and the statements that read it by name.
/// The refresh is held between the two: another session holds the storage table,
/// which the differential statement waits for (polled in `pg_locks`, no timing). A
/// rename of the source from a third session must then wait for the refresh.
#[tokio::test]
async fn refresh_locks_its_sources_by_name_before_the_drift_check() {
    let db = test_db().await;
    setup(&db).await;
    db.exec("INSERT INTO src VALUES (100, 1, 1)").await;
    let mut holder = db.connect().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE per_g IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let mut a = db.connect().await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut a)
        .await
        .unwrap();
    let refresh = tokio::spawn(async move {
        sqlx::query_scalar::<_, i64>("SELECT pgstream.refresh_stream_table('per_g')")
            .fetch_one(&mut a)
            .await
    });
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted
                               AND relation = 'per_g'::regclass)",
        )
        .bind(pid)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut b = db.connect().await;
    let err = sqlx::raw_sql(
        "SET lock_timeout = '200ms';
         ALTER TABLE src RENAME TO src_old; CREATE VIEW src AS SELECT * FROM src_old",
    )
    .execute(&mut b)
    .await
    .expect_err("the rename waits for the refresh, which checked the source");
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("55P03"),
        "{err}"
    );
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    assert_eq!(refresh.await.unwrap().unwrap(), 1);
}

/// A catalog of version 6 (frontiers without source names) upgraded to 7: the names
/// are filled from `pgs_sources`, and a rename is drift from then on.
#[tokio::test]
async fn upgraded_catalog_follows_sources_by_oid() {
    let db = test_db().await;
    let h = setup(&db).await;
    db.exec(
        "UPDATE pgstream.pgs_frontiers SET source_schema = NULL, source_name = NULL;
         UPDATE pgstream.pgs_meta SET schema_version = 6;",
    )
    .await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    let named: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pgstream.pgs_frontiers
          WHERE source_schema = 'public' AND source_name = 'src'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(named, 2);
    db.exec("ALTER TABLE src RENAME TO src_old").await;
    assert_drift(
        &db,
        &h,
        "per_g",
        "source table public.src was renamed to public.src_old",
    )
    .await;
}
