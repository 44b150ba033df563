//! `WITH RECURSIVE` under insert-only windows: the new rows are derived semi-naively
//! (seeded from the inserted rows, joined with the stored result) and appended; a
//! window with an update or a delete recomputes and applies the difference. Random
//! insert batches (both sources at once, duplicate rows, rows whose parents arrive
//! later or never), compared with the query after every refresh; and the same
//! queries through the equivalence oracle in its insert-only mode (200 batches each),
//! which also requires every refresh with changes to have taken the semi-naive path.

use pgstream::Mode;
use pgstream_tests::compare::difference;
use pgstream_tests::oracle::{Domain, Oracle};
use pgstream_tests::test_db;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

async fn last_strategy(pool: &PgPool, name: &str) -> String {
    sqlx::query_scalar("SELECT last_strategy FROM pgstream.pg_stat_stream_tables WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn refresh(pool: &PgPool, name: &str) {
    sqlx::query_scalar::<_, i64>("SELECT pgstream.refresh_stream_table($1)")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap();
}

/// Paths in a forest: one source, children inserted before their parents.
const PATHS: &str = "WITH RECURSIVE tree AS (
    SELECT id, name, name AS path, 0 AS depth FROM nodes WHERE parent_id IS NULL
    UNION ALL
    SELECT n.id, n.name, tree.path || '/' || n.name, tree.depth + 1
      FROM nodes n JOIN tree ON n.parent_id = tree.id)
  SELECT id, path, name, depth FROM tree";

/// Reachability in a graph with cycles (bounded depth): a node reached by several
/// paths of one length is a duplicate row (bag semantics), three factors in the step.
const REACH: &str = "WITH RECURSIVE reach AS (
    SELECT n.id, n.name, 0 AS depth FROM nodes n WHERE n.parent_id IS NULL
    UNION ALL
    SELECT n.id, n.name, reach.depth + 1
      FROM reach JOIN edges e ON e.src = reach.id JOIN nodes n ON n.id = e.dst WHERE reach.depth < 3)
  SELECT id, name, depth FROM reach";

/// Two sources in the base case and in the step, the CTE second in the step's FROM,
/// explicit CTE column names, a reordered output.
const CHAIN: &str = "WITH RECURSIVE r (id, label, lvl) AS (
    SELECT e.id, e.name || '@' || t.name, 0 FROM emps e JOIN teams t ON t.id = e.team WHERE e.boss IS NULL
    UNION ALL
    SELECT e.id, r.label || '>' || e.name || '@' || t.name, r.lvl + 1
      FROM emps e JOIN r ON e.boss = r.id JOIN teams t ON t.id = e.team WHERE r.lvl < 6)
  SELECT lvl, label, id FROM r";

/// The stream tables under test: name, query, output columns.
const STREAM_TABLES: [(&str, &str, &str); 3] = [
    ("paths", PATHS, "id, path, name, depth"),
    ("reach", REACH, "id, name, depth"),
    ("chain", CHAIN, "lvl, label, id"),
];

