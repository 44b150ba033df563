//! One statement, several trigger-level statements on one table (issue 11, item 1).
//! A nested statement (an RI action, a user trigger's own DML, a BEFORE trigger's
//! DML, a writable CTE's other part) fires its capture trigger before or after the
//! outer statement's, in an order that is not the order of its modifications: the
//! window must give the same net effect whatever the order of the images.

use pgstream::Mode;
use pgstream_tests::compare::difference;
use pgstream_tests::{test_db, TestDb};

async fn create(db: &TestDb, name: &str, query: &str) {
    pgstream::create_stream_table(
        &db.pool,
        &pgstream::spec(name, query, "1h", Mode::Differential).unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("create {name}: {e}"));
}

async fn refresh(db: &TestDb, name: &str) {
    sqlx::query(&format!("SELECT pgstream.refresh_stream_table('{name}')"))
        .execute(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("refresh {name}: {e}"));
}

/// Creates the stream tables `(name, query, columns)`, runs `dml`, refreshes each and
/// compares it with its query.
async fn check(setup: &str, cases: &[(&str, &str, &str)], dml: &[&str]) {
    let db = test_db().await;
    db.exec(setup).await;
    for (name, query, _) in cases {
        create(&db, name, query).await;
    }
    for (i, step) in dml.iter().enumerate() {
        db.exec(step).await;
        for (name, query, cols) in cases {
            refresh(&db, name).await;
            assert_eq!(
                difference(&db.pool, query, name, cols).await,
                0,
                "{name} after step {i}: {step}"
            );
        }
    }
}

const SR: &str = "CREATE TABLE sr (a int PRIMARY KEY, b int REFERENCES sr(a) ON UPDATE CASCADE);
                  INSERT INTO sr VALUES (1, NULL), (2, 1);";

#[tokio::test]
async fn self_referencing_on_update_cascade() {
    // The reproduction of issue 11: the cascade's images of key 12 are captured
    // before the outer UPDATE's.
    check(
        SR,
        &[
            ("sr_rows", "SELECT a, b FROM sr", "a, b"),
            (
                "sr_agg",
                "SELECT b, count(*) AS n FROM sr GROUP BY b",
                "b, n",
            ),
        ],
        &[
            "UPDATE sr SET a = a + 10",
            "INSERT INTO sr VALUES (3, 12), (4, 3); UPDATE sr SET a = a * 2 WHERE a < 20",
            "UPDATE sr SET a = a + 100",
        ],
    )
    .await;
}

#[tokio::test]
async fn self_referencing_on_delete_set_null_and_cascade() {
    check(
        "CREATE TABLE sn (a int PRIMARY KEY, b int REFERENCES sn(a) ON DELETE SET NULL, c int NOT NULL);
         CREATE TABLE sd (a int PRIMARY KEY, b int REFERENCES sd(a) ON DELETE CASCADE ON UPDATE CASCADE, c int NOT NULL);
         INSERT INTO sn VALUES (1, NULL, 0), (2, 1, 0), (3, 1, 0);
         INSERT INTO sd VALUES (1, NULL, 0), (2, 1, 0), (3, 2, 0), (4, NULL, 0);",
        &[
            ("sn_rows", "SELECT a, b, c FROM sn", "a, b, c"),
            ("sd_rows", "SELECT a, b, c FROM sd", "a, b, c"),
        ],
        &[
            // The writable CTE updates row 2, the SET NULL action updates it again.
            "WITH u AS (UPDATE sn SET c = c + 1 WHERE a IN (2, 3) RETURNING a) DELETE FROM sn WHERE a = 1",
            // The CTE updates rows the DELETE's cascade then deletes, and the key
            // update cascades into rows the CTE wrote.
            "WITH u AS (UPDATE sd SET c = c + 1 RETURNING a) DELETE FROM sd WHERE a = 2",
            "INSERT INTO sd VALUES (5, 4, 0), (6, 5, 0);
             WITH u AS (UPDATE sd SET c = c + 7 WHERE a >= 5 RETURNING a) UPDATE sd SET a = a + 10 WHERE a = 4",
        ],
    )
    .await;
}

