//! Change capture and the snapshot frontier against the traps in PRIOR_ART.md:
//! a transaction that stays open across a refresh (a high-water mark would lose its
//! rows), writes inside savepoints (sub-transaction ids), rolled-back savepoints, and
//! concurrent refreshes of one stream table.

use pgstream::Mode;
use pgstream_tests::{test_db, TestDb};
use sqlx::{Acquire, PgPool};

const Q: &str = "SELECT k, count(*) AS n, sum(v) AS s FROM items GROUP BY k";

async fn setup() -> TestDb {
    let db = test_db().await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, k int, v int); INSERT INTO items SELECT g, g % 3, g FROM generate_series(1, 9) g;")
        .await;
    pgstream::create_stream_table(
        &db.pool,
        &pgstream::spec("sums", Q, "1h", Mode::Differential).unwrap(),
    )
    .await
    .unwrap();
    db
}

async fn refresh(pool: &PgPool) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT pgstream.refresh_stream_table('sums')")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Rows that differ between the stream table and its query, both ways.
async fn difference(pool: &PgPool) -> i64 {
    pgstream_tests::compare::difference(pool, Q, "sums", "k, n, s").await
}

async fn total(pool: &PgPool) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT sum(n)::bigint FROM sums")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_transaction_open_across_a_refresh_is_picked_up_by_the_next() {
    let db = setup().await;
    let mut a = db.connect().await;
    let mut ta = a.begin().await.unwrap();
    // A writes first (its buffer row gets the lower change id) and stays open.
    sqlx::query("INSERT INTO items VALUES (100, 1, 100)")
        .execute(&mut *ta)
        .await
        .unwrap();
    // B writes later and commits.
    sqlx::query("INSERT INTO items VALUES (101, 1, 101)")
        .execute(&db.pool)
        .await
        .unwrap();
    refresh(&db.pool).await;
    assert_eq!(total(&db.pool).await, 10, "B's row only");
    assert_eq!(difference(&db.pool).await, 0);
    ta.commit().await.unwrap();
    refresh(&db.pool).await;
    assert_eq!(
        total(&db.pool).await,
        11,
        "A's row arrives with the next refresh"
    );
    assert_eq!(difference(&db.pool).await, 0);
    // and it is not applied twice
    refresh(&db.pool).await;
    assert_eq!(total(&db.pool).await, 11);
}

#[tokio::test]
async fn writes_inside_savepoints_wait_for_the_top_level_commit() {
    let db = setup().await;
    let mut a = db.connect().await;
    let mut ta = a.begin().await.unwrap();
    let mut sp = ta.begin().await.unwrap(); // SAVEPOINT
    sqlx::query("INSERT INTO items VALUES (200, 2, 5)")
        .execute(&mut *sp)
        .await
        .unwrap();
    sp.commit().await.unwrap(); // RELEASE SAVEPOINT
    let mut sp2 = ta.begin().await.unwrap();
    sqlx::query("INSERT INTO items VALUES (201, 2, 7)")
        .execute(&mut *sp2)
        .await
        .unwrap();
    sp2.rollback().await.unwrap(); // ROLLBACK TO SAVEPOINT: never happened
                                   // A PL/pgSQL exception block is a sub-transaction too.
    sqlx::raw_sql(
        "DO $$ BEGIN BEGIN INSERT INTO items VALUES (202, 2, 9); EXCEPTION WHEN others THEN NULL; END; END $$",
    )
    .execute(&mut *ta)
    .await
    .unwrap();
    refresh(&db.pool).await; // A still open: nothing of it may appear
    assert_eq!(total(&db.pool).await, 9);
    assert_eq!(difference(&db.pool).await, 0);
    ta.commit().await.unwrap();
    refresh(&db.pool).await;
    assert_eq!(
        total(&db.pool).await,
        11,
        "rows 200 and 202, not the rolled-back 201"
    );
    assert_eq!(difference(&db.pool).await, 0);
}

