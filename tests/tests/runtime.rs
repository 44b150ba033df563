//! The runtime against a real PostgreSQL: installation, creation (atomic), capture,
//! refresh, drop, isolation checks, the scheduler and shutdown.

use std::time::{Duration, Instant};

use pgstream_runtime::{Error, Mode, Runtime, RuntimeHandle};
use pgstream_tests::compare::{self, scalar_bool, scalar_i64};
use pgstream_tests::{test_db, TestDb};
use sqlx::PgPool;

/// Rows of `(query) EXCEPT ALL (table)` plus the reverse: 0 when they are equal.
async fn difference(pool: &PgPool, query: &str, table: &str) -> i64 {
    compare::difference(pool, query, table, "id, name").await
}

async fn capture_triggers(pool: &PgPool, table: &str) -> i64 {
    scalar_i64(
        pool,
        &format!("SELECT count(*) FROM pg_trigger WHERE tgrelid = '{table}'::regclass AND tgname LIKE '\\_\\_pgs\\_capture%'"),
    )
    .await
}

async fn buffers(pool: &PgPool) -> i64 {
    scalar_i64(pool, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgstream_changes' AND c.relkind = 'r'").await
}

async fn setup_t(db: &TestDb) {
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, x int NOT NULL);
         INSERT INTO t SELECT g, 'n' || g, g % 4 FROM generate_series(1, 20) g;",
    )
    .await;
}

const Q: &str = "SELECT id, name FROM t WHERE x > 1";

