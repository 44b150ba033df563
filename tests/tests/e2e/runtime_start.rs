//! The runtime's start against a real PostgreSQL: it creates the registered stream
//! tables, keeps unchanged ones, refuses changed definitions and schema drift, and
//! checks every name before creating any.

use pgstream_runtime::{Error, Mode, Runtime};
use pgstream_tests::compare::{scalar_bool, scalar_i64};
use pgstream_tests::table_t::{setup_t, Q};
use pgstream_tests::test_db;

#[tokio::test]
async fn start_creates_keeps_and_refuses_changed_definitions() {
    let db = test_db().await;
    setup_t(&db).await;
    let spec = pgstream_runtime::spec("st", Q, "30s", Mode::Differential).unwrap();
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .register_spec(spec.clone())
        .start()
        .await
        .unwrap();
    rt.shutdown().await;
    assert_eq!(scalar_i64(&db.pool, "SELECT count(*) FROM st").await, 10);

    // Same definition (new schedule): kept, schedule updated.
    let spec2 = pgstream_runtime::spec("st", Q, "1m", Mode::Differential).unwrap();
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .register_spec(spec2)
        .start()
        .await
        .unwrap();
    assert_eq!(rt.status().await.unwrap()[0].schedule, "1m");
    drop(rt);

    // Another query under the same name: refused, data kept.
    let changed =
        pgstream_runtime::spec("st", "SELECT id, name FROM t", "30s", Mode::Differential).unwrap();
    let err = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .register_spec(changed)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DefinitionChanged { .. }), "{err}");
    assert!(err.to_string().contains("st"), "{err}");
    assert_eq!(scalar_i64(&db.pool, "SELECT count(*) FROM st").await, 10);
}

#[tokio::test]
async fn start_detects_schema_drift() {
    use pgstream_runtime::StreamTableDef;
    const GOOD: StreamTableDef = StreamTableDef {
        schema: "public",
        name: "st",
        query: Q,
        schedule: "30s",
        mode: Mode::Differential,
        columns: &["id", "name"],
    };
    let db = test_db().await;
    setup_t(&db).await;
    Runtime::builder(db.pool.clone())
        .scheduler(false)
        .register_def(GOOD)
        .start()
        .await
        .unwrap();
    // Restart with the same definition: kept.
    Runtime::builder(db.pool.clone())
        .scheduler(false)
        .register_def(GOOD)
        .start()
        .await
        .unwrap();

    // The program was compiled against another schema.
    let stale = StreamTableDef {
        columns: &["id", "label"],
        ..GOOD
    };
    let err = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .register_def(stale)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SchemaDrift { .. }), "{err}");
    assert!(err.to_string().contains("label"), "{err}");

    // A new one with drifted columns is refused before anything is installed.
    let new = StreamTableDef {
        name: "st2",
        columns: &["id"],
        ..GOOD
    };
    let err = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .register_def(new)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SchemaDrift { .. }), "{err}");
    assert!(!scalar_bool(&db.pool, "SELECT to_regclass('public.st2') IS NOT NULL").await);
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_stream_tables").await,
        1
    );
}

/// Every registered name is checked before any stream table is created: a clash of
/// the second registration leaves the first uncreated.
#[tokio::test]
async fn start_checks_every_name_before_creating_any() {
    let db = test_db().await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL); CREATE TABLE taken (a int);")
        .await;
    let first =
        pgstream_runtime::spec("first", "SELECT id, x FROM t", "1m", Mode::Differential).unwrap();
    let second =
        pgstream_runtime::spec("taken", "SELECT id FROM t", "1m", Mode::Differential).unwrap();
    let err = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .register_spec(first)
        .register_spec(second)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NameTaken(ref n) if n == "taken"),
        "{err}"
    );
    let first_exists: bool = sqlx::query_scalar("SELECT to_regclass('first') IS NOT NULL")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(!first_exists);
}
