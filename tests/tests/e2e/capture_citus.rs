//! Citus tables as sources (docs/SCALING.md, step 0). A Citus table's rows live in its
//! shards, and writes fire the shards' triggers, not the table's: on a single-node
//! Citus, a source distributed after its stream table exists was silently no longer
//! captured (the stream table drifted while its status stayed ACTIVE). pgstream now
//! refuses a Citus table at creation, puts the readers of a source in the ERROR state
//! when a capture trigger fires on one of its shards (the write itself succeeds), and
//! reports the source as drift at every refresh.
//!
//! Citus is not installed where CI runs, so these tests give the database the one
//! piece of Citus's catalog pgstream reads (`pg_catalog.pg_dist_partition`, with
//! Citus's column names and codes) and a shard the way Citus makes one (a table with
//! copies of the source's triggers). `citus_single_node` runs the same steps against
//! a real single-node Citus when `PGS_CITUS_URL` names a database where the `citus`
//! extension is created (it is skipped, saying so, otherwise).

use pgstream_runtime::{Mode, RuntimeHandle};
use pgstream_tests::compare::difference;
use pgstream_tests::{test_db, TestDb};
use sqlx::PgPool;

const ORDERS: &str =
    "CREATE TABLE orders (tenant_id int NOT NULL, id int NOT NULL, amount int NOT NULL,
                                           PRIMARY KEY (tenant_id, id));
     INSERT INTO orders SELECT i % 4, i, i * 10 FROM generate_series(1, 20) i;";

const QUERY: &str =
    "SELECT tenant_id, count(*) AS n, sum(amount) AS total FROM orders GROUP BY tenant_id";

/// The part of Citus's catalog that pgstream reads (Citus 13 has more columns).
async fn fake_citus_catalog(db: &TestDb) {
    db.exec(
        "SET allow_system_table_mods = on;
         CREATE TABLE pg_catalog.pg_dist_partition (
             logicalrelid regclass NOT NULL, partmethod \"char\" NOT NULL, partkey text,
             colocationid integer NOT NULL DEFAULT 0, repmodel \"char\" NOT NULL DEFAULT 's',
             autoconverted boolean NOT NULL DEFAULT false);
         RESET allow_system_table_mods;",
    )
    .await;
}

async fn distribute(db: &TestDb, table: &str, partmethod: &str, colocation: i32, repmodel: &str) {
    db.exec(&format!(
        "INSERT INTO pg_catalog.pg_dist_partition (logicalrelid, partmethod, colocationid, repmodel)
         VALUES ('{table}'::regclass, '{partmethod}', {colocation}, '{repmodel}')"
    ))
    .await;
}

async fn status(pool: &PgPool, name: &str) -> (String, Option<String>) {
    sqlx::query_as(
        "SELECT status, status_reason FROM pgstream.pgs_stream_tables WHERE table_name = $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn pgstream_objects(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM pgstream.pgs_stream_tables),
                (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal),
                (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'pgstream_changes' AND c.relkind = 'r')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn citus_tables_are_refused_at_creation() {
    let db = test_db().await;
    db.exec(ORDERS).await;
    db.exec("CREATE TABLE plans (id int PRIMARY KEY, name text); CREATE TABLE notes (id int PRIMARY KEY);")
        .await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    fake_citus_catalog(&db).await;
    distribute(&db, "orders", "h", 1, "s").await;
    distribute(&db, "plans", "n", 2, "t").await;
    distribute(&db, "notes", "n", 0, "s").await;
    let h = RuntimeHandle::new(db.pool.clone());

    for (name, query, kind) in [
        ("per_tenant", QUERY, "Citus distributed table"),
        (
            "plan_names",
            "SELECT id, name FROM plans",
            "Citus reference table",
        ),
        ("note_ids", "SELECT id FROM notes", "Citus local table"),
    ] {
        for mode in [Mode::Differential, Mode::Full] {
            let err = h
                .create_stream_table(name, query, "1h", mode)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("stream table {name}")) && err.contains(kind),
                "{mode:?}: {err}"
            );
        }
    }
    // Nothing half-installed: no catalog row, no trigger, no buffer.
    assert_eq!(pgstream_objects(&db.pool).await, (0, 0, 0));

    // A single-shard distributed table (Citus 12+: 'n' with a co-location group).
    db.exec("DELETE FROM pg_catalog.pg_dist_partition WHERE logicalrelid = 'notes'::regclass")
        .await;
    distribute(&db, "notes", "n", 7, "s").await;
    let err = h
        .create_stream_table("note_ids", "SELECT id FROM notes", "1h", Mode::Differential)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("single-shard distributed"), "{err}");

    // Not a Citus table: accepted, with that catalog present.
    db.exec("DELETE FROM pg_catalog.pg_dist_partition").await;
    h.create_stream_table("per_tenant", QUERY, "1h", Mode::Differential)
        .await
        .unwrap();
    assert_eq!(
        difference(&db.pool, QUERY, "per_tenant", "tenant_id, n, total").await,
        0
    );
}

/// What `create_distributed_table` does to a table with triggers on a single node
/// (with `citus.enable_unsafe_triggers`): the table becomes a shell listed in
/// `pg_dist_partition`, its rows move to a shard, and its triggers are copied to
/// the shard, where the writes now fire them.
async fn distribute_into_a_shard(db: &TestDb) {
    distribute(db, "orders", "h", 1, "s").await;
    db.exec(
        "CREATE TABLE orders_102008 (LIKE orders INCLUDING ALL);
         DO $$
         DECLARE t record;
         BEGIN
             FOR t IN SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger
                       WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal LOOP
                 EXECUTE replace(t.def, ' ON public.orders ', ' ON public.orders_102008 ');
             END LOOP;
         END $$;",
    )
    .await;
}

