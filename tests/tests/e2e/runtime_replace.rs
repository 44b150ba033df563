//! Changing a stream table's query (issue 16): the builder's `replace_changed`, the
//! handle's `replace_stream_table` and `pgstream.replace_stream_table` from SQL.
//! Readers on other connections during a replacement see the complete old result or
//! the complete new one, never an empty or half-built table; grants are kept; an older
//! application version (old definition) started after a newer one replaced the
//! stream table does not replace it back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pgstream_runtime::{Error, Mode, Runtime, RuntimeHandle, StreamTableSpec};
use pgstream_tests::compare::stage_tables;
use pgstream_tests::test_db;
use sqlx::PgPool;

const OLD: &str = "SELECT id, v FROM t WHERE id % 2 = 0";
const NEW: &str = "SELECT id, v * 10 AS v FROM t";
const ROWS: i64 = 100_000;

fn spec(query: &str) -> StreamTableSpec {
    pgstream_runtime::spec("st", query, "1h", Mode::Differential).unwrap()
}

async fn start(pool: &PgPool, query: &str, replace: bool) -> pgstream_runtime::Result<Runtime> {
    Runtime::builder(pool.clone())
        .scheduler(false)
        .replace_changed(replace)
        .register_spec(spec(query))
        .start()
        .await
}