#[tokio::test]
async fn install_is_idempotent_and_concurrent_safe() {
    let db = test_db().await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    pgstream_runtime::install(&db.pool).await.unwrap();
    let (a, b, c) = tokio::join!(
        pgstream_runtime::install(&db.pool),
        pgstream_runtime::install(&db.pool),
        pgstream_runtime::install(&db.pool)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_meta").await,
        1
    );
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT max(schema_version)::int8 FROM pgstream.pgs_meta"
        )
        .await,
        i64::from(pgstream_runtime::SCHEMA_VERSION)
    );
    // The SQL surface exists and works on an empty catalog.
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_status()").await,
        0
    );
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pgstream.pg_stat_stream_tables"
        )
        .await,
        0
    );
    let err = sqlx::query("SELECT pgstream.refresh_stream_table('nope')")
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("stream table nope does not exist"),
        "{err}"
    );
    match pgstream_runtime::refresh(&db.pool, "nope").await {
        Err(Error::NotFound(n)) => assert_eq!(n, "nope"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn create_capture_refresh_status_drop() {
    let db = test_db().await;
    setup_t(&db).await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", Q, "30s", Mode::Differential)
        .await
        .unwrap();

    // Populated at creation.
    assert_eq!(difference(&db.pool, Q, "st").await, 0);
    assert_eq!(scalar_i64(&db.pool, "SELECT count(*) FROM st").await, 10);
    assert_eq!(capture_triggers(&db.pool, "t").await, 4);
    assert_eq!(buffers(&db.pool).await, 1);
    assert!(
        scalar_bool(
            &db.pool,
            "SELECT bool_and(frontier IS NOT NULL) FROM pgstream.pgs_frontiers"
        )
        .await
    );

    // Writes are captured: an UPDATE writes the old and the new image.
    db.exec(
        "INSERT INTO t VALUES (100, 'new', 3);
         UPDATE t SET name = 'upd' WHERE id = 2;
         DELETE FROM t WHERE id = 3;",
    )
    .await;
    let buffer = format!(
        "pgstream_changes.changes_{}",
        scalar_i64(&db.pool, "SELECT 't'::regclass::oid::int8").await
    );
    assert_eq!(
        scalar_i64(&db.pool, &format!("SELECT count(*) FROM {buffer}")).await,
        4
    );
    assert_eq!(
        scalar_i64(
            &db.pool,
            &format!("SELECT coalesce(sum(__pgs_w), 0)::int8 FROM {buffer}")
        )
        .await,
        0
    );
    let status = h.status().await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].name, "st");
    assert_eq!(status[0].pending_changes, 4);
    assert_eq!(status[0].refresh_mode, "DIFFERENTIAL");
    assert!(
        !status[0].stale,
        "refreshed just now, within its 30s schedule"
    );

    let outcome = h.refresh("st").await.unwrap();
    assert!(outcome.rows_changed >= 3, "{outcome:?}");
    assert_eq!(difference(&db.pool, Q, "st").await, 0);
    // The only consumer is past every buffered change: the buffer is trimmed.
    assert_eq!(
        scalar_i64(&db.pool, &format!("SELECT count(*) FROM {buffer}")).await,
        0
    );

    // From SQL, too (the psql path), with a schema-qualified name.
    db.exec("UPDATE t SET x = 0 WHERE id = 6").await;
    let n = scalar_i64(
        &db.pool,
        "SELECT pgstream.refresh_stream_table('public.st')",
    )
    .await;
    assert_eq!(n, 1);
    assert_eq!(difference(&db.pool, Q, "st").await, 0);

    let status = h.status().await.unwrap();
    assert_eq!(status[0].refresh_count, 2);
    assert_eq!(status[0].pending_changes, 0);
    assert!(status[0].last_refresh_at.is_some());
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT refresh_count FROM pgstream.pg_stat_stream_tables WHERE name = 'st'"
        )
        .await,
        2
    );

    // Direct writes to the storage table are refused.
    for sql in [
        "INSERT INTO st VALUES (999, 'x')",
        "DELETE FROM st",
        "TRUNCATE st",
    ] {
        let err = sqlx::raw_sql(sql).execute(&db.pool).await.unwrap_err();
        assert!(
            err.to_string().contains("maintained by pgstream"),
            "{sql}: {err}"
        );
    }

    // Creating it again is refused.
    match h
        .create_stream_table("st", Q, "30s", Mode::Differential)
        .await
    {
        Err(Error::AlreadyExists(n)) => assert_eq!(n, "st"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }

    h.drop_stream_table("st").await.unwrap();
    assert!(!scalar_bool(&db.pool, "SELECT to_regclass('public.st') IS NOT NULL").await);
    assert_eq!(capture_triggers(&db.pool, "t").await, 0);
    assert_eq!(buffers(&db.pool).await, 0);
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_stream_tables").await,
        0
    );
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_frontiers").await,
        0
    );
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_sources").await,
        0
    );
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_refresh_stats").await,
        0
    );
    // Writing to the former source still works.
    db.exec("INSERT INTO t VALUES (200, 'after', 2)").await;
    match h.drop_stream_table("st").await {
        Err(Error::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

async fn assert_nothing_installed(db: &TestDb, name: &str) {
    assert!(
        !scalar_bool(
            &db.pool,
            &format!("SELECT to_regclass('public.{name}') IS NOT NULL")
        )
        .await,
        "storage table left behind"
    );
    assert_eq!(
        capture_triggers(&db.pool, "t").await,
        0,
        "trigger left behind"
    );
    assert_eq!(buffers(&db.pool).await, 0, "buffer left behind");
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgstream_changes'"
        )
        .await,
        0,
        "trigger function left behind"
    );
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_stream_tables").await,
        0
    );
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_frontiers").await,
        0
    );
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_sources").await,
        0
    );
}

