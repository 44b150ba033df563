//! Partitioned and inherited sources (issue 11, items 2 and 3): every row change of
//! a partitioned source is captured whichever relation the statement names, at any
//! level; partitions created, attached, detached, dropped or truncated after the
//! stream table are followed (with the DDL event trigger at the DDL, without it at
//! the next refresh: a full refresh); sources with inheritance children, and
//! partitions as sources, are refused in DIFFERENTIAL mode, and becoming one later is
//! drift.

use pgstream::Mode;
use pgstream_tests::compare::{difference, scalar_i64};
use pgstream_tests::{test_db, TestDb};

async fn create(db: &TestDb, name: &str, query: &str, mode: Mode) -> Result<(), String> {
    pgstream::create_stream_table(&db.pool, &pgstream::spec(name, query, "1h", mode).unwrap())
        .await
        .map_err(|e| e.to_string())
}

async fn refresh(db: &TestDb, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SELECT pgstream.refresh_stream_table('{name}')"))
        .execute(&db.pool)
        .await
        .map(|_| ())
}

const EV: &str = "CREATE TABLE ev (id int NOT NULL, at date NOT NULL, kind text NOT NULL, v int, PRIMARY KEY (id, at, kind)) PARTITION BY RANGE (at);
     CREATE TABLE ev_2026 PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
     -- A second level: 2027 is partitioned by kind.
     CREATE TABLE ev_2027 PARTITION OF ev FOR VALUES FROM ('2027-01-01') TO ('2028-01-01') PARTITION BY LIST (kind);
     CREATE TABLE ev_2027_a PARTITION OF ev_2027 FOR VALUES IN ('a');
     CREATE TABLE ev_2027_rest PARTITION OF ev_2027 DEFAULT;
     INSERT INTO ev SELECT g, date '2026-06-01' + (g * 37 % 500), (ARRAY['a','b','c'])[g % 3 + 1], g FROM generate_series(1, 40) g;";

const CASES: [(&str, &str, &str); 2] = [
    (
        "ev_kinds",
        "SELECT kind, count(*) AS n, sum(v) AS s FROM ev GROUP BY kind",
        "kind, n, s",
    ),
    (
        "ev_rows",
        "SELECT id, at, kind, v FROM ev WHERE v % 5 <> 0",
        "id, at, kind, v",
    ),
];

/// A database with `ev` and both stream tables; without the DDL event trigger when
/// `event_trigger` is false (an installation by a role that is not a superuser).
async fn setup(event_trigger: bool) -> TestDb {
    let db = test_db().await;
    db.exec(EV).await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    if !event_trigger {
        db.exec("DROP EVENT TRIGGER pgstream_ddl").await;
    }
    for (name, query, _) in CASES {
        create(&db, name, query, Mode::Differential).await.unwrap();
    }
    db
}

/// Runs `sql`, refreshes both stream tables and compares them with their queries.
async fn step(db: &TestDb, sql: &str, what: &str) {
    db.exec(sql).await;
    for (name, query, cols) in CASES {
        refresh(db, name)
            .await
            .unwrap_or_else(|e| panic!("{what}: refresh {name}: {e}"));
        assert_eq!(
            difference(&db.pool, query, name, cols).await,
            0,
            "{name} after {what}: {sql}"
        );
    }
}

