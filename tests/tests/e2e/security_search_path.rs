//! search_path escalation (issue 11, item 8; the CVE-2018-1058 pattern). An
//! unprivileged role that may create objects in `public` plants functions, aggregates
//! and operators that are better matches than the built-ins for calls pgstream makes
//! unqualified (`array_agg(text)`, `to_jsonb(record)`, `text[] @> text[]`, ...).
//! Each planted object records that it ran (a sequence: not undone by a rollback) and
//! makes its caller's role grant the attacker SUPERUSER when the caller is one. A
//! superuser then runs every path of pgstream: runtime start (with the start-up
//! backfill), install and upgrade, create, refresh (Rust, SQL from a session with the
//! default search_path, the scheduler), status, resume, drop. Every path must work,
//! no planted object may run, and the attacker stays unprivileged.

use pgstream_runtime::{Mode, Runtime, RuntimeHandle};
use pgstream_tests::attack::{assert_not_pwned, plant_search_path_objects as plant};
use pgstream_tests::{test_db, TestDb};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

/// A superuser session with the default search_path (`"$user", public`), as psql
/// opens one.
async fn psql_session(db: &TestDb) -> PgConnection {
    let mut conn = PgConnection::connect_with(&db.connect_options())
        .await
        .unwrap();
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(path.contains("public"), "{path}");
    conn
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const SOURCES: &str = "
    CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL,
                         tags text[] NOT NULL DEFAULT '{}', paid boolean NOT NULL DEFAULT false);
    INSERT INTO orders (id, customer, amount) SELECT i, 'c' || (i % 3), i FROM generate_series(1, 30) i;
    CREATE VIEW big_orders AS SELECT id, customer, amount FROM orders WHERE amount > 10;";

/// The stream tables of the tests: an aggregate that reads no column (its source
/// columns are empty: the start-up backfill compiles it at every start), one over a
/// view, a join-free projection with an array column.
async fn create_stream_tables(h: &RuntimeHandle) {
    h.create_stream_table(
        "n_orders",
        "SELECT count(*) AS n FROM orders",
        "1h",
        Mode::Differential,
    )
    .await
    .unwrap();
    h.create_stream_table(
        "per_customer",
        "SELECT customer, count(*) AS n, sum(amount) AS total FROM big_orders GROUP BY customer",
        "1h",
        Mode::Differential,
    )
    .await
    .unwrap();
    h.create_stream_table(
        "tagged",
        "SELECT id, tags, paid FROM orders WHERE amount % 2 = 0",
        "1h",
        Mode::Full,
    )
    .await
    .unwrap();
}

async fn check_contents(db: &TestDb) {
    assert_eq!(
        count(db, "SELECT n FROM n_orders").await,
        count(db, "SELECT count(*) FROM orders").await
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM ((SELECT customer, count(*) AS n, sum(amount) AS total FROM big_orders GROUP BY customer)
                                   EXCEPT (SELECT customer, n, total FROM per_customer)) d"
        )
        .await,
        0
    );
}

/// Runtime start after the attack, with the start-up backfill that loads the catalog
/// (`array_agg(text)` in `load_catalog`), then refresh, status, resume and drop through
/// the runtime.
#[tokio::test]
async fn runtime_paths_resolve_only_pg_catalog() {
    let db = test_db().await;
    db.exec(SOURCES).await;
    create_stream_tables(&RuntimeHandle::new(db.pool.clone())).await;
    plant(&db).await;

    let runtime = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .expect("start after the attack");
    assert_not_pwned(&db, "Runtime::start (install, backfill, drift check)").await;

    db.exec("INSERT INTO orders (id, customer, amount) VALUES (100, 'c9', 500); DELETE FROM orders WHERE id = 1")
        .await;
    for st in ["n_orders", "per_customer", "tagged"] {
        runtime.refresh(st).await.unwrap();
    }
    check_contents(&db).await;
    assert_not_pwned(&db, "Runtime::refresh").await;

    let status = runtime.status().await.expect("status after the attack");
    assert_eq!(status.len(), 3);
    assert_not_pwned(&db, "Runtime::status").await;

    // A stream table put in the ERROR state, then resumed.
    db.exec(
        "UPDATE pgstream.pgs_stream_tables SET status = 'SUSPENDED' WHERE table_name = 'tagged'",
    )
    .await;
    runtime.resume("tagged").await.unwrap();
    assert_not_pwned(&db, "Runtime::resume").await;

    runtime.drop_stream_table("tagged").await.unwrap();
    assert_not_pwned(&db, "Runtime::drop_stream_table").await;

    // Creation with the attack in place, with and without a registered struct's check.
    runtime
        .create_stream_table(
            "by_paid",
            "SELECT paid, count(*) AS n, string_agg(customer, ',' ORDER BY id) AS who FROM orders GROUP BY paid",
            "1h",
            Mode::Full,
        )
        .await
        .unwrap();
    runtime.refresh("by_paid").await.unwrap();
    assert_not_pwned(&db, "Runtime::create_stream_table").await;
    runtime.shutdown().await;

    // A second start: everything exists, the backfill and drift check run again.
    let runtime = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    runtime.shutdown().await;
    assert_not_pwned(&db, "second Runtime::start").await;
}