#[tokio::test]
async fn after_row_trigger_updates_the_row_its_statement_wrote() {
    check(
        "CREATE TABLE ut (id int PRIMARY KEY, n int NOT NULL, note text);
         CREATE FUNCTION ut_bump() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN UPDATE ut SET n = n + 1, note = 'bumped' WHERE id = NEW.id; RETURN NULL; END $$;
         CREATE TRIGGER ut_bump AFTER INSERT ON ut FOR EACH ROW EXECUTE FUNCTION ut_bump();
         INSERT INTO ut VALUES (1, 0, 'seed');",
        &[
            ("ut_rows", "SELECT id, n, note FROM ut", "id, n, note"),
            (
                "ut_sum",
                "SELECT note, sum(n) AS s, count(*) AS c FROM ut GROUP BY note",
                "note, s, c",
            ),
        ],
        &[
            "INSERT INTO ut VALUES (2, 10, 'x'), (3, 20, 'y')",
            "DELETE FROM ut WHERE id = 2; INSERT INTO ut VALUES (2, 5, 'z')",
        ],
    )
    .await;
}

#[tokio::test]
async fn before_row_trigger_deletes_and_inserts_the_same_key() {
    check(
        "CREATE TABLE bt (id int PRIMARY KEY, v text NOT NULL);
         -- An upsert by trigger: a row replaces the one with its key, also one the
         -- same statement wrote a moment before; a 'copy' row also inserts a copy
         -- under another key, which a later row of the statement may replace.
         CREATE FUNCTION bt_replace() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             DELETE FROM bt WHERE id = NEW.id;
             IF NEW.id < 100 AND NEW.v LIKE 'copy%' THEN
                 INSERT INTO bt VALUES (NEW.id + 100, NEW.v);
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER bt_replace BEFORE INSERT ON bt FOR EACH ROW EXECUTE FUNCTION bt_replace();
         INSERT INTO bt VALUES (1, 'seed');",
        &[
            ("bt_rows", "SELECT id, v FROM bt", "id, v"),
            (
                "bt_count",
                "SELECT v, count(*) AS n FROM bt GROUP BY v",
                "v, n",
            ),
        ],
        &[
            "INSERT INTO bt VALUES (1, 'a'), (2, 'b'), (1, 'c'), (2, 'd'), (3, 'e')",
            "INSERT INTO bt VALUES (3, 'f'), (3, 'g')",
            "INSERT INTO bt VALUES (4, 'copy'), (104, 'w'), (4, 'copy2')",
        ],
    )
    .await;
}

#[tokio::test]
async fn writable_cte_touches_one_table_twice() {
    check(
        "CREATE TABLE wc (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO wc SELECT g, g FROM generate_series(1, 5) g;",
        &[
            ("wc_rows", "SELECT id, v FROM wc", "id, v"),
            ("wc_sum", "SELECT sum(v) AS s, count(*) AS n FROM wc", "s, n"),
        ],
        &[
            // The INSERT ends first (LIMIT), so its capture fires first, and the
            // DELETE runs to its end after it: key 1 is deleted, then inserted, but
            // its images are captured the other way round.
            "WITH d AS (DELETE FROM wc WHERE id IN (1, 2) RETURNING id, v) INSERT INTO wc SELECT id, v + 100 FROM d LIMIT 1",
            "WITH d AS (DELETE FROM wc WHERE id <= 2 RETURNING id, v) INSERT INTO wc SELECT id, v + 100 FROM d",
            "WITH i AS (INSERT INTO wc VALUES (9, 9) RETURNING id) DELETE FROM wc WHERE id = 3",
            "WITH d AS (DELETE FROM wc WHERE id = 9 RETURNING id, v) INSERT INTO wc SELECT id, v FROM d",
        ],
    )
    .await;
}

const PC: &str = "CREATE TABLE p (id int PRIMARY KEY, name text NOT NULL);
     CREATE TABLE c (id int PRIMARY KEY, pid int REFERENCES p(id) ON UPDATE CASCADE ON DELETE SET NULL, note text NOT NULL);
     INSERT INTO p VALUES (1, 'one'), (2, 'two');
     INSERT INTO c VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c');";