#[tokio::test]
async fn failed_creation_leaves_nothing() {
    let db = test_db().await;
    setup_t(&db).await;
    let h = RuntimeHandle::new(db.pool.clone());

    // Compiles, but PostgreSQL fails during the initial refresh (division by zero).
    let err = h
        .create_stream_table(
            "bad",
            "SELECT id, name, 1 / (x - x) AS z FROM t",
            "30s",
            Mode::Full,
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("stream table bad"), "{msg}");
    assert!(msg.contains("division by zero"), "{msg}");
    assert_nothing_installed(&db, "bad").await;

    // The tutorial's trap: `'' > ''` makes the recursive member boolean.
    db.exec("CREATE TABLE departments (id int PRIMARY KEY, name text NOT NULL, parent_id int)")
        .await;
    db.exec("INSERT INTO departments VALUES (1, 'Company', NULL), (2, 'Eng', 1)")
        .await;
    let err = h
        .create_stream_table(
            "department_tree",
            "WITH RECURSIVE tree AS (
                 SELECT id, name, parent_id, name AS path, 0 AS depth FROM departments WHERE parent_id IS NULL
                 UNION ALL
                 SELECT d.id, d.name, d.parent_id, tree.path || '' > '' || d.name AS path, tree.depth + 1
                 FROM departments d JOIN tree ON d.parent_id = tree.id)
             SELECT id, name, parent_id, path, depth FROM tree",
            "30s",
            Mode::Differential,
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("department_tree"), "{msg}");
    assert!(msg.contains("boolean"), "{msg}");
    eprintln!("tutorial trap reported as: {msg}");
    assert_nothing_installed(&db, "department_tree").await;
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'departments'::regclass AND NOT tgisinternal").await,
        0
    );

    // A name taken by an ordinary table.
    db.exec("CREATE TABLE taken (a int)").await;
    match h
        .create_stream_table("taken", Q, "30s", Mode::Differential)
        .await
    {
        Err(Error::NameTaken(n)) => assert_eq!(n, "taken"),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    assert_eq!(capture_triggers(&db.pool, "t").await, 0);

    // Bad arguments.
    assert!(matches!(
        h.create_stream_table("a.b.c", Q, "30s", Mode::Full).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        h.create_stream_table("x", Q, "soon", Mode::Full).await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test]
async fn capture_is_shared_and_dropped_with_its_last_reader() {
    let db = test_db().await;
    setup_t(&db).await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("a", Q, "30s", Mode::Differential)
        .await
        .unwrap();
    h.create_stream_table("b", "SELECT id, name FROM t WHERE x < 3", "30s", Mode::Full)
        .await
        .unwrap();
    assert_eq!(capture_triggers(&db.pool, "t").await, 4);
    assert_eq!(buffers(&db.pool).await, 1);

    db.exec("INSERT INTO t VALUES (101, 'x', 2)").await;
    h.refresh("a").await.unwrap();
    // b has not consumed the change yet: the buffer keeps it.
    assert_eq!(
        h.status()
            .await
            .unwrap()
            .iter()
            .find(|s| s.name == "b")
            .unwrap()
            .pending_changes,
        1
    );
    h.refresh("b").await.unwrap();
    assert_eq!(
        difference(&db.pool, "SELECT id, name FROM t WHERE x < 3", "b").await,
        0
    );
    assert_eq!(difference(&db.pool, Q, "a").await, 0);

    h.drop_stream_table("a").await.unwrap();
    assert_eq!(capture_triggers(&db.pool, "t").await, 4, "b still reads t");
    assert_eq!(buffers(&db.pool).await, 1);
    db.exec("DELETE FROM t WHERE id = 101").await;
    h.refresh("b").await.unwrap();
    assert_eq!(
        difference(&db.pool, "SELECT id, name FROM t WHERE x < 3", "b").await,
        0
    );

    sqlx::query("SELECT pgstream.drop_stream_table('b')")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(capture_triggers(&db.pool, "t").await, 0);
    assert_eq!(buffers(&db.pool).await, 0);
}

#[tokio::test]
async fn truncate_forces_a_full_refresh() {
    let db = test_db().await;
    setup_t(&db).await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", Q, "30s", Mode::Differential)
        .await
        .unwrap();
    db.exec("TRUNCATE t").await;
    let status = h.status().await.unwrap();
    assert!(status[0].needs_full);
    assert!(status[0].stale);
    h.refresh("st").await.unwrap();
    assert_eq!(scalar_i64(&db.pool, "SELECT count(*) FROM st").await, 0);
    assert!(!h.status().await.unwrap()[0].needs_full);
    db.exec("INSERT INTO t VALUES (1, 'a', 2)").await;
    h.refresh("st").await.unwrap();
    assert_eq!(difference(&db.pool, Q, "st").await, 0);
}

#[tokio::test]
async fn refresh_in_repeatable_read_is_refused() {
    let db = test_db().await;
    setup_t(&db).await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", Q, "30s", Mode::Differential)
        .await
        .unwrap();
    for level in ["REPEATABLE READ", "SERIALIZABLE"] {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query(&format!("SET TRANSACTION ISOLATION LEVEL {level}"))
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = sqlx::query("SELECT pgstream.refresh_stream_table('st')")
            .execute(&mut *tx)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("in a {level} transaction")), "{msg}");
        tx.rollback().await.unwrap();
    }
    // READ COMMITTED inside an explicit transaction is fine.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SELECT pgstream.refresh_stream_table('st')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

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
async fn scheduler_refreshes_and_shutdown_is_prompt() {
    let db = test_db().await;
    setup_t(&db).await;
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    rt.create_stream_table("st", Q, "200ms", Mode::Differential)
        .await
        .unwrap();
    db.exec("INSERT INTO t VALUES (300, 'sched', 3)").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if scalar_i64(&db.pool, "SELECT count(*) FROM st WHERE id = 300").await == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduler did not refresh within 10s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rt.status().await.unwrap()[0].refresh_count >= 1);

    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), rt.shutdown())
        .await
        .expect("shutdown hangs");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn scheduler_records_errors_and_continues() {
    let db = test_db().await;
    setup_t(&db).await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("good", Q, "100ms", Mode::Differential)
        .await
        .unwrap();
    h.create_stream_table(
        "broken",
        "SELECT id, name FROM t WHERE x < 2",
        "100ms",
        Mode::Full,
    )
    .await
    .unwrap();
    // Break it: its storage table disappears behind pgstream's back.
    db.exec("DROP TABLE broken").await;
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    db.exec("INSERT INTO t VALUES (400, 'z', 2)").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = rt.status().await.unwrap();
        let broken = status.iter().find(|s| s.name == "broken").unwrap();
        let good_done = scalar_i64(&db.pool, "SELECT count(*) FROM good WHERE id = 400").await == 1;
        if broken.error_count >= 1 && good_done {
            assert!(
                broken
                    .last_error
                    .as_deref()
                    .unwrap_or("")
                    .contains("broken"),
                "{:?}",
                broken.last_error
            );
            assert!(broken.last_error_at.is_some());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no error recorded or good not refreshed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rt.shutdown().await;

    // A manual refresh records its error too, and names the stream table.
    let before = h
        .status()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == "broken")
        .unwrap()
        .error_count;
    let err = h.refresh("broken").await.unwrap_err();
    assert!(err.to_string().contains("stream table broken"), "{err}");
    let after = h
        .status()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == "broken")
        .unwrap()
        .error_count;
    assert_eq!(after, before + 1);
}