/// Install into a database where the attacker planted first, then an upgrade of the
/// SQL functions (install's final DO block compares event trigger tags with `@>`).
#[tokio::test]
async fn install_and_upgrade_resolve_only_pg_catalog() {
    let db = test_db().await;
    db.exec(SOURCES).await;
    plant(&db).await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    assert_not_pwned(&db, "install").await;
    let h = RuntimeHandle::new(db.pool.clone());
    create_stream_tables(&h).await;
    assert_not_pwned(&db, "create").await;

    // This release's functions look outdated: install recreates them (and the event
    // trigger's DO block runs with the trigger in place).
    db.exec(
        "CREATE OR REPLACE FUNCTION pgstream._functions_hash() RETURNS text LANGUAGE sql IMMUTABLE
         AS $h$SELECT 'outdated'::text$h$",
    )
    .await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    assert_not_pwned(&db, "install of newer functions").await;
    // And a catalog upgrade from version 5 (the migrations after it run again).
    db.exec("UPDATE pgstream.pgs_meta SET schema_version = 5")
        .await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    assert_not_pwned(&db, "catalog upgrade").await;
    // The status view was created under the pinned search_path too.
    let st = h.status().await.unwrap();
    assert_eq!(st.len(), 3);
    assert_not_pwned(&db, "status after the upgrade").await;
}

/// Every function in the schema `pgstream` (the installed scripts' and the generated
/// refresh functions) and in `pgstream_changes` (the capture functions) runs with
/// `search_path = pg_catalog, pg_temp`: the scripts' headers leave it to the
/// installer, which sets it on all of theirs.
#[tokio::test]
async fn every_function_pins_search_path() {
    let db = test_db().await;
    db.exec(SOURCES).await;
    create_stream_tables(&RuntimeHandle::new(db.pool.clone())).await;
    let unpinned: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_proc p
          WHERE p.pronamespace IN ('pgstream'::regnamespace, 'pgstream_changes'::regnamespace)
            AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp']",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(unpinned.is_empty(), "{unpinned:?}");
    let pinned = count(
        &db,
        "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'pgstream'::regnamespace",
    )
    .await;
    assert!(pinned > 60, "{pinned}");
}

/// The SQL functions called from a superuser's session with the default search_path
/// (as from psql or pg_cron): refresh, status, the statistics view, resume, drop.
#[tokio::test]
async fn sql_functions_resolve_only_pg_catalog() {
    let db = test_db().await;
    db.exec(SOURCES).await;
    create_stream_tables(&RuntimeHandle::new(db.pool.clone())).await;
    plant(&db).await;
    let mut psql = psql_session(&db).await;
    sqlx::raw_sql(
        "INSERT INTO orders (id, customer, amount) VALUES (100, 'c9', 500);
         UPDATE orders SET amount = amount + 1 WHERE id < 5;
         SELECT pgstream.refresh_stream_table('n_orders');
         SELECT pgstream.refresh_stream_table('per_customer');
         SELECT pgstream.refresh_stream_table('tagged');
         TRUNCATE orders;
         INSERT INTO orders (id, customer, amount) VALUES (1, 'a', 20), (2, 'b', 30);
         SELECT pgstream.refresh_stream_table('n_orders');
         SELECT pgstream.refresh_stream_table('per_customer');
         SELECT * FROM pgstream.pgs_status();
         SELECT * FROM pgstream.pg_stat_stream_tables;
         SELECT pgstream.set_full_refresh_ratio('per_customer', 0.5);
         SELECT pgstream.resume_stream_table('tagged');
         SELECT pgstream.drop_stream_table('tagged');",
    )
    .execute(&mut psql)
    .await
    .expect("the SQL functions work after the attack");
    check_contents(&db).await;
    assert_not_pwned(&db, "SQL functions from a psql session").await;
}

/// The scheduler's catalog query and refreshes.
#[tokio::test]
async fn scheduler_resolves_only_pg_catalog() {
    let db = test_db().await;
    db.exec(SOURCES).await;
    create_stream_tables(&RuntimeHandle::new(db.pool.clone())).await;
    plant(&db).await;
    db.exec(
        "UPDATE pgstream.pgs_stream_tables SET schedule = '1s', schedule_interval = interval '1 second',
                schedule_kind = 'duration'
          WHERE table_name = 'n_orders';
         INSERT INTO orders (id, customer, amount) VALUES (100, 'c9', 500);",
    )
    .await;
    let runtime = Runtime::builder(db.pool.clone())
        .tick(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    // Wait for the scheduler's refresh (no time bound asserted: it is polled).
    loop {
        if count(&db, "SELECT n FROM n_orders").await == 31 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runtime.shutdown().await;
    assert_not_pwned(&db, "scheduler").await;
}

/// `load_catalog` is public: called on an application connection with the default
/// search_path, it resolves only pg_catalog, and leaves the caller's setting as it was.
#[tokio::test]
async fn load_catalog_pins_and_restores_search_path() {
    let db = test_db().await;
    db.exec(SOURCES).await;
    plant(&db).await;
    let mut conn = psql_session(&db).await;
    sqlx::raw_sql("SET search_path = public, pg_catalog")
        .execute(&mut conn)
        .await
        .unwrap();
    let catalog = pgstream_runtime::load_catalog(&mut conn).await.unwrap();
    assert!(catalog.lookup(Some("public"), "orders").is_some());
    assert!(catalog.lookup_view(Some("public"), "big_orders").is_some());
    assert_not_pwned(&db, "load_catalog").await;
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(path, "public, pg_catalog");
}

/// `status` alone (through a handle, without a runtime start): `to_jsonb(record)`.
#[tokio::test]
async fn status_resolves_only_pg_catalog() {
    let db = test_db().await;
    db.exec(SOURCES).await;
    let h = RuntimeHandle::new(db.pool.clone());
    create_stream_tables(&h).await;
    plant(&db).await;
    let status = h.status().await.expect("status after the attack");
    assert_eq!(status.len(), 3);
    assert!(status.iter().all(|s| s.status == "ACTIVE"), "{status:?}");
    assert_not_pwned(&db, "status").await;
    h.refresh("per_customer").await.unwrap();
    h.drop_stream_table("tagged").await.unwrap();
    assert_not_pwned(&db, "refresh and drop through a handle").await;
}
