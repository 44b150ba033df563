//! A column that no stream table reads may be added, dropped or renamed at any time:
//! every refresh path (differential, the adaptive switch to a full refresh, the full
//! refresh after a TRUNCATE, recompute-and-diff, the semi-naive path of a recursive
//! query, FULL mode, stream tables over stream tables) keeps working and keeps the
//! stream tables equal to their queries. The stored statements name only the columns
//! the query reads, and a `*` is expanded when the stream table is created.

use pgstream_runtime::{Mode, RuntimeHandle};
use pgstream_tests::{test_db, TestDb};
use sqlx::PgPool;

/// (name, query, mode, visible columns).
const STREAMS: &[(&str, &str, Mode, &str)] = &[
    (
        "s_agg",
        "SELECT g, count(*) AS n, sum(v) AS s FROM dc GROUP BY g",
        Mode::Differential,
        "g, n, s",
    ),
    (
        "s_minmax",
        "SELECT g, max(v) AS m FROM dc GROUP BY g",
        Mode::Differential,
        "g, m",
    ),
    (
        "s_proj",
        "SELECT id, v FROM dc WHERE g > 0",
        Mode::Differential,
        "id, v",
    ),
    ("s_bag", "SELECT g, v FROM kl", Mode::Differential, "g, v"),
    (
        "s_bag_agg",
        "SELECT g, count(*) AS n, sum(v) AS s FROM kl GROUP BY g",
        Mode::Differential,
        "g, n, s",
    ),
    (
        "s_join",
        "SELECT dc.id, dc.v, j.w FROM dc JOIN j ON j.dc_id = dc.id",
        Mode::Differential,
        "id, v, w",
    ),
    (
        "s_left",
        "SELECT dc.id, j.w FROM dc LEFT JOIN j ON j.dc_id = dc.id",
        Mode::Differential,
        "id, w",
    ),
    (
        "s_window",
        "SELECT id, g, row_number() OVER (PARTITION BY g ORDER BY id) AS rn FROM dc",
        Mode::Differential,
        "id, g, rn",
    ),
    (
        "s_topk",
        "SELECT id, v FROM dc ORDER BY v DESC, id LIMIT 5",
        Mode::Differential,
        "id, v",
    ),
    (
        "s_nested",
        "SELECT x.g, x.n FROM (SELECT g, count(*) AS n FROM kl GROUP BY g) x WHERE x.n > 1",
        Mode::Differential,
        "g, n",
    ),
    (
        "s_reach",
        "WITH RECURSIVE r(a, b) AS (SELECT src, dst FROM e UNION ALL \
         SELECT r.a, e.dst FROM r JOIN e ON e.src = r.b) SELECT a, b FROM r",
        Mode::Differential,
        "a, b",
    ),
    (
        "s_full",
        "SELECT g, sum(v) AS s FROM dc GROUP BY g",
        Mode::Full,
        "g, s",
    ),
    ("s_full_bag", "SELECT g, v FROM kl", Mode::Full, "g, v"),
    (
        "s_down",
        "SELECT g, n FROM s_agg WHERE n > 0",
        Mode::Differential,
        "g, n",
    ),
];

