//! The equivalence oracle over the shapes of issue 11: nested trigger-level
//! statements (a self-referencing table whose key updates cascade and whose deletes
//! set NULL, a table whose trigger writes the row its statement wrote) and a
//! partitioned source (two levels) with DML addressed to the partitions directly.
//! 200 batches each, over a scan, an aggregate and a join.

use crate::common;

use pgstream_core::Mode;
use pgstream_tests::oracle::{Domain, Oracle};
use pgstream_tests::test_db;

/// Self-referencing: key updates cascade into `parent`, deletes set it NULL.
const NODES: &str = "CREATE TABLE nodes (id int PRIMARY KEY, parent int REFERENCES nodes(id) ON UPDATE CASCADE ON DELETE SET NULL, v int)";
/// A trigger that writes the row its statement wrote (an AFTER ROW trigger running an
/// UPDATE of the same row), and a BEFORE INSERT trigger that replaces the row of the
/// same key (a DELETE inside the INSERT).
const ACCT: &str = "CREATE TABLE acct (id int PRIMARY KEY, bal int, n int NOT NULL DEFAULT 0);
     CREATE FUNCTION acct_count() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF pg_trigger_depth() = 1 THEN UPDATE acct SET n = n + 1 WHERE id = NEW.id; END IF;
         RETURN NULL;
     END $$;
     CREATE TRIGGER acct_count AFTER INSERT OR UPDATE ON acct FOR EACH ROW EXECUTE FUNCTION acct_count();
     CREATE FUNCTION acct_replace() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF pg_trigger_depth() = 1 AND NEW.bal % 3 = 0 THEN DELETE FROM acct WHERE id = NEW.id; END IF;
         RETURN NEW;
     END $$;
     CREATE TRIGGER acct_replace BEFORE INSERT ON acct FOR EACH ROW EXECUTE FUNCTION acct_replace();";
/// Partitioned by range of the key, the upper part again by range.
const PEV: &str = "CREATE TABLE pev (id int PRIMARY KEY, g int, v int) PARTITION BY RANGE (id);
     CREATE TABLE pev_lo PARTITION OF pev FOR VALUES FROM (MINVALUE) TO (6);
     CREATE TABLE pev_hi PARTITION OF pev FOR VALUES FROM (6) TO (MAXVALUE) PARTITION BY RANGE (id);
     CREATE TABLE pev_hi_a PARTITION OF pev_hi FOR VALUES FROM (6) TO (11);
     CREATE TABLE pev_hi_b PARTITION OF pev_hi FOR VALUES FROM (11) TO (MAXVALUE);";

async fn run(name: &str, query: &str, seed: u64) {
    let db = test_db().await;
    let o = Oracle::new(name, query)
        .seed(seed)
        .batches(200)
        .truncate_probability(0.02)
        .key_range(16)
        .table("nodes", NODES)
        .domain(
            "nodes",
            "parent",
            Domain::existing("nodes", "id", &["NULL"]),
        )
        .domain("nodes", "v", Domain::Ints(0, 5))
        .table("acct", ACCT)
        .domain("acct", "bal", Domain::Ints(0, 9))
        .domain("acct", "n", Domain::Ints(0, 3))
        .table("pev", PEV)
        .targets("pev", &["pev", "pev_lo", "pev_hi", "pev_hi_a", "pev_hi_b"])
        .domain("pev", "g", Domain::Ints(0, 4));
    common::run_oracle(&db, &o, name, query, Mode::Differential, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_nested_scan() {
    run(
        "nested_scan",
        "SELECT id, bal, n FROM acct UNION ALL SELECT id, parent, v FROM nodes",
        11_01,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_nested_aggregate() {
    run(
        "nested_aggregate",
        "SELECT n, count(*) AS c, sum(bal) AS s FROM acct GROUP BY n",
        11_02,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_nested_join() {
    run(
        "nested_join",
        "SELECT c.id, c.v, p.v AS pv, a.bal FROM nodes c JOIN nodes p ON p.id = c.parent LEFT JOIN acct a ON a.id = c.id",
        11_03,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_partitioned_scan() {
    run(
        "part_scan",
        "SELECT id, g, v FROM pev WHERE v IS DISTINCT FROM 3",
        11_04,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_partitioned_aggregate() {
    run(
        "part_aggregate",
        "SELECT g, count(*) AS c, sum(v) AS s, max(id) AS m FROM pev GROUP BY g",
        11_05,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_partitioned_join() {
    run(
        "part_join",
        "SELECT p.id, p.g, a.bal, n.parent FROM pev p JOIN acct a ON a.id = p.id LEFT JOIN nodes n ON n.id = p.g",
        11_06,
    )
    .await;
}