#[tokio::test]
async fn ri_actions_on_a_table_both_statements_touch() {
    check(
        PC,
        &[
            ("c_rows", "SELECT id, pid, note FROM c", "id, pid, note"),
            (
                "pc_join",
                "SELECT c.id, c.note, p.name FROM c JOIN p ON p.id = c.pid",
                "id, note, name",
            ),
        ],
        &[
            // The CTE writes c, and the key update's cascade writes the same rows.
            "WITH u AS (UPDATE c SET note = note || '!' WHERE pid = 1 RETURNING id) UPDATE p SET id = 11 WHERE id = 1",
            "WITH u AS (UPDATE c SET note = note || '?' RETURNING id) DELETE FROM p WHERE id = 2",
        ],
    )
    .await;
}

#[tokio::test]
async fn nested_statements_in_one_transaction_with_a_refresh_and_across_refreshes() {
    let db = test_db().await;
    db.exec(SR).await;
    db.exec(PC).await;
    let cases = [
        ("sr_rows", "SELECT a, b FROM sr", "a, b"),
        (
            "pc_join",
            "SELECT c.id, c.pid, c.note, p.name FROM c JOIN p ON p.id = c.pid",
            "id, pid, note, name",
        ),
    ];
    for (name, query, _) in cases {
        create(&db, name, query).await;
    }
    // One transaction: nested statements, a refresh in the middle (it consumes the
    // transaction's own rows so far), more nested statements, a refresh, commit.
    db.exec(
        "BEGIN;
         UPDATE sr SET a = a + 10;
         WITH u AS (UPDATE c SET note = note || '1' RETURNING id) UPDATE p SET id = id + 10;
         SELECT pgstream.refresh_stream_table('sr_rows');
         SELECT pgstream.refresh_stream_table('pc_join');
         UPDATE sr SET a = a + 10;
         WITH u AS (UPDATE c SET note = note || '2' WHERE id = 1 RETURNING id) UPDATE p SET id = id + 10 WHERE id = 11;
         SELECT pgstream.refresh_stream_table('sr_rows');
         UPDATE sr SET a = a + 10;
         COMMIT;",
    )
    .await;
    for (name, query, cols) in cases {
        refresh(&db, name).await;
        assert_eq!(difference(&db.pool, query, name, cols).await, 0, "{name}");
    }
    // Across refreshes: several transactions, each with nested statements, between
    // two refreshes.
    db.exec("UPDATE sr SET a = a + 1000").await;
    db.exec("UPDATE sr SET a = a - 1000; INSERT INTO sr VALUES (100, 31), (101, 100)")
        .await;
    db.exec("WITH u AS (UPDATE c SET note = note || '3' RETURNING id) UPDATE p SET id = id + 1")
        .await;
    db.exec("UPDATE p SET id = id - 1").await;
    for (name, query, cols) in cases {
        refresh(&db, name).await;
        assert_eq!(difference(&db.pool, query, name, cols).await, 0, "{name}");
    }
    db.exec("UPDATE sr SET a = a + 1000").await;
    for (name, query, cols) in cases {
        refresh(&db, name).await;
        assert_eq!(difference(&db.pool, query, name, cols).await, 0, "{name}");
    }
}

#[tokio::test]
async fn images_are_told_apart_by_value_not_by_equality() {
    // The window consolidates images: json and point have no equality, 1.0 = 1.00
    // and -0 = 0 are equal but print differently.
    check(
        "CREATE TABLE ex (id int PRIMARY KEY, x numeric, f float8, j json, p point, k int);
         CREATE FUNCTION ex_touch() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN UPDATE ex SET k = k + 1 WHERE id = NEW.id AND NEW.k < 100; RETURN NULL; END $$;
         CREATE TRIGGER ex_touch AFTER UPDATE OF x, f, j, p ON ex FOR EACH ROW EXECUTE FUNCTION ex_touch();
         INSERT INTO ex VALUES (1, 1.0, 0, '{\"a\": 1}', '(1,1)', 0), (2, 2.0, 1, '[]', '(0,0)', 0);",
        &[(
            "ex_rows",
            "SELECT id, x::text AS x, f::text AS f, j::text AS j, p::text AS p, k FROM ex",
            "id, x, f, j, p, k",
        )],
        &[
            "UPDATE ex SET x = 1.00, f = '-0', j = '{\"a\":  1}', p = '(1.0,1)'",
            "UPDATE ex SET x = 1.0, f = 0, j = '{\"a\": 1}' WHERE id = 1",
            "UPDATE ex SET k = 0",
        ],
    )
    .await;
}