#[tokio::test]
async fn insert_only_batches_extend_the_result_semi_naively() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE nodes (id int PRIMARY KEY, parent_id int, name text NOT NULL);
         INSERT INTO nodes VALUES (1, NULL, 'a'), (2, 1, 'b'), (3, 1, 'b'), (4, 2, 'c');
         CREATE TABLE teams (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE emps (id int PRIMARY KEY, name text NOT NULL, boss int, team int NOT NULL);
         INSERT INTO teams VALUES (1, 't1'), (2, 't2');
         INSERT INTO emps VALUES (1, 'ceo', NULL, 1), (2, 'vp', 1, 2);
         CREATE TABLE edges (id int PRIMARY KEY, src int NOT NULL, dst int NOT NULL);
         INSERT INTO edges VALUES (1, 1, 2), (2, 1, 3), (3, 2, 4), (4, 3, 4);",
    )
    .await;
    for (name, q, _) in STREAM_TABLES {
        pgstream::create_stream_table(
            &db.pool,
            &pgstream::spec(name, q, "1h", Mode::Differential).unwrap(),
        )
        .await
        .unwrap();
    }
    let explain: String =
        sqlx::query_scalar("SELECT strategy FROM pgstream.pgs_status() WHERE name = 'paths'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(explain.contains("semi-naively"), "{explain}");

    let mut rng = StdRng::seed_from_u64(
        std::env::var("PGS_ORACLE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(7),
    );
    let (mut next_node, mut next_emp, mut next_team, mut next_edge) = (5, 3, 3, 5);
    let names = ["a", "b", "c"];
    for round in 0..40 {
        // One or two transactions of inserts into every source.
        for _ in 0..rng.gen_range(1..=2) {
            let mut sql = String::new();
            for _ in 0..rng.gen_range(1..=6) {
                // A parent that exists, that comes later, or none (a new root).
                let parent = match rng.gen_range(0..10) {
                    0 => "NULL".to_string(),
                    1 => (next_node + rng.gen_range(1..4)).to_string(),
                    _ => rng.gen_range(1..next_node).to_string(),
                };
                sql.push_str(&format!(
                    "INSERT INTO nodes VALUES ({next_node}, {parent}, '{}');",
                    names[rng.gen_range(0..3)]
                ));
                next_node += 1;
            }
            for _ in 0..rng.gen_range(0..=1) {
                sql.push_str(&format!(
                    "INSERT INTO edges VALUES ({next_edge}, {}, {});",
                    rng.gen_range(1..next_node + 2),
                    rng.gen_range(1..next_node + 2)
                ));
                next_edge += 1;
            }
            if rng.gen_bool(0.3) {
                sql.push_str(&format!(
                    "INSERT INTO teams VALUES ({next_team}, 't{next_team}');"
                ));
                next_team += 1;
            }
            for _ in 0..rng.gen_range(0..=3) {
                let boss = if rng.gen_bool(0.1) {
                    "NULL".to_string()
                } else {
                    rng.gen_range(1..next_emp + 2).to_string()
                };
                sql.push_str(&format!(
                    "INSERT INTO emps VALUES ({next_emp}, 'e{next_emp}', {boss}, {});",
                    rng.gen_range(1..next_team + 1)
                ));
                next_emp += 1;
            }
            db.exec(&format!("BEGIN; {sql} COMMIT;")).await;
        }
        for (name, q, cols) in STREAM_TABLES {
            refresh(&db.pool, name).await;
            assert_eq!(
                difference(&db.pool, q, name, cols).await,
                0,
                "{name}, round {round}"
            );
            let s = last_strategy(&db.pool, name).await;
            assert!(
                s == "DIFFERENTIAL (insert-only, semi-naive)" || s == "NO CHANGES",
                "{name}, round {round}: {s}"
            );
        }
    }
    // Some rows are duplicates: the numbering of appended copies continued.
    let dups: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT id, name, depth FROM reach GROUP BY 1, 2, 3 HAVING count(*) > 1) x",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(dups > 0);

    // An update or a delete: recompute and apply the difference; then inserts again.
    db.exec("UPDATE nodes SET name = 'z' WHERE id % 7 = 0; DELETE FROM emps WHERE id % 5 = 0; DELETE FROM edges WHERE id % 3 = 0;")
        .await;
    for (name, q, cols) in STREAM_TABLES {
        refresh(&db.pool, name).await;
        assert_eq!(
            last_strategy(&db.pool, name).await,
            "DIFFERENTIAL",
            "{name}"
        );
        assert_eq!(
            difference(&db.pool, q, name, cols).await,
            0,
            "{name} after updates"
        );
    }
    db.exec(&format!(
        "INSERT INTO nodes VALUES ({next_node}, 1, 'b'), ({}, {next_node}, 'b'); INSERT INTO emps VALUES ({next_emp}, 'x', 2, 1);",
        next_node + 1
    ))
    .await;
    for (name, q, cols) in STREAM_TABLES {
        refresh(&db.pool, name).await;
        assert_eq!(
            last_strategy(&db.pool, name).await,
            "DIFFERENTIAL (insert-only, semi-naive)"
        );
        assert_eq!(
            difference(&db.pool, q, name, cols).await,
            0,
            "{name} after the last inserts"
        );
    }
}

const SEMINAIVE: &str = "DIFFERENTIAL (insert-only, semi-naive)";

/// The equivalence oracle over one of the queries above, in insert-only batches
/// (`Oracle::insert_only`) into the tables it reads: fresh keys, now and then a key in
/// use (a conflict), parents that exist, arrive in a later batch, or never
/// (`Domain::KeyOf`'s `ahead`), NULL parents (new roots), names from few values
/// (duplicate rows); every refresh with changes must be semi-naive.
async fn oracle_insert_only(name: &str, query: &str, tables: &[&str], seed: u64) {
    let db = test_db().await;
    let mut o = Oracle::new(name, query)
        .seed(seed)
        .batches(200)
        .key_range(8)
        .initial_rows(10)
        .insert_only()
        .expect_strategy(SEMINAIVE);
    for t in tables {
        o = match *t {
            "nodes" => o
                .table(
                    "nodes",
                    "CREATE TABLE nodes (id int PRIMARY KEY, parent_id int, name text NOT NULL)",
                )
                .domain("nodes", "parent_id", Domain::key_of("nodes", 3, 0.1))
                .domain("nodes", "name", Domain::literals(&["'a'", "'b'", "'c'"])),
            "edges" => o
                .table(
                    "edges",
                    "CREATE TABLE edges (id int PRIMARY KEY, src int NOT NULL, dst int NOT NULL)",
                )
                .domain("edges", "src", Domain::key_of("nodes", 2, 0.0))
                .domain("edges", "dst", Domain::key_of("nodes", 2, 0.0)),
            "teams" => o.table(
                "teams",
                "CREATE TABLE teams (id int PRIMARY KEY, name text NOT NULL)",
            ),
            "emps" => o
                .table(
                    "emps",
                    "CREATE TABLE emps (id int PRIMARY KEY, name text NOT NULL, boss int, team int NOT NULL)",
                )
                .domain("emps", "name", Domain::literals(&["'x'", "'y'"]))
                .domain("emps", "boss", Domain::key_of("emps", 2, 0.1))
                .domain("emps", "team", Domain::key_of("teams", 1, 0.0)),
            other => panic!("no fixture for {other}"),
        };
    }
    o.setup(&db.pool).await;
    pgstream::create_stream_table(
        &db.pool,
        &pgstream::spec(name, query, "1h", Mode::Differential).unwrap(),
    )
    .await
    .unwrap();
    // Every refresh stays differential (the adaptive switch would take large windows).
    db.exec(&format!(
        "SELECT pgstream.set_full_refresh_ratio('{name}', NULL)"
    ))
    .await;
    o.assert_equivalent(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_insert_only_paths() {
    oracle_insert_only("paths", PATHS, &["nodes"], 601).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_insert_only_reach() {
    oracle_insert_only("reach", REACH, &["nodes", "edges"], 602).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_insert_only_chain() {
    oracle_insert_only("chain", CHAIN, &["teams", "emps"], 603).await;
}