#[tokio::test]
async fn dml_addressed_to_partitions_at_every_level() {
    for event_trigger in [true, false] {
        let db = setup(event_trigger).await;
        let w = if event_trigger { "with" } else { "without" };
        // The reproduction of issue 11: a DELETE addressed to a partition.
        step(&db, "DELETE FROM ev_2026 WHERE id = 2", w).await;
        step(
            &db,
            "INSERT INTO ev_2026 VALUES (100, '2026-03-03', 'b', 7);
             UPDATE ev_2026 SET v = v + 1 WHERE id % 4 = 0;
             INSERT INTO ev_2027_a VALUES (101, '2027-02-02', 'a', 8);
             UPDATE ev_2027 SET v = v * 2 WHERE id % 3 = 0;
             DELETE FROM ev_2027_rest WHERE id % 7 = 0;",
            w,
        )
        .await;
        // Through the parent, rows moving between partitions (and levels).
        step(
            &db,
            "UPDATE ev SET at = date '2027-01-15' + id, kind = 'a' WHERE id % 5 = 1;
             UPDATE ev SET at = date '2026-02-01' + id WHERE id % 5 = 2;
             UPDATE ev_2027 SET kind = 'c' WHERE kind = 'a' AND id % 2 = 0;
             DELETE FROM ev WHERE id % 11 = 0;",
            w,
        )
        .await;
        // A TRUNCATE of one partition.
        step(&db, "TRUNCATE ev_2027_a", w).await;
        step(
            &db,
            "INSERT INTO ev_2027_a VALUES (102, '2027-03-03', 'a', 9)",
            w,
        )
        .await;
    }
}

#[tokio::test]
async fn partitions_created_attached_detached_and_dropped_later() {
    for event_trigger in [true, false] {
        let db = setup(event_trigger).await;
        let w = if event_trigger { "with" } else { "without" };
        // Created after the stream tables, written directly.
        step(
            &db,
            "CREATE TABLE ev_2028 PARTITION OF ev FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
             INSERT INTO ev_2028 VALUES (200, '2028-05-05', 'a', 1), (201, '2028-06-06', 'b', 2);",
            w,
        )
        .await;
        step(
            &db,
            "INSERT INTO ev_2028 VALUES (202, '2028-07-07', 'c', 3); UPDATE ev_2028 SET v = v + 10; DELETE FROM ev_2028 WHERE id = 200;",
            w,
        )
        .await;
        // Attached with rows; sub-partitions of a new level too.
        step(
            &db,
            "CREATE TABLE ev_2029 (id int NOT NULL, at date NOT NULL, kind text NOT NULL, v int, PRIMARY KEY (id, at, kind)) PARTITION BY LIST (kind);
             CREATE TABLE ev_2029_all PARTITION OF ev_2029 DEFAULT;
             INSERT INTO ev_2029 VALUES (300, '2029-01-05', 'a', 4), (301, '2029-02-05', 'b', 6);
             ALTER TABLE ev ATTACH PARTITION ev_2029 FOR VALUES FROM ('2029-01-01') TO ('2030-01-01');",
            w,
        )
        .await;
        step(
            &db,
            "UPDATE ev_2029_all SET v = v + 1; INSERT INTO ev_2029_all VALUES (302, '2029-03-05', 'c', 1);",
            w,
        )
        .await;
        // Detached: its rows leave the source, and its later writes are not changes
        // of the source.
        step(&db, "ALTER TABLE ev DETACH PARTITION ev_2028", w).await;
        step(
            &db,
            "INSERT INTO ev_2028 VALUES (203, '2028-08-08', 'a', 5); DELETE FROM ev_2028 WHERE id = 201;",
            w,
        )
        .await;
        // Dropped.
        step(&db, "DROP TABLE ev_2026", w).await;
        step(&db, "INSERT INTO ev VALUES (400, '2027-04-04', 'b', 3)", w).await;
        // The detached table has no capture left.
        assert_eq!(
            scalar_i64(
                &db.pool,
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ev_2028'::regclass AND tgname LIKE '\\_\\_pgs%'"
            )
            .await,
            0,
            "{w}"
        );
        // Dropping the stream tables removes the capture of every member.
        for (name, _, _) in CASES {
            pgstream::drop_stream_table(&db.pool, name).await.unwrap();
        }
        assert_eq!(
            scalar_i64(
                &db.pool,
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '\\_\\_pgs\\_capture%'"
            )
            .await,
            0,
            "{w}"
        );
    }
}

