//! Stream tables over stream tables: refresh in topological order, drop with and
//! without cascade (Rust and SQL). Cycles cannot be built through the API (a stream
//! table reads only tables that exist before it, by oid); the creation check is
//! unit-tested in `pgstream-runtime` (`create::tests`).

use std::time::{Duration, Instant};

use pgstream_runtime::{Error, Mode, Runtime, RuntimeHandle};
use pgstream_tests::compare::{difference, scalar_i64};
use pgstream_tests::test_db;
use sqlx::PgPool;

const UP: &str = "SELECT g, count(*) AS n, sum(x) AS s FROM t GROUP BY g";
const MID: &str = "SELECT count(*) AS groups, sum(n) AS total FROM up";
const DOWN: &str = "SELECT groups, total FROM mid WHERE total > 0";

async fn chain(pool: &PgPool) -> RuntimeHandle {
    sqlx::raw_sql(
        "CREATE TABLE t (id int PRIMARY KEY, g int NOT NULL, x int NOT NULL);
         INSERT INTO t SELECT i, i % 5, i FROM generate_series(1, 50) i;",
    )
    .execute(pool)
    .await
    .unwrap();
    let h = RuntimeHandle::new(pool.clone());
    h.create_stream_table("up", UP, "1s", Mode::Differential)
        .await
        .unwrap();
    h.create_stream_table("mid", MID, "1s", Mode::Full)
        .await
        .unwrap();
    h.create_stream_table("down", DOWN, "1s", Mode::Full)
        .await
        .unwrap();
    h
}

/// One scheduler pass refreshes `up`, then `mid` (reading the new `up`), then `down`:
/// after a single pass the whole chain is consistent with the base table.
#[tokio::test]
async fn scheduler_refreshes_in_topological_order() {
    let db = test_db().await;
    let _h = chain(&db.pool).await;
    db.exec("INSERT INTO t SELECT i, i % 7, i * 2 FROM generate_series(51, 80) i; UPDATE t SET x = x + 1 WHERE id % 3 = 0;")
        .await;
    // Every stream table is due (schedule 1s) once a second has passed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let counts = |pool: PgPool| async move {
        scalar_i64(
            &pool,
            "SELECT coalesce(sum(refresh_count), 0)::int8 FROM pgstream.pg_stat_stream_tables",
        )
        .await
    };
    let before = counts(db.pool.clone()).await;
    // A tick of an hour: the first tick fires at once, so exactly one pass runs.
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while counts(db.pool.clone()).await < before + 3 {
        assert!(
            Instant::now() < deadline,
            "the scheduler pass did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rt.shutdown().await;
    assert_eq!(difference(&db.pool, UP, "up", "g, n, s").await, 0);
    assert_eq!(
        difference(&db.pool, MID, "mid", "groups, total").await,
        0,
        "mid was refreshed before up"
    );
    assert_eq!(
        difference(&db.pool, DOWN, "down", "groups, total").await,
        0,
        "down was refreshed before mid"
    );
    assert_eq!(
        scalar_i64(&db.pool, "SELECT total::int8 FROM down").await,
        80
    );
}

#[tokio::test]
async fn drop_with_dependants_names_them_unless_cascade() {
    let db = test_db().await;
    let h = chain(&db.pool).await;

    // Without cascade: refused, naming the reader; nothing dropped.
    let err = h.drop_stream_table("up").await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("stream table(s) mid read it"), "{msg}");
    assert!(msg.contains("cascade"), "the hint mentions cascade: {msg}");
    let err = sqlx::query("SELECT pgstream.drop_stream_table('mid')")
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("down read it"), "{err}");
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_stream_tables").await,
        3
    );

    // SQL with cascade from the middle: mid and down go, up stays and still refreshes.
    sqlx::query("SELECT pgstream.drop_stream_table('mid', cascade => true)")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pgstream.pgs_stream_tables WHERE table_name IN ('mid', 'down')"
        )
        .await,
        0
    );
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pg_class WHERE relname IN ('mid', 'down')"
        )
        .await,
        0
    );
    // up's storage table lost its capture (nobody reads it any more).
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'up'::regclass AND tgname LIKE '\\_\\_pgs\\_capture%'"
        )
        .await,
        0
    );
    db.exec("INSERT INTO t VALUES (1000, 1, 1)").await;
    h.refresh("up").await.unwrap();
    assert_eq!(difference(&db.pool, UP, "up", "g, n, s").await, 0);

    // Rust with cascade from the top of a rebuilt chain: everything goes, capture too.
    h.create_stream_table("mid", MID, "1s", Mode::Full)
        .await
        .unwrap();
    h.create_stream_table("down", DOWN, "1s", Mode::Full)
        .await
        .unwrap();
    h.drop_stream_table_cascade("up").await.unwrap();
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_stream_tables").await,
        0
    );
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_sources").await,
        0
    );
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'pgstream_changes' AND c.relkind = 'r'"
        )
        .await,
        0
    );
    match h.drop_stream_table_cascade("up").await {
        Err(Error::NotFound(n)) => assert_eq!(n, "up"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// The order follows the dependency graph, not creation order: with a dependency edge
/// from the older `a` to the newer `b` (added to the catalog by hand, since the API
/// cannot create one), one pass refreshes `b` before `a`. Statement triggers on the
/// storage tables record when each refresh wrote.
#[tokio::test]
async fn order_follows_dependencies_not_ids() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL);
         INSERT INTO t SELECT i, i FROM generate_series(1, 10) i;
         CREATE TABLE probe (st text PRIMARY KEY, at timestamptz);
         CREATE FUNCTION public.probe() RETURNS trigger LANGUAGE plpgsql
         SET search_path = public, pg_catalog AS $$
         BEGIN
             INSERT INTO probe VALUES (TG_TABLE_NAME, clock_timestamp()) ON CONFLICT DO NOTHING;
             RETURN NULL;
         END $$;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("a", "SELECT id, x FROM t", "1s", Mode::Differential)
        .await
        .unwrap();
    h.create_stream_table(
        "b",
        "SELECT id, x FROM t WHERE x > 5",
        "1s",
        Mode::Differential,
    )
    .await
    .unwrap();
    db.exec(
        "CREATE TRIGGER probe BEFORE INSERT OR UPDATE OR DELETE ON a FOR EACH STATEMENT EXECUTE FUNCTION public.probe();
         CREATE TRIGGER probe BEFORE INSERT OR UPDATE OR DELETE ON b FOR EACH STATEMENT EXECUTE FUNCTION public.probe();
         INSERT INTO pgstream.pgs_sources (source_oid, schema_name, table_name) VALUES ('b'::regclass, 'public', 'b');
         INSERT INTO pgstream.pgs_frontiers (st_id, source_oid)
              SELECT id, 'b'::regclass FROM pgstream.pgs_stream_tables WHERE table_name = 'a';
         INSERT INTO t VALUES (11, 11);",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while scalar_i64(&db.pool, "SELECT count(*) FROM probe").await < 2 {
        assert!(
            Instant::now() < deadline,
            "the scheduler pass did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rt.shutdown().await;
    let order: Vec<String> = sqlx::query_scalar("SELECT st FROM probe ORDER BY at")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(order, ["b", "a"]);
}
