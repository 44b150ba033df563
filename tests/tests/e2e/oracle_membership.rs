//! The equivalence oracle over `EXISTS`/`IN` bodies that hold subqueries of their own
//! (TPC-H Q20: `s_suppkey IN (SELECT ps_suppkey FROM partsupp WHERE ps_partkey IN
//! (SELECT ...) AND ps_availqty > (SELECT 0.5 * sum(l_quantity) FROM lineitem WHERE
//! l_partkey = ps_partkey AND ...))`): the body's own `EXISTS`/`IN` conjuncts are semi
//! and anti joins inside the body, its correlated scalar aggregates aggregate leaves
//! joined on their keys (`pgstream-core/src/bind/subquery.rs`, `semi_join_spj`), all
//! maintained by delta rules; a body whose subqueries name the enclosing query is
//! recomputed. Each case runs 200 batches of random INSERT/UPDATE/DELETE (NULLs,
//! duplicates, key changes, TRUNCATE), refreshes and compares the stream table with
//! the query run afresh; then it checks the strategy, so that a case cannot pass by a
//! whole-query recompute.
//!
//! `PGS_ORACLE_BATCHES` overrides the number of batches, `PGS_ORACLE_SEED` the seed.

use crate::common;
use common::Tables;
use pgstream_core::Mode;
use pgstream_tests::test_db;

use Tables::*;

/// The oracle of `common::check`, then: the strategy starts with `strategy`.
async fn membership(name: &str, query: &str, tables: Tables, seed: u64, strategy: &str) {
    let db = test_db().await;
    let o = common::oracle_for(name, query, tables, seed);
    common::run_oracle(&db, &o, name, query, Mode::Differential, &[]).await;
    let got = common::strategy(&db, name).await;
    assert!(got.starts_with(strategy), "{name}: {got}");
}

macro_rules! membership {
    ($test:ident, $tables:expr, $seed:expr, $strategy:expr, $query:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            membership(stringify!($test), $query, $tables, $seed, $strategy).await;
        }
    };
}

// TPC-H Q20's shape: an IN body with an IN of its own and a correlated scalar sum.
membership!(
    q20_shape,
    Org,
    1501,
    "incremental",
    "SELECT d.id, d.name FROM departments d \
     WHERE d.id IN (SELECT e.department_id FROM employees e \
                     WHERE e.id IN (SELECT p.id FROM departments p WHERE p.parent_id > 3) \
                       AND e.salary > (SELECT 0.5 * sum(x.salary) FROM employees x \
                                        WHERE x.department_id = e.department_id AND x.salary < 100)) \
       AND d.parent_id <> 7"
);
// NOT EXISTS inside a correlated EXISTS, naming the body's table only.
membership!(
    not_exists_in_exists,
    Org,
    1502,
    "incremental",
    "SELECT d.id, d.name FROM departments d \
     WHERE EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id \
                     AND NOT EXISTS (SELECT 1 FROM departments p WHERE p.parent_id = e.department_id))"
);
// IN inside NOT IN (NULLs on both sides), under an aggregate.
membership!(
    in_inside_not_in,
    Org,
    1503,
    "incremental",
    "SELECT count(*) AS n, sum(e.salary) AS s FROM employees e \
     WHERE e.department_id NOT IN (SELECT d.id FROM departments d \
                                    WHERE d.parent_id IN (SELECT x.department_id FROM employees x WHERE x.salary > 20))"
);
// An uncorrelated scalar aggregate inside an EXISTS body.
membership!(
    scalar_in_exists,
    Org,
    1504,
    "incremental",
    "SELECT d.id FROM departments d \
     WHERE EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id \
                     AND e.salary >= (SELECT avg(salary) FROM employees))"
);
// The inner subquery names the enclosing query: recomputed, still equal.
membership!(
    nested_naming_the_outer_query,
    Org,
    1505,
    "recompute",
    "SELECT d.id FROM departments d \
     WHERE EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id \
                     AND EXISTS (SELECT 1 FROM departments p WHERE p.parent_id = d.id))"
);
// The semi and anti joins of a WHERE go below the LEFT JOINs their condition does
// not read (`pushdown::filters_before_outer_joins`): a correlated scalar aggregate
// beside NOT EXISTS...
membership!(
    not_exists_beside_correlated_aggregate,
    Org,
    1506,
    "incremental",
    "SELECT e.id, e.salary FROM employees e \
     WHERE NOT EXISTS (SELECT 1 FROM departments p WHERE p.parent_id = e.department_id) \
       AND e.salary >= (SELECT avg(x.salary) FROM employees x WHERE x.department_id = e.department_id)"
);
// ... a written LEFT JOIN with EXISTS over its left side (moved below it) and NOT
// EXISTS over its right side (stays above: it reads the padded columns) ...
membership!(
    exists_over_left_join_sides,
    OrgProjects,
    1507,
    "incremental",
    "SELECT d.id, e.id AS eid FROM departments d LEFT JOIN employees e ON e.department_id = d.id \
     WHERE EXISTS (SELECT 1 FROM projects p WHERE p.department_id = d.id AND p.budget > 3) \
       AND NOT EXISTS (SELECT 1 FROM projects q WHERE q.department_id = e.id)"
);
// ... and EXISTS reading an aggregate subquery's value (stays above its LEFT JOIN).
membership!(
    exists_reading_aggregate_value,
    Org,
    1508,
    "incremental",
    "SELECT e.id, t.s FROM employees e \
     LEFT JOIN (SELECT department_id, sum(salary) AS s FROM employees GROUP BY department_id) t \
       ON t.department_id = e.department_id \
     WHERE EXISTS (SELECT 1 FROM departments d WHERE d.parent_id = e.department_id AND d.id < t.s)"
);