#[tokio::test]
async fn a_rolled_back_writer_leaves_no_trace() {
    let db = setup().await;
    let mut a = db.connect().await;
    let mut ta = a.begin().await.unwrap();
    sqlx::query("UPDATE items SET k = k + 1")
        .execute(&mut *ta)
        .await
        .unwrap();
    sqlx::query("DELETE FROM items WHERE id < 4")
        .execute(&mut *ta)
        .await
        .unwrap();
    ta.rollback().await.unwrap();
    assert_eq!(refresh(&db.pool).await, 0);
    assert_eq!(difference(&db.pool).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_of_one_stream_table_apply_each_change_once() {
    let db = setup().await;
    let pool = db.new_pool(8).await;
    for round in 0..20 {
        sqlx::query("UPDATE items SET v = v + 1, k = (k + 1) % 4 WHERE id % 2 = $1")
            .bind(round % 2)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO items VALUES ($1, $1 % 5, 1)")
            .bind(1000 + round)
            .execute(&pool)
            .await
            .unwrap();
        let mut handles = Vec::new();
        for _ in 0..4 {
            let p = pool.clone();
            handles.push(tokio::spawn(async move { refresh(&p).await }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(difference(&pool).await, 0, "round {round}");
    }
}

#[tokio::test]
async fn buffers_are_trimmed_after_every_consumer_has_seen_the_changes() {
    let db = setup().await;
    pgstream::create_stream_table(
        &db.pool,
        &pgstream::spec(
            "big",
            "SELECT id, v FROM items WHERE v > 5",
            "1h",
            Mode::Differential,
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let buffered = |pool: PgPool| async move {
        let oid: i64 = sqlx::query_scalar("SELECT 'items'::regclass::oid::bigint")
            .fetch_one(&pool)
            .await
            .unwrap();
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT count(*) FROM pgstream_changes.changes_{oid}"
        ))
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    sqlx::query("UPDATE items SET v = v + 10")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        buffered(db.pool.clone()).await,
        18,
        "-old and +new of 9 rows"
    );
    refresh(&db.pool).await; // `sums` saw them; `big` did not yet
    assert_eq!(buffered(db.pool.clone()).await, 18);
    sqlx::query_scalar::<_, i64>("SELECT pgstream.refresh_stream_table('big')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(buffered(db.pool.clone()).await, 0);
}

#[tokio::test]
async fn unqualified_user_functions_fail_at_creation_and_qualified_ones_work() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, k int, v int); INSERT INTO items VALUES (1, 1, 1);
         CREATE FUNCTION public.twice(x int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT 2 * x';",
    )
    .await;
    let bad = pgstream::spec(
        "t1",
        "SELECT id, twice(v) AS w FROM items",
        "1h",
        Mode::Differential,
    )
    .unwrap();
    let err = pgstream::create_stream_table(&db.pool, &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("twice"), "{err}");
    let good = pgstream::spec(
        "t2",
        "SELECT id, public.twice(v) AS w FROM items",
        "1h",
        Mode::Differential,
    )
    .unwrap();
    pgstream::create_stream_table(&db.pool, &good)
        .await
        .unwrap();
    sqlx::query("INSERT INTO items VALUES (2, 1, 21)")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("SELECT pgstream.refresh_stream_table('t2')")
        .execute(&db.pool)
        .await
        .unwrap();
    let w: i32 = sqlx::query_scalar("SELECT w FROM t2 WHERE id = 2")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(w, 42);
}

/// A transaction that changes a source and then refreshes sees its own changes and
/// applies them; the frontier it stores must count them as seen, or the next refresh
/// would apply them a second time (exactly once, DESIGN.md invariant 2).
#[tokio::test]
async fn changes_and_a_refresh_in_one_transaction_are_applied_once() {
    let db = setup().await;
    let mut c = db.connect().await;
    let mut tx = c.begin().await.unwrap();
    sqlx::query("INSERT INTO items VALUES (300, 1, 5), (301, 2, 6)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE items SET v = v + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT pgstream.refresh_stream_table('sums')")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO items VALUES (302, 0, 7)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    refresh(&db.pool).await;
    assert_eq!(total(&db.pool).await, 12, "9 + 3 rows, each counted once");
    assert_eq!(difference(&db.pool).await, 0);
    refresh(&db.pool).await;
    assert_eq!(difference(&db.pool).await, 0);
}

#[tokio::test]
async fn user_functions_marked_volatile_are_rejected_in_differential_mode() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY, k int, v int); INSERT INTO items VALUES (1, 1, 1);
         CREATE FUNCTION public.jitter(x int) RETURNS int VOLATILE LANGUAGE sql AS 'SELECT x';
         CREATE FUNCTION public.steady(x int) RETURNS int STABLE LANGUAGE sql AS 'SELECT x';",
    )
    .await;
    let q = "SELECT id, public.jitter(v) AS j FROM items";
    let err = pgstream::create_stream_table(
        &db.pool,
        &pgstream::spec("j1", q, "1h", Mode::Differential).unwrap(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("public.jitter") && err.contains("VOLATILE") && err.contains("FULL mode"),
        "{err}"
    );
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pgstream.pgs_stream_tables")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(tables, 0, "nothing installed");
    pgstream::create_stream_table(
        &db.pool,
        &pgstream::spec("j2", q, "1h", Mode::Full).unwrap(),
    )
    .await
    .unwrap();
    let stable = "SELECT id, public.steady(v) AS s FROM items";
    pgstream::create_stream_table(
        &db.pool,
        &pgstream::spec("s1", stable, "1h", Mode::Differential).unwrap(),
    )
    .await
    .unwrap();
}

/// Columns of a change buffer, in order (without pgstream's own).
async fn buffer_columns(pool: &PgPool, table: &str) -> Vec<String> {
    sqlx::query_scalar(&format!(
        "SELECT attname::text FROM pg_attribute
          WHERE attrelid = ('pgstream_changes.changes_' || '{table}'::regclass::oid)::regclass
            AND attnum > 0 AND NOT attisdropped AND attname NOT LIKE '\\_\\_pgs\\_%'
          ORDER BY attnum"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_buffer_holds_the_union_of_the_columns_its_consumers_read() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE wide (id int PRIMARY KEY, a int, b text, c int, note text);
         INSERT INTO wide SELECT g, g % 3, 'b' || g, g, 'n' || g FROM generate_series(1, 30) g;",
    )
    .await;
    let create = |name: &'static str, q: &'static str| {
        let pool = db.pool.clone();
        async move {
            pgstream::create_stream_table(
                &pool,
                &pgstream::spec(name, q, "1h", Mode::Differential).unwrap(),
            )
            .await
            .unwrap()
        }
    };
    let qa = "SELECT a, count(*) AS n FROM wide GROUP BY a";
    let qb = "SELECT id, b FROM wide WHERE c > 10";
    create("by_a", qa).await;
    // The primary key (net effect per key) and what the query reads.
    assert_eq!(buffer_columns(&db.pool, "wide").await, ["id", "a"]);

    // A writer is in the middle of a transaction when the second consumer, which
    // needs more columns, is created: the creation waits for it, and its rows
    // (captured without those columns) are in the new consumer's initial state.
    let mut writer = db.pool.begin().await.unwrap();
    sqlx::query("UPDATE wide SET a = a + 1, b = b || '!', c = c + 100 WHERE id <= 5")
        .execute(&mut *writer)
        .await
        .unwrap();
    let creating = create("by_b", qb);
    tokio::pin!(creating);
    tokio::select! {
        _ = &mut creating => panic!("the creation must wait for the writer"),
        _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
    }
    writer.commit().await.unwrap();
    creating.await;
    assert_eq!(
        buffer_columns(&db.pool, "wide").await,
        ["id", "a", "b", "c"]
    );

    db.exec(
        "UPDATE wide SET b = 'x' || id, c = c - 15 WHERE id % 4 = 0;
         DELETE FROM wide WHERE id = 7; INSERT INTO wide VALUES (99, 2, 'new', 50, 'z');",
    )
    .await;
    for (name, q, cols) in [("by_a", qa, "a, n"), ("by_b", qb, "id, b")] {
        sqlx::query_scalar::<_, i64>(&format!("SELECT pgstream.refresh_stream_table('{name}')"))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let diff: i64 = sqlx::query_scalar(&format!(
            "SELECT (SELECT count(*) FROM (({q}) EXCEPT ALL (SELECT {cols} FROM {name})) x)
                  + (SELECT count(*) FROM ((SELECT {cols} FROM {name}) EXCEPT ALL ({q})) y)"
        ))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(diff, 0, "{name}");
    }
    // `note` is read by nobody and never captured.
    assert!(!buffer_columns(&db.pool, "wide")
        .await
        .contains(&"note".to_string()));
}

#[tokio::test]
async fn buffers_stay_bounded_by_the_slowest_consumer_under_steady_writes() {
    // Steady writes; one consumer refreshes after every round, another every fifth
    // round. After each refresh the buffer holds exactly the images the slower one
    // has not consumed: never more than five rounds' worth, and none once both caught up.
    let db = test_db().await;
    db.exec(
        "CREATE TABLE steady (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO steady SELECT g, g FROM generate_series(1, 100) g;",
    )
    .await;
    for (name, q) in [
        ("fast", "SELECT id, v FROM steady WHERE v % 2 = 0"),
        (
            "slow",
            "SELECT v % 10 AS k, count(*) AS n FROM steady GROUP BY v % 10",
        ),
    ] {
        pgstream::create_stream_table(
            &db.pool,
            &pgstream::spec(name, q, "1h", Mode::Differential).unwrap(),
        )
        .await
        .unwrap();
    }
    let buffered = || async {
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT count(*) FROM pgstream_changes.changes_{}",
            sqlx::query_scalar::<_, i64>("SELECT 'steady'::regclass::oid::int8")
                .fetch_one(&db.pool)
                .await
                .unwrap()
        ))
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let refresh = |name: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT pgstream.refresh_stream_table($1)")
                .bind(name)
                .fetch_one(&pool)
                .await
                .unwrap();
        }
    };
    // Per round: 5 inserts (one image each) and 10 updates (two images each).
    const PER_ROUND: i64 = 5 + 2 * 10;
    let mut next = 101;
    let mut since_slow = 0i64;
    for round in 1..=40 {
        db.exec(&format!(
            "INSERT INTO steady SELECT g, g FROM generate_series({next}, {}) g;
             UPDATE steady SET v = v + 1 WHERE id BETWEEN {} AND {};",
            next + 4,
            1 + (round % 9) * 10,
            10 + (round % 9) * 10
        ))
        .await;
        next += 5;
        since_slow += PER_ROUND;
        refresh("fast").await;
        if round % 5 == 0 {
            refresh("slow").await;
            since_slow = 0;
        }
        let n = buffered().await;
        assert_eq!(n, since_slow, "round {round}");
        assert!(n <= 5 * PER_ROUND, "round {round}: {n}");
    }
    assert_eq!(buffered().await, 0);
}