async fn stored_query(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT query FROM pgstream.pgs_stream_tables WHERE table_name = 'st'")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn signature(pool: &PgPool, sql: &str) -> (i64, i64) {
    sqlx::query_as(&format!(
        "SELECT count(*)::int8, coalesce(sum(v), 0)::int8 FROM ({sql}) q"
    ))
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn readers_see_the_old_or_the_new_result_never_an_empty_one() {
    let db = test_db().await;
    db.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g % 97 FROM generate_series(1, {ROWS}) g;
         CREATE ROLE replace_reader_role;"
    ))
    .await;
    let rt = start(&db.pool, OLD, false).await.unwrap();
    rt.shutdown().await;
    db.exec("GRANT SELECT ON st TO replace_reader_role").await;
    let old = signature(&db.pool, OLD).await;
    let new = signature(&db.pool, NEW).await;
    assert_ne!(old, new);

    // Readers on their own connections, in a loop, during the replacements.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let pool = db.new_pool(1).await;
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let started = std::time::Instant::now();
                let r: Result<(i64, i64), sqlx::Error> =
                    sqlx::query_as("SELECT count(*)::int8, coalesce(sum(v), 0)::int8 FROM st")
                        .fetch_one(&pool)
                        .await;
                slowest = slowest.max(started.elapsed());
                seen.push(r.map_err(|e| e.to_string()));
            }
            (seen, slowest)
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Builder (old -> new), handle (new -> old, explicit), handle again (old -> new).
    let rt = start(&db.pool, NEW, true).await.unwrap();
    rt.shutdown().await;
    assert_eq!(stored_query(&db.pool).await, NEW);
    let handle = RuntimeHandle::new(db.pool.clone());
    assert!(handle
        .replace_stream_table("st", OLD, "1h", Mode::Differential)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(handle
        .replace_stream_table("st", NEW, "1h", Mode::Full)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut counts = (0, 0);
    let mut slowest = Duration::ZERO;
    for r in readers {
        let (seen, slow) = r.await.unwrap();
        slowest = slowest.max(slow);
        for s in seen {
            let s = s.unwrap_or_else(|e| panic!("a reader failed during the replacement: {e}"));
            assert!(
                s == old || s == new,
                "a reader saw {s:?}, neither the old result {old:?} nor the new {new:?}"
            );
            if s == old {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
    }
    eprintln!(
        "reads of the old result: {}, of the new: {}; slowest read {slowest:?}",
        counts.0, counts.1
    );
    assert!(counts.0 > 0 && counts.1 > 0, "{counts:?}");

    // Nothing left of the tables built beside.
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'pgs\\_replacing%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    // The new definition, complete and maintained; the grant kept.
    assert_eq!(db.difference(NEW, "id, v", "st").await, 0);
    let kept: bool =
        sqlx::query_scalar("SELECT has_table_privilege('replace_reader_role', 'st', 'SELECT')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(
        kept,
        "the grant on the old storage table was not given on the new one"
    );
    db.exec("UPDATE t SET v = v + 1 WHERE id <= 10").await;
    handle.refresh("st").await.unwrap();
    assert_eq!(db.difference(NEW, "id, v", "st").await, 0);

    // A replacement that fails (a query that does not compile) changes nothing.
    let err = handle
        .replace_stream_table("st", "SELECT nope FROM t", "1h", Mode::Differential)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Compile { .. }), "{err}");
    assert_eq!(stored_query(&db.pool).await, NEW);
    assert_eq!(db.difference(NEW, "id, v", "st").await, 0);
    // No such stream table.
    let err = handle
        .replace_stream_table("nothing", OLD, "1h", Mode::Differential)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
}

#[tokio::test]
async fn an_older_version_started_after_a_newer_one_does_not_undo_it() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g FROM generate_series(1, 50) g;",
    )
    .await;
    // Version 1 runs; version 2 (new query, replace_changed) starts beside it.
    let v1 = start(&db.pool, OLD, true).await.unwrap();
    let v2 = start(&db.pool, NEW, true).await.unwrap();
    assert_eq!(stored_query(&db.pool).await, NEW);
    // Version 1 restarts (a crash, a scale-up of the old deployment): it starts,
    // leaves the newer definition alone, with or without replace_changed.
    v1.shutdown().await;
    let v1 = start(&db.pool, OLD, true).await.unwrap();
    assert_eq!(stored_query(&db.pool).await, NEW);
    v1.shutdown().await;
    let v1 = start(&db.pool, OLD, false).await.unwrap();
    assert_eq!(stored_query(&db.pool).await, NEW);
    // Its handle's refreshes maintain the newer definition.
    db.exec("INSERT INTO t VALUES (51, 51)").await;
    v1.refresh("st").await.unwrap();
    assert_eq!(db.difference(NEW, "id, v", "st").await, 0);
    v1.shutdown().await;
    v2.shutdown().await;

    // A third definition nobody had before: refused without replace_changed.
    let third = "SELECT id, v FROM t WHERE v > 10";
    let err = start(&db.pool, third, false).await.unwrap_err();
    assert!(matches!(err, Error::DefinitionChanged { .. }), "{err}");
    assert!(err.to_string().contains("replace_changed"), "{err}");

    // Going back is explicit: a replace through the handle reinstates the old query,
    // and the newer one is then the superseded one.
    let handle = RuntimeHandle::new(db.pool.clone());
    assert!(handle
        .replace_stream_table("st", OLD, "1h", Mode::Differential)
        .await
        .unwrap());
    assert_eq!(stored_query(&db.pool).await, OLD);
    let v2 = start(&db.pool, NEW, true).await.unwrap();
    assert_eq!(stored_query(&db.pool).await, OLD);
    v2.shutdown().await;
    assert_eq!(db.difference(OLD, "id, v", "st").await, 0);

    // Dropping forgets the history.
    handle.drop_stream_table("st").await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pgstream.pgs_superseded")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn replace_from_sql() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g FROM generate_series(1, 50) g;",
    )
    .await;
    start(&db.pool, OLD, false).await.unwrap().shutdown().await;
    db.exec(&format!(
        "SELECT pgstream.replace_stream_table('st', '{NEW}', schedule => '5m')"
    ))
    .await;
    pgstream_runtime::process_requests(&db.pool).await.unwrap();
    db.exec("SELECT pgstream.wait_for_stream_table('st', '5 seconds')")
        .await;
    assert_eq!(stored_query(&db.pool).await, NEW);
    assert_eq!(db.difference(NEW, "id, v", "st").await, 0);
    let schedule: String = sqlx::query_scalar(
        "SELECT schedule FROM pgstream.pgs_stream_tables WHERE table_name = 'st'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(schedule, "5m");

    // A failure is reported by wait_for_stream_table, and changes nothing.
    db.exec("SELECT pgstream.replace_stream_table('st', 'SELECT nope FROM t')")
        .await;
    pgstream_runtime::process_requests(&db.pool).await.unwrap();
    let err = sqlx::query("SELECT pgstream.wait_for_stream_table('st', '5 seconds')")
        .execute(&db.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(stored_query(&db.pool).await, NEW);
}

#[tokio::test]
async fn replicas_replacing_at_once_replace_once() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;",
    )
    .await;
    start(&db.pool, OLD, false).await.unwrap().shutdown().await;
    let (a, b) = tokio::join!(start(&db.pool, NEW, true), start(&db.pool, NEW, true));
    a.unwrap().shutdown().await;
    b.unwrap().shutdown().await;
    assert_eq!(stored_query(&db.pool).await, NEW);
    assert_eq!(db.difference(NEW, "id, v", "st").await, 0);
    let (stream_tables, superseded): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pgstream.pgs_stream_tables),
                (SELECT count(*) FROM pgstream.pgs_superseded)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((stream_tables, superseded), (1, 1));

    // A stream table read by another cannot be replaced: the error names the reader.
    let handle = RuntimeHandle::new(db.pool.clone());
    handle
        .create_stream_table("reader", "SELECT id FROM st", "1h", Mode::Differential)
        .await
        .unwrap();
    let err = handle
        .replace_stream_table("st", OLD, "1h", Mode::Differential)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::HasReaders { .. }), "{err}");
    assert!(err.to_string().contains("reader"), "{err}");
    assert_eq!(stored_query(&db.pool).await, NEW);
}