#[tokio::test]
async fn concurrent_writers_and_refreshers_lose_nothing() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, x int NOT NULL);
         INSERT INTO t SELECT g, 'n' || g, g % 4 FROM generate_series(1, 200) g;",
    )
    .await;
    let pool = db.new_pool(12).await;
    let rt = Runtime::builder(pool.clone())
        .tick(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    rt.create_stream_table("st", Q, "100ms", Mode::Differential)
        .await
        .unwrap();
    rt.create_stream_table(
        "st_full",
        "SELECT id, name FROM t WHERE x < 2",
        "100ms",
        Mode::Full,
    )
    .await
    .unwrap();

    let stop_at = Instant::now() + Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for w in 0..3u64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (w + 1);
            let mut next = move |m: u64| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (seed >> 33) % m
            };
            let mut i = 0i64;
            while Instant::now() < stop_at {
                i += 1;
                let mut tx = pool.begin().await.unwrap();
                let id = next(300) as i32 + 1;
                sqlx::query("UPDATE t SET x = (x + 1) % 4, name = name || '.' WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                // Keep some transactions open across a refresh.
                if next(3) == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let new_id = (1000 + w as i64 * 100_000 + i) as i32;
                sqlx::query("INSERT INTO t VALUES ($1, 'w', $2)")
                    .bind(new_id)
                    .bind(next(4) as i32)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                if next(2) == 0 {
                    sqlx::query("DELETE FROM t WHERE id = $1")
                        .bind(next(300) as i32 + 1)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
        }));
    }
    for _ in 0..2 {
        let h = rt.handle();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                h.refresh("st").await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    rt.shutdown().await;
    let h = RuntimeHandle::new(pool.clone());
    h.refresh("st").await.unwrap();
    h.refresh("st_full").await.unwrap();
    assert_eq!(difference(&pool, Q, "st").await, 0);
    assert_eq!(
        difference(&pool, "SELECT id, name FROM t WHERE x < 2", "st_full").await,
        0
    );
    // Every consumer is past every change: the buffer is empty.
    assert_eq!(
        h.status()
            .await
            .unwrap()
            .iter()
            .map(|s| s.pending_changes)
            .sum::<i64>(),
        0
    );
}