async fn setup(db: &TestDb) -> RuntimeHandle {
    db.exec(
        "CREATE TABLE dc (id int PRIMARY KEY, g int, v int, note text, extra int);
         CREATE TABLE kl (g int, v int, note text, extra int);
         CREATE TABLE j (id int PRIMARY KEY, dc_id int, w int, memo text);
         CREATE TABLE e (src int, dst int, label text);
         INSERT INTO dc SELECT i, i % 4, i % 7, 'n' || i, i FROM generate_series(1, 40) i;
         INSERT INTO kl SELECT i % 3, i % 5, 'n' || i, i FROM generate_series(1, 40) i;
         INSERT INTO j SELECT i, i % 45, i, 'm' FROM generate_series(1, 30) i;
         INSERT INTO e SELECT i, i + 1, 'l' FROM generate_series(1, 10) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    for (name, query, mode, _) in STREAMS {
        h.create_stream_table(name, query, "1h", *mode)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    h
}

/// Refresh every stream table (upstream first) and compare each with its query;
/// `ctx` names the step in the messages.
async fn refresh_and_check(db: &TestDb, h: &RuntimeHandle, ctx: &str) {
    for (name, query, _, cols) in STREAMS {
        h.refresh(name)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: refresh {name}: {e}"));
        assert_eq!(
            db.difference(query, cols, name).await,
            0,
            "{ctx}: {name} differs from its query"
        );
    }
    for s in pgstream_runtime::status(&db.pool).await.unwrap() {
        assert_eq!(s.status, "ACTIVE", "{ctx}: {s:?}");
    }
}

/// Small changes (differential), many changes (the adaptive switch), a TRUNCATE and
/// refill (the full refresh), each refreshed and checked.
async fn every_path(db: &TestDb, h: &RuntimeHandle, step: &str, round: i32) {
    let base = round * 10_000;
    db.exec(&format!(
        "INSERT INTO dc (id, g, v) VALUES ({base} + 1, 1, 5), ({base} + 2, 2, 6);
         UPDATE dc SET v = v + 1 WHERE id % 5 = 0;
         DELETE FROM dc WHERE id % 11 = 0;
         INSERT INTO kl (g, v) VALUES (1, 9), (1, 9);
         DELETE FROM kl WHERE v = 0;
         INSERT INTO j (id, dc_id, w) VALUES ({base} + 1, {base} + 1, 7);
         UPDATE j SET w = w + 1 WHERE id % 3 = 0;
         INSERT INTO e (src, dst) VALUES ({base} + 1, {base} + 2), (10, {base} + 1);"
    ))
    .await;
    refresh_and_check(db, h, &format!("{step}, differential")).await;
    db.exec(&format!(
        "INSERT INTO dc (id, g, v) SELECT {base} + 100 + i, i % 4, i % 9 FROM generate_series(1, 1500) i;
         INSERT INTO kl (g, v) SELECT i % 3, i % 9 FROM generate_series(1, 1500) i;
         INSERT INTO j (id, dc_id, w) SELECT {base} + 100 + i, {base} + 100 + i, i FROM generate_series(1, 1500) i;
         UPDATE e SET dst = dst WHERE src > 0;"
    ))
    .await;
    refresh_and_check(db, h, &format!("{step}, adaptive")).await;
    let adaptive = db.adaptive_refreshes().await;
    assert!(adaptive > 0, "{step}: no adaptive full refresh ran");
    db.exec(&format!(
        "TRUNCATE dc, kl, j, e;
         INSERT INTO dc (id, g, v) SELECT {base} + i, i % 4, i % 7 FROM generate_series(1, 30) i;
         INSERT INTO kl (g, v) SELECT i % 3, i % 5 FROM generate_series(1, 30) i;
         INSERT INTO j (id, dc_id, w) SELECT {base} + i, {base} + i, i FROM generate_series(1, 20) i;
         INSERT INTO e (src, dst) SELECT i, i + 1 FROM generate_series(1, 8) i;"
    ))
    .await;
    refresh_and_check(db, h, &format!("{step}, full after TRUNCATE")).await;
}

#[tokio::test]
async fn unused_columns_dropped_renamed_or_added_change_nothing() {
    let db = test_db().await;
    let h = setup(&db).await;
    refresh_and_check(&db, &h, "before any change").await;
    db.exec(
        "ALTER TABLE dc ADD COLUMN added int DEFAULT 3;
         ALTER TABLE kl ADD COLUMN added int DEFAULT 3;
         ALTER TABLE j ADD COLUMN added int;
         ALTER TABLE e ADD COLUMN added int;",
    )
    .await;
    every_path(&db, &h, "after ADD COLUMN", 1).await;
    db.exec(
        "ALTER TABLE dc DROP COLUMN note;
         ALTER TABLE kl DROP COLUMN note;
         ALTER TABLE j DROP COLUMN memo;
         ALTER TABLE e DROP COLUMN label;",
    )
    .await;
    every_path(&db, &h, "after DROP COLUMN", 2).await;
    db.exec(
        "ALTER TABLE dc RENAME COLUMN extra TO extra2;
         ALTER TABLE kl RENAME COLUMN extra TO extra2;
         ALTER TABLE j RENAME COLUMN added TO added2;
         ALTER TABLE e RENAME COLUMN added TO added2;",
    )
    .await;
    every_path(&db, &h, "after RENAME COLUMN", 3).await;
}

/// `*` is expanded at creation: a column added to the source later is not part of
/// the stream table, in every mode and path, and refreshes keep working.
#[tokio::test]
async fn star_queries_keep_their_columns_when_a_column_is_added() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE ws (id int PRIMARY KEY, a int, b text);
         CREATE TABLE wk (a int, b text);
         INSERT INTO ws SELECT i, i % 3, 'b' || i FROM generate_series(1, 20) i;
         INSERT INTO wk SELECT i % 3, 'b' || i FROM generate_series(1, 20) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    let streams: &[(&str, &str, Mode, &str, &str)] = &[
        (
            "w_full",
            "SELECT * FROM ws",
            Mode::Full,
            "id, a, b",
            "id, a, b",
        ),
        (
            "w_diff",
            "SELECT * FROM ws",
            Mode::Differential,
            "id, a, b",
            "id, a, b",
        ),
        (
            "w_bag",
            "SELECT * FROM wk",
            Mode::Differential,
            "a, b",
            "a, b",
        ),
        ("w_bag_full", "SELECT * FROM wk", Mode::Full, "a, b", "a, b"),
        (
            "w_union",
            "SELECT * FROM ws WHERE a = 0 UNION ALL SELECT * FROM ws WHERE a = 1",
            Mode::Full,
            "id, a, b",
            "id, a, b",
        ),
        (
            "w_topk",
            "SELECT ws.* FROM ws ORDER BY id DESC LIMIT 3",
            Mode::Differential,
            "id, a, b",
            "id, a, b",
        ),
    ];
    for (name, query, mode, _, _) in streams {
        h.create_stream_table(name, query, "1h", *mode)
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    db.exec(
        "ALTER TABLE ws ADD COLUMN c int DEFAULT 7;
         ALTER TABLE wk ADD COLUMN c int DEFAULT 7;
         INSERT INTO ws VALUES (100, 1, 'x', 1);
         INSERT INTO wk VALUES (1, 'x', 1);",
    )
    .await;
    for truncate in [false, true] {
        if truncate {
            db.exec(
                "TRUNCATE ws, wk; INSERT INTO ws VALUES (1, 0, 'y', 2), (2, 1, 'z', 2);
                 INSERT INTO wk VALUES (0, 'y', 2);",
            )
            .await;
        }
        for (name, query, _, cols, expected) in streams {
            h.refresh(name)
                .await
                .unwrap_or_else(|e| panic!("refresh {name}: {e}"));
            let visible: Option<String> = sqlx::query_scalar(
                "SELECT string_agg(attname::text, ', ' ORDER BY attnum) FROM pg_catalog.pg_attribute
                  WHERE attrelid = pg_catalog.to_regclass($1) AND attnum > 0 AND NOT attisdropped
                    AND attname !~ '^__pgs'",
            )
            .bind(name)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!(visible.as_deref(), Some(*expected), "{name}");
            // The query as compiled: the columns it had at creation.
            let compiled = format!("SELECT {cols} FROM ({query}) q");
            assert_eq!(db.difference(&compiled, cols, name).await, 0, "{name}");
        }
    }
}

/// A refresh that fails because its stored statement no longer matches the schema in
/// a way the drift check does not see (here a function the query calls was dropped)
/// puts the stream table in the `ERROR` state with the message; resume checks again
/// (it plans the stored statements) and refuses until the function is back.
#[tokio::test]
async fn a_refresh_failing_on_the_schema_is_an_error_state_and_resume_checks_again() {
    let db = test_db().await;
    db.exec(
        "CREATE FUNCTION twice(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
         CREATE TABLE fs (id int PRIMARY KEY, v int);
         INSERT INTO fs SELECT i, i FROM generate_series(1, 10) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    let q = "SELECT id, public.twice(v) AS v2 FROM fs";
    h.create_stream_table("s_fn", q, "1h", Mode::Differential)
        .await
        .unwrap();
    db.exec("DROP FUNCTION twice(int); INSERT INTO fs VALUES (11, 11);")
        .await;
    let err = h.refresh("s_fn").await.unwrap_err();
    assert_eq!(err.sqlstate().as_deref(), Some("42883"), "{err}");
    let status = |pool: PgPool| async move {
        pgstream_runtime::status(&pool)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.name == "s_fn")
            .unwrap()
    };
    let s = status(db.pool.clone()).await;
    assert_eq!(s.status, "ERROR", "{s:?}");
    assert!(
        s.status_reason
            .as_deref()
            .is_some_and(|r| r.contains("twice")),
        "{s:?}"
    );
    // Refused while the function is missing; the state stays ERROR, with the reason.
    let err = pgstream_runtime::resume_stream_table(&db.pool, "s_fn")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    assert_eq!(status(db.pool.clone()).await.status, "ERROR");
    db.exec("CREATE FUNCTION twice(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2'")
        .await;
    pgstream_runtime::resume_stream_table(&db.pool, "s_fn")
        .await
        .unwrap();
    h.refresh("s_fn").await.unwrap();
    assert_eq!(db.difference(q, "id, v2", "s_fn").await, 0);
    assert_eq!(status(db.pool.clone()).await.status, "ACTIVE");
}