/// `orders`, pgstream and the stand-in Citus catalog, and the stream table
/// `per_tenant` over `orders`.
async fn with_per_tenant() -> (TestDb, RuntimeHandle) {
    let db = test_db().await;
    db.exec(ORDERS).await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    fake_citus_catalog(&db).await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("per_tenant", QUERY, "1h", Mode::Differential)
        .await
        .unwrap();
    (db, h)
}

#[tokio::test]
async fn a_source_distributed_later_puts_its_readers_in_error() {
    let (db, h) = with_per_tenant().await;
    h.create_stream_table(
        "all_orders",
        "SELECT id, amount FROM orders",
        "1h",
        Mode::Full,
    )
    .await
    .unwrap();
    distribute_into_a_shard(&db).await;

    // A write to the shard (where Citus routes it) succeeds, and the readers of the
    // source go to the ERROR state in its transaction, with the reason.
    db.exec("INSERT INTO orders_102008 VALUES (1, 100, 5)")
        .await;
    for name in ["per_tenant", "all_orders"] {
        let (st, reason) = status(&db.pool, name).await;
        assert_eq!(st, "ERROR", "{name}");
        let reason = reason.unwrap();
        assert!(
            reason.contains("orders is a Citus distributed table"),
            "{name}: {reason}"
        );
    }

    // A refresh applies nothing and says why, with the way out.
    let err = sqlx::query("SELECT pgstream.refresh_stream_table('per_tenant')")
        .execute(&db.pool)
        .await
        .unwrap_err();
    let db_err = err.as_database_error().unwrap();
    assert_eq!(db_err.code().as_deref(), Some("PGS01"));
    assert!(
        db_err.message().contains("Citus distributed table"),
        "{db_err}"
    );
    let hint: String = sqlx::query_scalar(
        "SELECT pgstream._drift_hint(status_reason) FROM pgstream.pgs_stream_tables WHERE table_name = 'per_tenant'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(hint.contains("undistribute_table"), "{hint}");

    // The table made local again (its rows back in it): the next refresh after resume is a
    // full one, and the stream table is exact again.
    db.exec(
        "INSERT INTO orders SELECT * FROM orders_102008;
         DROP TABLE orders_102008;
         DELETE FROM pg_catalog.pg_dist_partition;",
    )
    .await;
    for name in ["per_tenant", "all_orders"] {
        sqlx::query("SELECT pgstream.resume_stream_table($1)")
            .bind(name)
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(status(&db.pool, name).await.0, "ACTIVE");
        h.refresh(name).await.unwrap();
    }
    assert_eq!(
        difference(&db.pool, QUERY, "per_tenant", "tenant_id, n, total").await,
        0
    );
    assert_eq!(
        difference(
            &db.pool,
            "SELECT id, amount FROM orders",
            "all_orders",
            "id, amount"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_source_distributed_without_writes_is_drift_at_the_next_refresh() {
    let (db, h) = with_per_tenant().await;
    distribute(&db, "orders", "n", 3, "t").await;
    let err = h.refresh("per_tenant").await.unwrap_err().to_string();
    assert!(err.contains("orders is a Citus reference table"), "{err}");
    assert_eq!(status(&db.pool, "per_tenant").await.0, "ERROR");
}

/// Against a real single-node Citus (`PGS_CITUS_URL`, a database with `CREATE
/// EXTENSION citus` done and the coordinator holding shards): creation over a
/// distributed table is refused, and a source distributed afterwards puts its reader
/// in the ERROR state at the first write.
#[tokio::test]
async fn citus_single_node() {
    let Ok(url) = std::env::var("PGS_CITUS_URL") else {
        eprintln!("skipped: PGS_CITUS_URL is not set (a database with the citus extension)");
        return;
    };
    let pool = PgPool::connect(&url).await.unwrap();
    let exec = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::raw_sql(sql).execute(&pool).await.unwrap() }
    };
    exec(
        "DROP SCHEMA IF EXISTS pgstream CASCADE; DROP SCHEMA IF EXISTS pgstream_changes CASCADE;
          DROP TABLE IF EXISTS orders, dist_orders CASCADE;",
    )
    .await;
    exec(ORDERS).await;
    exec(
        "CREATE TABLE dist_orders (LIKE orders INCLUDING ALL);
          SELECT create_distributed_table('dist_orders', 'tenant_id');",
    )
    .await;
    pgstream_runtime::install(&pool).await.unwrap();
    let h = RuntimeHandle::new(pool.clone());
    let err = h
        .create_stream_table(
            "dist_st",
            "SELECT id FROM dist_orders",
            "1h",
            Mode::Differential,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Citus distributed table"), "{err}");

    h.create_stream_table("per_tenant", QUERY, "1h", Mode::Differential)
        .await
        .unwrap();
    exec(
        "SET citus.enable_unsafe_triggers = on;
          SELECT create_distributed_table('orders', 'tenant_id');",
    )
    .await;
    exec("SET citus.enable_unsafe_triggers = on; INSERT INTO orders VALUES (1, 100, 5);").await;
    let (st, reason): (String, Option<String>) = sqlx::query_as(
        "SELECT status, status_reason FROM pgstream.pgs_stream_tables WHERE table_name = 'per_tenant'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(st, "ERROR", "{reason:?}");
    let err = h.refresh("per_tenant").await.unwrap_err().to_string();
    assert!(err.contains("Citus distributed table"), "{err}");
}