/// Column grants (`GRANT SELECT (id) ON st TO r`) survive a replace like table-level
/// ones; one on a column the new query no longer has is dropped, and the replace
/// goes through.
#[tokio::test]
async fn column_grants_are_kept() {
    let db = test_db().await;
    let role = format!("colgrant_{}", db.name);
    let editor = format!("colgrant_ed_{}", db.name);
    db.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g FROM generate_series(1, 50) g;
         CREATE ROLE {role}; CREATE ROLE {editor};"
    ))
    .await;
    let old = "SELECT id, v, v AS gone FROM t";
    let rt = start(&db.pool, old, false).await.unwrap();
    rt.shutdown().await;
    db.exec(&format!(
        "GRANT SELECT (id) ON st TO {role};
         GRANT SELECT (id, gone), UPDATE (v) ON st TO {editor} WITH GRANT OPTION;"
    ))
    .await;

    let handle = RuntimeHandle::new(db.pool.clone());
    assert!(handle
        .replace_stream_table("st", NEW, "1h", Mode::Differential)
        .await
        .unwrap());
    assert_eq!(db.difference(NEW, "id, v", "st").await, 0);
    let privilege = |role: String, column: &'static str, what: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>("SELECT has_column_privilege($1, 'st', $2, $3)")
                .bind(role)
                .bind(column)
                .bind(what)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert!(privilege(role.clone(), "id", "SELECT").await);
    assert!(!privilege(role.clone(), "v", "SELECT").await);
    assert!(privilege(editor.clone(), "id", "SELECT WITH GRANT OPTION").await);
    assert!(privilege(editor.clone(), "v", "UPDATE WITH GRANT OPTION").await);
    assert!(!privilege(editor.clone(), "v", "SELECT").await);
    let table_level: bool = sqlx::query_scalar("SELECT has_table_privilege($1, 'st', 'SELECT')")
        .bind(&role)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(!table_level, "a column grant became a table-level one");
    // The role reads the granted column, and only it.
    let mut conn = db.connect().await;
    sqlx::query(&format!("SET ROLE {role}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(id) FROM public.st")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 50);
    let err = sqlx::query("SELECT v FROM public.st")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
}

/// A query around an aggregate relation (kept in a stage table) replaced by a plain
/// aggregate and back: the stream table equals each query, the stage exists while a
/// version needs it, and none is left behind.
#[tokio::test]
async fn replace_to_and_from_a_query_around_a_stage() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE u (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         INSERT INTO u SELECT i, i % 5, i % 7 FROM generate_series(1, 60) i;",
    )
    .await;
    // (A LEFT JOIN inside: over an inner join the inner aggregate is an aggregate leaf,
    // without a stage.)
    let around = "SELECT total, count(*) AS k FROM (SELECT a.g, sum(b.v) AS total FROM u a \
                  LEFT JOIN u b ON b.id = a.id GROUP BY a.g) s GROUP BY total";
    let plain = "SELECT g AS total, count(*) AS k FROM u GROUP BY g";
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", around, "1h", Mode::Differential)
        .await
        .unwrap();
    assert_eq!(stage_tables(&db.pool).await, 1);
    db.exec("UPDATE u SET v = v + 3 WHERE id % 4 = 0; DELETE FROM u WHERE id = 7")
        .await;
    h.refresh("st").await.unwrap();
    assert_eq!(db.difference(around, "total, k", "st").await, 0);

    assert!(h
        .replace_stream_table("st", plain, "1h", Mode::Differential)
        .await
        .unwrap());
    assert_eq!(
        stage_tables(&db.pool).await,
        0,
        "the old version's stage dropped"
    );
    assert_eq!(db.difference(plain, "total, k", "st").await, 0);

    assert!(h
        .replace_stream_table("st", around, "1h", Mode::Differential)
        .await
        .unwrap());
    assert_eq!(stage_tables(&db.pool).await, 1);
    db.exec("INSERT INTO u VALUES (100, 2, 50); UPDATE u SET g = 4 WHERE id = 3")
        .await;
    h.refresh("st").await.unwrap();
    assert_eq!(db.difference(around, "total, k", "st").await, 0);
    h.drop_stream_table("st").await.unwrap();
    assert_eq!(stage_tables(&db.pool).await, 0);
}