#[tokio::test]
async fn inheritance_is_refused_and_becoming_a_parent_later_is_drift() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE animal (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE dog (breed text) INHERITS (animal);
         INSERT INTO animal VALUES (1, 'cat'); INSERT INTO dog VALUES (2, 'rex', 'pug');
         CREATE TABLE plant (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO plant VALUES (1, 'fern');",
    )
    .await;
    let e = create(
        &db,
        "animals",
        "SELECT id, name FROM animal",
        Mode::Differential,
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("source table public.animal has inheritance children (public.dog)")
            && e.contains("FULL mode"),
        "{e}"
    );
    // A child as a source: writes through the parent would not be captured.
    let e = create(&db, "dogs", "SELECT id, name FROM dog", Mode::Differential)
        .await
        .unwrap_err();
    assert!(
        e.contains(
            "source table public.dog is a partition or an inheritance child of public.animal"
        ),
        "{e}"
    );
    // A partition as a source, likewise.
    db.exec(EV).await;
    let e = create(&db, "ev26", "SELECT id, v FROM ev_2026", Mode::Differential)
        .await
        .unwrap_err();
    assert!(
        e.contains("source table public.ev_2026 is a partition"),
        "{e}"
    );
    // FULL mode recomputes: accepted.
    create(&db, "animals", "SELECT id, name FROM animal", Mode::Full)
        .await
        .unwrap();
    db.exec("INSERT INTO dog VALUES (3, 'fido', 'lab')").await;
    refresh(&db, "animals").await.unwrap();
    assert_eq!(
        difference(
            &db.pool,
            "SELECT id, name FROM animal",
            "animals",
            "id, name"
        )
        .await,
        0
    );

    // A source that gets an inheritance child after creation: drift, found at the
    // DDL (event trigger) or at the next refresh.
    create(
        &db,
        "plants",
        "SELECT id, name FROM plant",
        Mode::Differential,
    )
    .await
    .unwrap();
    db.exec("CREATE TABLE tree (height int) INHERITS (plant)")
        .await;
    let status: String = sqlx::query_scalar(
        "SELECT status FROM pgstream.pgs_stream_tables WHERE table_name = 'plants'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(status, "ERROR");
    db.exec("DROP EVENT TRIGGER pgstream_ddl; DROP TABLE tree;")
        .await;
    create(&db, "plants2", "SELECT id FROM plant", Mode::Differential)
        .await
        .unwrap();
    db.exec("CREATE TABLE tree2 (height int) INHERITS (plant)")
        .await;
    let e = refresh(&db, "plants2").await.unwrap_err().to_string();
    assert!(
        e.contains("source table public.plant has inheritance children (public.tree2)"),
        "{e}"
    );
}

#[tokio::test]
async fn unlogged_sources_work_and_foreign_tables_are_refused() {
    let db = test_db().await;
    db.exec(
        "CREATE UNLOGGED TABLE ul (id int PRIMARY KEY, g int, v int);
         INSERT INTO ul SELECT i, i % 3, i FROM generate_series(1, 10) i;
         CREATE EXTENSION postgres_fdw;
         CREATE SERVER elsewhere FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'nowhere');
         CREATE FOREIGN TABLE ft (id int, v int) SERVER elsewhere;",
    )
    .await;
    let q = "SELECT g, count(*) AS n, sum(v) AS s FROM ul GROUP BY g";
    create(&db, "ul_sums", q, Mode::Differential).await.unwrap();
    db.exec("UPDATE ul SET g = g + 1 WHERE id < 4; DELETE FROM ul WHERE id = 9; INSERT INTO ul VALUES (20, 0, 20)")
        .await;
    refresh(&db, "ul_sums").await.unwrap();
    assert_eq!(difference(&db.pool, q, "ul_sums", "g, n, s").await, 0);
    for mode in [Mode::Differential, Mode::Full] {
        let e = create(&db, "fts", "SELECT id, v FROM ft", mode)
            .await
            .unwrap_err();
        assert!(e.contains("source public.ft is a foreign table"), "{e}");
    }
}