#[tokio::test]
async fn stream_table_over_stream_table() {
    let db = test_db().await;
    setup_t(&db).await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("up", Q, "30s", Mode::Differential)
        .await
        .unwrap();
    // DIFFERENTIAL over a storage table needs a key the compiler accepts (see report).
    h.create_stream_table(
        "down",
        "SELECT id, name FROM up WHERE id > 5",
        "30s",
        Mode::Full,
    )
    .await
    .unwrap();
    assert_eq!(capture_triggers(&db.pool, "up").await, 4);
    db.exec("INSERT INTO t VALUES (50, 'fifty', 3); DELETE FROM t WHERE id = 6")
        .await;
    h.refresh("up").await.unwrap();
    h.refresh("down").await.unwrap();
    assert_eq!(
        difference(
            &db.pool,
            "SELECT id, name FROM t WHERE x > 1 AND id > 5",
            "down"
        )
        .await,
        0
    );

    // The upstream cannot be dropped while read.
    let err = h.drop_stream_table("up").await.unwrap_err();
    assert!(err.to_string().contains("down"), "{err}");
    h.drop_stream_table("down").await.unwrap();
    h.drop_stream_table("up").await.unwrap();
    assert_eq!(capture_triggers(&db.pool, "t").await, 0);
    assert_eq!(buffers(&db.pool).await, 0);
}

#[tokio::test]
async fn reused_capture_follows_added_columns() {
    let db = test_db().await;
    setup_t(&db).await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("a", Q, "30s", Mode::Differential)
        .await
        .unwrap();
    db.exec("ALTER TABLE t ADD COLUMN y text").await;
    let qb = "SELECT id, y AS name FROM t WHERE y IS NOT NULL";
    h.create_stream_table("b", qb, "30s", Mode::Differential)
        .await
        .unwrap();
    db.exec("UPDATE t SET y = 'yy' || id WHERE id < 5; INSERT INTO t VALUES (77, 'n', 3, 'seven')")
        .await;
    h.refresh("a").await.unwrap();
    h.refresh("b").await.unwrap();
    assert_eq!(difference(&db.pool, Q, "a").await, 0);
    assert_eq!(difference(&db.pool, qb, "b").await, 0);
    assert_eq!(scalar_i64(&db.pool, "SELECT count(*) FROM b").await, 5);
}

#[tokio::test]
async fn partitioned_source() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE p (id int NOT NULL, name text NOT NULL, x int NOT NULL, PRIMARY KEY (id)) PARTITION BY RANGE (id);
         CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
         CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (1000);
         INSERT INTO p SELECT g, 'n' || g, g % 4 FROM generate_series(1, 200) g;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    let q = "SELECT id, name FROM p WHERE x > 1";
    h.create_stream_table("ps", q, "30s", Mode::Differential)
        .await
        .unwrap();
    db.exec("UPDATE p SET x = 3 WHERE id IN (4, 104); DELETE FROM p WHERE id IN (2, 102); INSERT INTO p VALUES (500, 'f', 2)")
        .await;
    h.refresh("ps").await.unwrap();
    assert_eq!(difference(&db.pool, q, "ps").await, 0);
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

/// A `1s` schedule on a 1 s tick is due every tick: the last refresh's `now()` lies a
/// little after the tick that started it, so the scheduler allows half a tick of slack
/// (it was due only every other tick, every 2 s).
#[tokio::test]
async fn a_one_second_schedule_is_due_at_the_next_tick() {
    let db = test_db().await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL); INSERT INTO t VALUES (1, 1);")
        .await;
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .tick(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    rt.create_stream_table("st", "SELECT id, x FROM t", "1s", Mode::Differential)
        .await
        .unwrap();
    let count = "SELECT coalesce(max(refresh_count), 0) FROM pgstream.pg_stat_stream_tables";
    let before = scalar_i64(&db.pool, count).await;
    // As if the last refresh had started 10 ms after the previous tick; a change to
    // apply (without one the scheduler does not call the refresh, see runtime_idle.rs).
    db.exec("UPDATE pgstream.pgs_stream_tables SET last_refresh_at = now() - interval '990 milliseconds'; UPDATE t SET x = x + 1")
        .await;
    rt.run_once().await.unwrap();
    assert_eq!(scalar_i64(&db.pool, count).await, before + 1);
    // Not due half a tick before its time.
    db.exec("UPDATE pgstream.pgs_stream_tables SET last_refresh_at = now() - interval '400 milliseconds'; UPDATE t SET x = x + 1")
        .await;
    rt.run_once().await.unwrap();
    assert_eq!(scalar_i64(&db.pool, count).await, before + 1);
    rt.shutdown().await;
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
