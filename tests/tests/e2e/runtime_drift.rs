//! Schema drift of a source: a column a stream table uses is dropped, renamed or
//! retyped. The stream table goes to the ERROR state with a message naming the table
//! and the column, nothing is applied, other stream tables on the same source keep
//! working, and writes to the source keep working (the DDL event trigger rebuilds the
//! capture function). Without the event trigger, the next refresh and the next
//! start-up find the drift.
//!
//! Views a stream table reads (expanded into their bodies at creation) are drift too
//! when they are redefined, renamed or dropped: the stream table maintains the body
//! it was created with, so it goes to the ERROR state naming the view.

use pgstream_runtime::{Error, Mode, Runtime, RuntimeHandle};
use pgstream_tests::compare::{difference, scalar_i64, status_of};
use pgstream_tests::{test_db, TestDb};
use sqlx::PgPool;

/// Start a runtime without its scheduler (the start-up checks and backfills run),
/// then shut it down.
async fn start_up(db: &TestDb) {
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    rt.shutdown().await;
}

async fn rows(pool: &PgPool, table: &str) -> Vec<String> {
    sqlx::query_scalar(&format!(
        "SELECT s::text FROM (SELECT * FROM {table}) s ORDER BY 1"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

const QA: &str = "SELECT id, a FROM t WHERE a > 0";
const QB: &str = "SELECT b, count(*) AS n FROM t GROUP BY b";
const QC: &str = "SELECT id, c FROM t";
const QD: &str = "SELECT id, d FROM t";

async fn setup(db: &TestDb) -> RuntimeHandle {
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL, c int NOT NULL,
                         d int NOT NULL, unused text);
         INSERT INTO t SELECT i, i % 3, i % 4, i, i FROM generate_series(1, 40) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("sa", QA, "1h", Mode::Differential)
        .await
        .unwrap();
    h.create_stream_table("sb", QB, "1h", Mode::Differential)
        .await
        .unwrap();
    h.create_stream_table("sc", QC, "1h", Mode::Full)
        .await
        .unwrap();
    h.create_stream_table("sd", QD, "1h", Mode::Differential)
        .await
        .unwrap();
    h
}

async fn assert_error(db: &TestDb, h: &RuntimeHandle, name: &str, reason: &str) {
    let s = status_of(&db.pool, name).await;
    assert_eq!(s.status, "ERROR", "{s:?}");
    assert_eq!(s.status_reason.as_deref(), Some(reason));
    let before = rows(&db.pool, name).await;
    let err = h.refresh(name).await.unwrap_err();
    assert_eq!(err.sqlstate().as_deref(), Some("PGS01"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("stream table {name}: {reason}")),
        "{err}"
    );
    assert_eq!(rows(&db.pool, name).await, before, "nothing applied");
}

#[tokio::test]
async fn drop_rename_retype_put_only_their_readers_in_error() {
    let db = test_db().await;
    let h = setup(&db).await;
    // A column no stream table uses: no drift.
    db.exec("ALTER TABLE t DROP COLUMN unused").await;
    for n in ["sa", "sb", "sc", "sd"] {
        assert_eq!(status_of(&db.pool, n).await.status, "ACTIVE", "{n}");
    }

    db.exec("ALTER TABLE t DROP COLUMN a").await;
    // Writes to the source keep working right after the DROP COLUMN.
    db.exec(
        "INSERT INTO t (id, b, c, d) VALUES (100, 1, 100, 100);
         UPDATE t SET b = 2 WHERE id = 1;
         DELETE FROM t WHERE id = 2;",
    )
    .await;
    assert_error(&db, &h, "sa", "source column public.t.a was dropped").await;
    for n in ["sb", "sc", "sd"] {
        assert_eq!(status_of(&db.pool, n).await.status, "ACTIVE", "{n}");
    }
    h.refresh("sb").await.unwrap();
    assert_eq!(difference(&db.pool, QB, "sb", "b, n").await, 0);

    db.exec("ALTER TABLE t RENAME COLUMN b TO b2").await;
    db.exec("INSERT INTO t (id, b2, c, d) VALUES (101, 1, 101, 101)")
        .await;
    assert_error(&db, &h, "sb", "source column public.t.b was renamed to b2").await;

    db.exec("ALTER TABLE t ALTER COLUMN c TYPE bigint").await;
    db.exec("UPDATE t SET c = c + 1, d = d + 1 WHERE id < 10")
        .await;
    assert_error(
        &db,
        &h,
        "sc",
        "source column public.t.c changed type from integer to bigint",
    )
    .await;

    // The untouched stream table saw every change, through all three DDLs.
    assert_eq!(status_of(&db.pool, "sd").await.status, "ACTIVE");
    h.refresh("sd").await.unwrap();
    assert_eq!(difference(&db.pool, QD, "sd", "id, d").await, 0);

    // resume refuses while the drift is there.
    let err = h.resume("sa").await.unwrap_err();
    assert!(err.to_string().contains("public.t.a was dropped"), "{err}");
    assert_eq!(status_of(&db.pool, "sa").await.status, "ERROR");

    // The scheduler leaves ERROR stream tables alone and refreshes the others.
    let rt = Runtime::builder(db.pool.clone())
        .tick(std::time::Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    rt.shutdown().await;
    for n in ["sa", "sb", "sc"] {
        assert_eq!(status_of(&db.pool, n).await.status, "ERROR", "{n}");
    }
}

/// Without the event trigger (e.g. installed by a non-superuser), drift is found by
/// the next refresh (which then records the ERROR state) and at start-up.
#[tokio::test]
async fn drift_found_at_refresh_and_start_up_without_event_trigger() {
    let db = test_db().await;
    let h = setup(&db).await;
    db.exec("DROP EVENT TRIGGER pgstream_ddl").await;

    db.exec("ALTER TABLE t RENAME COLUMN c TO c2").await;
    assert_eq!(status_of(&db.pool, "sc").await.status, "ACTIVE");
    let err = h.refresh("sc").await.unwrap_err();
    assert_eq!(err.sqlstate().as_deref(), Some("PGS01"), "{err}");
    assert!(
        err.to_string()
            .contains("stream table sc: source column public.t.c was renamed to c2"),
        "{err}"
    );
    let s = status_of(&db.pool, "sc").await;
    assert_eq!(s.status, "ERROR");
    assert_eq!(s.error_count, 1);

    db.exec("ALTER TABLE t ALTER COLUMN d TYPE numeric").await;
    assert_eq!(status_of(&db.pool, "sd").await.status, "ACTIVE");
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    let s = status_of(&db.pool, "sd").await;
    assert_eq!(s.status, "ERROR");
    assert_eq!(
        s.status_reason.as_deref(),
        Some("source column public.t.d changed type from integer to numeric")
    );
    rt.shutdown().await;

    // Undo the rename: resume works again and the stream table catches up.
    db.exec("ALTER TABLE t RENAME COLUMN c2 TO c").await;
    h.resume("sc").await.unwrap();
    h.refresh("sc").await.unwrap();
    assert_eq!(difference(&db.pool, QC, "sc", "id, c").await, 0);
    match h.resume("nope").await {
        Err(Error::NotFound(_)) => {}
        other => panic!("{other:?}"),
    }
}

/// Stream tables created before catalog version 2 have no recorded source columns:
/// start-up records them from the stored query, and drift is detected from then on.
#[tokio::test]
async fn start_up_records_missing_source_columns() {
    let db = test_db().await;
    let _h = setup(&db).await;
    let recorded = "SELECT string_agg(table_name || ':' || source_columns::text, ' ' ORDER BY id)
                      FROM pgstream.pgs_stream_tables";
    let before: String = sqlx::query_scalar(recorded)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(before.contains(r#""column": "a""#), "{before}");
    assert!(!before.contains(r#""column": "unused""#), "{before}");
    db.exec("UPDATE pgstream.pgs_stream_tables SET source_columns = '[]'")
        .await;
    start_up(&db).await;
    let after: String = sqlx::query_scalar(recorded)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(before, after);
}

/// Views: `v` (read by `sv` and, through `vv`, by `svv`), `w` (read by `sw`).
const V_BODY: &str = "SELECT id, a, b FROM t WHERE a > 0";
const QV: &str = "SELECT id, a FROM v";
const QVV: &str = "SELECT b, count(*) AS n FROM vv GROUP BY b";
const QW: &str = "SELECT id, c FROM w WHERE c > 3";

async fn setup_views(db: &TestDb) -> RuntimeHandle {
    db.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL, c int NOT NULL,
                         d int NOT NULL, unused text);
         INSERT INTO t SELECT i, i % 3, i % 4, i, i FROM generate_series(1, 40) i;
         CREATE VIEW v AS {V_BODY};
         CREATE VIEW vv AS SELECT id, b FROM v WHERE b < 3;
         CREATE VIEW w AS SELECT id, c FROM t;"
    ))
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("sv", QV, "1h", Mode::Differential)
        .await
        .unwrap();
    h.create_stream_table("svv", QVV, "1h", Mode::Full)
        .await
        .unwrap();
    h.create_stream_table("sw", QW, "1h", Mode::Differential)
        .await
        .unwrap();
    h
}

fn redefined(view: &str, st: &str) -> String {
    format!(
        "view {view} was redefined after stream table {st} was created, \
         which maintains the definition the view had then"
    )
}

/// A write to `t`, then `sw` refreshes and equals its query: a view that is not
/// read by it changing never affects it.
async fn assert_w_unaffected(db: &TestDb, h: &RuntimeHandle) {
    db.exec("UPDATE t SET c = c + 1 WHERE id % 5 = 0").await;
    assert_eq!(status_of(&db.pool, "sw").await.status, "ACTIVE");
    h.refresh("sw").await.unwrap();
    assert_eq!(difference(&db.pool, QW, "sw", "id, c").await, 0);
}

#[tokio::test]
async fn view_redefined_renamed_or_dropped_puts_its_readers_in_error() {
    let db = test_db().await;
    let h = setup_views(&db).await;
    let recorded = scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_views").await;
    assert_eq!(recorded, 4, "sv: v; svv: vv, v; sw: w");

    // Replacing a view with the same body is no change; the event trigger records
    // the new rule, so refreshes need not compare the definitions.
    let stale_rules = "SELECT count(*) FROM pgstream.pgs_views v JOIN pg_rewrite r
                         ON r.ev_class = v.view_oid AND r.rulename = '_RETURN'
                        WHERE NOT (r.xmin = v.rule_xmin)";
    db.exec(&format!("CREATE OR REPLACE VIEW v AS {V_BODY}"))
        .await;
    for n in ["sv", "svv", "sw"] {
        assert_eq!(status_of(&db.pool, n).await.status, "ACTIVE", "{n}");
    }
    assert_eq!(scalar_i64(&db.pool, stale_rules).await, 0);

    // Redefined: ERROR in the DDL's own transaction, for the readers of v (also
    // through vv), naming the view; refreshes fail with the reason and a hint.
    db.exec("CREATE OR REPLACE VIEW v AS SELECT id, a, b FROM t WHERE a > 1")
        .await;
    db.exec("INSERT INTO t VALUES (100, 2, 1, 100, 100); DELETE FROM t WHERE id = 3;")
        .await;
    assert_error(&db, &h, "sv", &redefined("public.v", "sv")).await;
    assert_error(&db, &h, "svv", &redefined("public.v", "svv")).await;
    let err = h.refresh("sv").await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("drop the stream table")
            && text.contains("CREATE OR REPLACE VIEW with its former body")
            && text.contains("pgstream.resume_stream_table"),
        "{text}"
    );
    let err = h.resume("sv").await.unwrap_err();
    assert_eq!(err.sqlstate().as_deref(), Some("PGS01"), "{err}");
    assert!(
        err.to_string().contains("view public.v was redefined"),
        "{err}"
    );
    assert_w_unaffected(&db, &h).await;

    // Redefined back: still ERROR until resumed; then exact again.
    db.exec(&format!("CREATE OR REPLACE VIEW v AS {V_BODY}"))
        .await;
    assert_eq!(status_of(&db.pool, "sv").await.status, "ERROR");
    for n in ["sv", "svv"] {
        h.resume(n).await.unwrap();
        h.refresh(n).await.unwrap();
    }
    assert_eq!(difference(&db.pool, QV, "sv", "id, a").await, 0);
    assert_eq!(difference(&db.pool, QVV, "svv", "b, n").await, 0);

    // Renamed: the stream table's query names the view by its old name.
    db.exec("ALTER VIEW v RENAME TO v2").await;
    let renamed = |st: &str| {
        format!(
            "view public.v was renamed to public.v2 after stream table {st} was created, \
             whose query names it by its old name"
        )
    };
    assert_error(&db, &h, "sv", &renamed("sv")).await;
    assert_error(&db, &h, "svv", &renamed("svv")).await;
    db.exec("ALTER TABLE v2 RENAME TO v").await;
    db.exec("INSERT INTO t VALUES (101, 1, 1, 101, 101)").await;
    for n in ["sv", "svv"] {
        h.resume(n).await.unwrap();
        h.refresh(n).await.unwrap();
    }
    assert_eq!(difference(&db.pool, QV, "sv", "id, a").await, 0);
    // Moved to another schema: renamed too.
    db.exec("CREATE SCHEMA other; ALTER VIEW vv SET SCHEMA other")
        .await;
    assert_error(
        &db,
        &h,
        "svv",
        "view public.vv was renamed to other.vv after stream table svv was created, \
         whose query names it by its old name",
    )
    .await;
    assert_eq!(status_of(&db.pool, "sv").await.status, "ACTIVE");
    db.exec("ALTER VIEW other.vv SET SCHEMA public").await;
    h.resume("svv").await.unwrap();
    h.refresh("svv").await.unwrap();
    assert_eq!(difference(&db.pool, QVV, "svv", "b, n").await, 0);

    // A column of the view renamed: a redefinition (the query names the old column).
    db.exec("ALTER VIEW w RENAME COLUMN c TO c2").await;
    assert_error(&db, &h, "sw", &redefined("public.w", "sw")).await;
    db.exec("ALTER VIEW w RENAME COLUMN c2 TO c").await;
    h.resume("sw").await.unwrap();
    assert_w_unaffected(&db, &h).await;

    // Dropped: PostgreSQL needs no CASCADE (a stream table does not depend on the
    // view in pg_depend: its SQL reads the tables under it).
    db.exec("DROP VIEW vv").await;
    assert_error(
        &db,
        &h,
        "svv",
        "view public.vv was dropped after stream table svv was created",
    )
    .await;
    assert_eq!(status_of(&db.pool, "sv").await.status, "ACTIVE");
    db.exec("DROP VIEW v").await;
    assert_error(
        &db,
        &h,
        "sv",
        "view public.v was dropped after stream table sv was created",
    )
    .await;
    assert_w_unaffected(&db, &h).await;

    // Dropping a stream table removes its recorded views; sw's stays.
    h.drop_stream_table("sv").await.unwrap();
    h.drop_stream_table("svv").await.unwrap();
    let left: Vec<String> =
        sqlx::query_scalar("SELECT view_name FROM pgstream.pgs_views ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(left, ["w"]);
}

/// Without the event trigger, a redefined view is found by the next refresh and at
/// start-up, like column drift.
#[tokio::test]
async fn view_drift_found_at_refresh_and_start_up_without_event_trigger() {
    let db = test_db().await;
    let h = setup_views(&db).await;
    db.exec("DROP EVENT TRIGGER pgstream_ddl").await;

    db.exec("CREATE OR REPLACE VIEW v AS SELECT id, a, b FROM t WHERE a >= 0")
        .await;
    assert_eq!(status_of(&db.pool, "sv").await.status, "ACTIVE");
    let err = h.refresh("sv").await.unwrap_err();
    assert_eq!(err.sqlstate().as_deref(), Some("PGS01"), "{err}");
    let reason = redefined("public.v", "sv");
    assert!(
        err.to_string()
            .contains(&format!("stream table sv: {reason}")),
        "{err}"
    );
    assert_eq!(status_of(&db.pool, "sv").await.status, "ERROR");

    assert_eq!(status_of(&db.pool, "svv").await.status, "ACTIVE");
    start_up(&db).await;
    let s = status_of(&db.pool, "svv").await;
    assert_eq!(s.status, "ERROR");
    assert_eq!(
        s.status_reason.as_deref(),
        Some(&*redefined("public.v", "svv"))
    );
    assert_w_unaffected(&db, &h).await;
}

/// Stream tables created before catalog version 6 have no recorded views: start-up
/// records them from the stored query, and a redefinition is detected from then on.
#[tokio::test]
async fn start_up_records_missing_views() {
    let db = test_db().await;
    let _h = setup_views(&db).await;
    let recorded = "SELECT string_agg(st_id || ':' || view_name || ':' || ord || ':'
                                      || md5(definition), ' ' ORDER BY st_id, ord)
                      FROM pgstream.pgs_views";
    let before: String = sqlx::query_scalar(recorded)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    db.exec(
        "DELETE FROM pgstream.pgs_views;
         UPDATE pgstream.pgs_stream_tables SET views_recorded = false;",
    )
    .await;
    start_up(&db).await;
    let after: String = sqlx::query_scalar(recorded)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(before, after);
    db.exec("CREATE OR REPLACE VIEW w AS SELECT id, c FROM t WHERE c > 10")
        .await;
    let s = status_of(&db.pool, "sw").await;
    assert_eq!(s.status, "ERROR");
    assert_eq!(
        s.status_reason.as_deref(),
        Some(&*redefined("public.w", "sw"))
    );
}

/// A query around an aggregate relation kept in a stage reads its other relations
/// whole: a column only that query reads is used (dropping it is drift), one it does
/// not read is not.
#[tokio::test]
async fn a_column_only_the_query_around_a_stage_reads_is_drift() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE u (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         CREATE TABLE w (id int PRIMARY KEY, name text NOT NULL, extra text);
         INSERT INTO u SELECT i, i % 5, i FROM generate_series(1, 40) i;
         INSERT INTO w SELECT i, 'w' || i, NULL FROM generate_series(0, 4) i;",
    )
    .await;
    let q = "WITH s AS (SELECT g, sum(v) AS total FROM u GROUP BY g) \
             SELECT w.id, w.name, s.total FROM w JOIN s ON s.g = w.id \
             WHERE s.total = (SELECT max(total) FROM s)";
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("top_w", q, "1h", Mode::Differential)
        .await
        .unwrap();
    let s = status_of(&db.pool, "top_w").await;
    assert!(
        s.strategy
            .as_deref()
            .is_some_and(|x| x.starts_with("incremental below")),
        "{s:?}"
    );
    db.exec("ALTER TABLE w DROP COLUMN extra").await;
    assert_eq!(status_of(&db.pool, "top_w").await.status, "ACTIVE");
    db.exec("UPDATE u SET v = v + 100 WHERE id = 3").await;
    h.refresh("top_w").await.unwrap();
    assert_eq!(difference(&db.pool, q, "top_w", "id, name, total").await, 0);
    db.exec("ALTER TABLE w DROP COLUMN name").await;
    assert_error(&db, &h, "top_w", "source column public.w.name was dropped").await;
}
