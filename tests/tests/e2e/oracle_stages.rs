//! The equivalence oracle over queries kept over a *stage*: a block below the top of
//! the query maintained incrementally in a table of its own, which the top reads
//! (`pgstream-core/src/strategy/stage.rs`). Each case runs 200 batches of random
//! INSERT/UPDATE/DELETE (NULLs, duplicates, key changes, TRUNCATE), refreshes and
//! compares the stream table with the query run afresh; then it checks that the
//! stream table was maintained through its stage (`pgs_status().strategy`), so that
//! a case cannot pass by a whole-query recompute.
//!
//! This file: `ORDER BY ... LIMIT n` over an aggregate (the stage holds every group,
//! the stream table the first `n`; each `ORDER BY` ends with the group keys, so the
//! first `n` rows are determined) and over a projection with keyed rows (the stage
//! holds every row; each `ORDER BY` ends with a key), and correlated scalar aggregates in `WHERE` and
//! as arithmetic in the select list (the stage is an aggregate leaf grouped by the
//! correlation keys, `LEFT JOIN`ed on them), and queries around an aggregate relation
//! (the relation is the stage, the query around it recomputed over the stage's rows).
//!
//! `PGS_ORACLE_BATCHES` overrides the number of batches, `PGS_ORACLE_SEED` the seed.

use crate::common;
use common::Tables;
use pgstream_core::Mode;
use pgstream_tests::compare::stage_tables;
use pgstream_tests::test_db;

use Mode::Differential as D;
use Tables::*;

/// The oracle of `common::check`, then: the stream table's strategy says it reads a
/// stage, and the stage table exists until the stream table is dropped.
async fn staged(name: &str, query: &str, mode: Mode, tables: Tables, seed: u64) {
    staged_as(
        "incremental: ORDER BY",
        name,
        query,
        mode,
        tables,
        seed,
        &[],
    )
    .await;
}

/// [`staged`] for a query around an aggregate relation (after `ddl`): its strategy
/// says so.
async fn around(name: &str, query: &str, mode: Mode, tables: Tables, seed: u64, ddl: &[&str]) {
    let prefix = "incremental below: the aggregate relation";
    staged_as(prefix, name, query, mode, tables, seed, ddl).await;
}

async fn staged_as(
    prefix: &str,
    name: &str,
    query: &str,
    mode: Mode,
    tables: Tables,
    seed: u64,
    ddl: &[&str],
) {
    let db = test_db().await;
    let o = common::oracle_for(name, query, tables, seed);
    common::run_oracle(&db, &o, name, query, mode, ddl).await;
    let strategy = common::strategy(&db, name).await;
    assert!(
        strategy.starts_with(prefix) && strategy.contains("stage table"),
        "{name}: {strategy}"
    );
    assert_eq!(stage_tables(&db.pool).await, 1, "{name}: the stage table");
    db.exec(&format!("SELECT pgstream.drop_stream_table('{name}')"))
        .await;
    assert_eq!(
        stage_tables(&db.pool).await,
        0,
        "{name}: dropped with the stream table"
    );
}

/// The oracle of `common::check`, then: the stream table is maintained by delta
/// rules with its correlated aggregates as aggregate leaves, not recomputed.
async fn joined(name: &str, query: &str, seed: u64) {
    joined_in(name, query, Org, D, seed).await;
}

/// [`joined`] over `tables`, in `mode`.
async fn joined_in(name: &str, query: &str, tables: Tables, mode: Mode, seed: u64) {
    let db = test_db().await;
    let o = common::oracle_for(name, query, tables, seed);
    common::run_oracle(&db, &o, name, query, mode, &[]).await;
    let strategy = common::strategy(&db, name).await;
    assert!(
        strategy.starts_with("incremental") && strategy.contains("each aggregate subquery"),
        "{name}: {strategy}"
    );
}

macro_rules! joined {
    ($test:ident, $seed:expr, $query:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            joined(stringify!($test), $query, $seed).await;
        }
    };
}

macro_rules! joined_in {
    ($test:ident, $tables:expr, $mode:expr, $seed:expr, $query:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            joined_in(stringify!($test), $query, $tables, $mode, $seed).await;
        }
    };
}

macro_rules! around {
    ($test:ident, $mode:expr, $tables:expr, $seed:expr, $query:expr $(, $ddl:expr)*) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            around(stringify!($test), $query, $mode, $tables, $seed, &[$($ddl),*]).await;
        }
    };
}

macro_rules! staged {
    ($test:ident, $mode:expr, $tables:expr, $seed:expr, $query:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            staged(stringify!($test), $query, $mode, $tables, $seed).await;
        }
    };
}

// Counters (count, sum, avg) under the top-k: the stage is maintained per group.
staged!(
    top_k_over_sum,
    D,
    Org,
    1301,
    "SELECT department_id, sum(salary) AS total, count(*) AS n FROM employees \
     GROUP BY department_id ORDER BY total DESC NULLS LAST, department_id LIMIT 3"
);
staged!(top_k_over_join_aggregate, D, Org, 1302,
    "SELECT d.name, count(*) AS n, sum(e.salary) AS s FROM employees e, departments d \
     WHERE e.department_id = d.id AND e.salary > 15 GROUP BY d.name ORDER BY n DESC, s, name LIMIT 2");
staged!(
    top_k_by_position_avg,
    D,
    Org,
    1303,
    "SELECT department_id, avg(salary) AS a, count(salary) AS c FROM employees \
     GROUP BY department_id ORDER BY 2 NULLS FIRST, 1 DESC LIMIT 2"
);
staged!(
    top_k_with_ties_on_the_value,
    D,
    Ledger,
    1304,
    "SELECT acct, sum(amount) AS total FROM ledger GROUP BY acct ORDER BY total, acct LIMIT 2"
);
staged!(
    top_k_over_keyless_source,
    D,
    Events,
    1305,
    "SELECT kind, count(*) AS n, sum(amount) AS s FROM events GROUP BY kind \
     ORDER BY s DESC NULLS LAST, kind NULLS FIRST LIMIT 2"
);
// Group recompute (MIN/MAX, HAVING) under the top-k.
staged!(
    top_k_over_max_having,
    D,
    Org,
    1306,
    "SELECT department_id, max(salary) AS top, count(*) AS n FROM employees \
     GROUP BY department_id HAVING count(*) > 1 \
     ORDER BY top DESC NULLS FIRST, department_id NULLS FIRST LIMIT 4"
);
staged!(
    top_k_over_left_join_aggregate,
    D,
    Org,
    1307,
    "SELECT d.id, d.name, count(e.id) AS staff FROM departments d \
     LEFT JOIN employees e ON e.department_id = d.id GROUP BY d.id, d.name \
     ORDER BY staff DESC, id LIMIT 3"
);
// IMMEDIATE mode: the same rules inside each writing transaction.
staged!(
    top_k_immediate,
    Mode::Immediate,
    Org,
    1308,
    "SELECT department_id, sum(salary) AS total, count(*) AS n FROM employees \
     GROUP BY department_id ORDER BY total DESC NULLS LAST, department_id LIMIT 3"
);

// A projection under the top-k: the stage holds every row, identified by its
// leaves' keys; `ORDER BY` items by name, position or as written in the select list.
staged!(
    top_k_over_rows,
    D,
    Org,
    1341,
    "SELECT id, salary, department_id FROM employees ORDER BY salary DESC NULLS LAST, id LIMIT 3"
);
staged!(
    top_k_over_joined_rows,
    D,
    Org,
    1322,
    "SELECT e.id, e.salary, d.name FROM employees e JOIN departments d ON d.id = e.department_id \
     WHERE e.salary > 10 ORDER BY d.name NULLS FIRST, 2 DESC NULLS LAST, e.id LIMIT 4"
);
staged!(top_k_over_left_joined_rows_immediate, Mode::Immediate, Org, 1343,
    "SELECT e.id AS eid, e.salary, d.name AS dept FROM employees e LEFT JOIN departments d ON d.id = e.department_id \
     ORDER BY e.salary NULLS FIRST, d.name, eid LIMIT 3");

// Correlated scalar aggregates in WHERE (TPC-H Q17) and arithmetic over a correlated
// aggregate in the select list.
joined!(where_scalar_avg_self_correlated, 1311,
    "SELECT e.id, e.salary FROM employees e \
     WHERE e.salary > (SELECT 0.5 * avg(x.salary) FROM employees x WHERE x.department_id = e.department_id)");
joined!(where_scalar_under_global_aggregate, 1312,
    "SELECT sum(employees.salary) / 7.0 AS s, count(*) AS n FROM employees, departments \
     WHERE departments.id = employees.department_id AND departments.parent_id > 2 \
     AND employees.salary < (SELECT 0.8 * avg(salary) FROM employees WHERE department_id = departments.id)");
joined!(
    where_scalar_count,
    1313,
    "SELECT d.id, d.name FROM departments d \
     WHERE (SELECT count(*) FROM employees e WHERE e.department_id = d.id AND e.salary > 15) < 2"
);
joined!(where_scalar_grouped, 1314,
    "SELECT d.parent_id, count(*) AS n FROM departments d, employees e \
     WHERE e.department_id = d.id AND e.salary <> (SELECT max(x.salary) - 10 FROM employees x WHERE x.department_id = d.parent_id) \
     GROUP BY d.parent_id");
joined!(select_scalar_arithmetic, 1315,
    "SELECT d.id, (SELECT max(e.salary) + 1 FROM employees e WHERE e.department_id = d.id) AS m, \
     (SELECT -(sum(e.salary) / count(*)) FROM employees e WHERE e.department_id = d.id) AS a FROM departments d");

/// A correlated `max` over employees and departments, compared in `WHERE`.
const WHERE_SCALAR_OVER_A_JOIN: &str = "SELECT e.id, e.salary FROM employees e \
     WHERE e.salary = (SELECT max(x.salary) FROM employees x, departments y \
                       WHERE y.id = x.department_id AND y.parent_id IS NOT NULL \
                         AND x.department_id = e.department_id)";

// Aggregates over several tables (TPC-H Q2's `min(ps_supplycost)` over partsupp,
// supplier, nation and region): a change of any of the tables touches the groups of
// the rows it joins. The group keys are over the first table (here `x`).
joined!(where_scalar_over_a_join, 1344, WHERE_SCALAR_OVER_A_JOIN);
// Three tables, a count (duplicates through the projects: each employee counts once
// per project of its department) and a min, in the select list; the far table
// filtered.
joined_in!(
    select_scalars_over_three_tables,
    OrgProjects,
    D,
    1345,
    "SELECT d.id, d.name, \
       (SELECT count(*) FROM employees x, departments y, projects p \
         WHERE y.id = x.department_id AND p.department_id = y.id AND p.budget > 20 \
           AND x.department_id = d.id) AS n, \
       (SELECT min(x.salary) FROM employees x, projects p \
         WHERE p.department_id = x.department_id AND x.department_id = d.parent_id) AS m \
     FROM departments d"
);
// An aggregate over a join in FROM, joined on its group key.
joined!(
    aggregate_of_a_join_in_from,
    1346,
    "SELECT d.name, s.total, s.n FROM departments d JOIN \
       (SELECT x.department_id, sum(x.salary) AS total, count(*) AS n \
          FROM employees x, departments y WHERE y.id = x.department_id AND y.parent_id > 2 \
         GROUP BY x.department_id) s ON s.department_id = d.id"
);
// TPC-H Q2's shape: the rows whose value is the minimum of their group over a join,
// their top rows over a stage; and in IMMEDIATE mode.
staged!(
    top_k_of_rows_at_the_minimum_over_a_join,
    D,
    OrgProjects,
    1347,
    "SELECT e.id, e.salary, d.name FROM employees e, departments d \
     WHERE d.id = e.department_id \
       AND e.salary = (SELECT min(x.salary) FROM employees x, projects p \
                       WHERE p.department_id = x.department_id AND p.budget > 10 \
                         AND x.department_id = d.id) \
     ORDER BY e.salary DESC, d.name, e.id LIMIT 4"
);
// The same with `JOIN ... ON` inside the subquery (its conditions read as the
// subquery's `WHERE`), an `OR` among them.
joined!(
    select_scalar_over_an_inner_join,
    1352,
    "SELECT d.id, (SELECT max(e.salary) FROM employees e JOIN departments x \
                   ON x.id = e.department_id AND (x.parent_id > 2 OR x.parent_id IS NULL) \
                   WHERE e.department_id = d.id) AS m FROM departments d"
);
joined!(
    aggregate_of_an_inner_join_in_from,
    1353,
    "SELECT d.name, s.total FROM departments d JOIN \
       (SELECT x.department_id, sum(x.salary) AS total FROM employees x \
          JOIN departments y ON y.id = x.department_id WHERE y.parent_id > 2 \
         GROUP BY x.department_id) s ON s.department_id = d.id"
);
// Grouped membership bodies over a join (`IN`, `NOT IN`): the grouped body is an
// aggregate leaf on the semi or anti join's right side.
joined_in!(
    in_grouped_over_a_join,
    OrgProjects,
    D,
    1350,
    "SELECT d.id, d.name FROM departments d \
     WHERE d.id IN (SELECT e.department_id FROM employees e, projects p \
                     WHERE p.department_id = e.department_id AND p.budget > 10 \
                     GROUP BY e.department_id HAVING count(*) > 2)"
);
joined!(
    not_in_grouped_over_a_join,
    1351,
    "SELECT e.id, e.salary FROM employees e \
     WHERE e.salary NOT IN (SELECT max(x.salary) FROM employees x, departments y \
                             WHERE y.id = x.department_id AND y.parent_id > 1 \
                             GROUP BY x.department_id)"
);
// A joined table the query reads outside the aggregate too, with a condition there
// (`d.parent_id > 5`) that the aggregate's rows need not pass: the window of
// departments is not restricted by it, nor are its changes filtered.
joined!(
    where_scalar_over_a_join_read_outside_too,
    1349,
    "SELECT e.id, e.salary, d.name FROM employees e, departments d \
     WHERE d.id = e.department_id AND d.parent_id > 5 \
       AND e.salary >= (SELECT max(x.salary) FROM employees x, departments y \
                        WHERE y.id = x.department_id AND y.parent_id IS NOT NULL \
                          AND x.department_id = d.parent_id)"
);
joined_in!(
    where_scalar_over_a_join_immediate,
    Org,
    Mode::Immediate,
    1348,
    WHERE_SCALAR_OVER_A_JOIN
);

// The query around an aggregate relation it reads (TPC-H Q13, Q15): the relation is
// the stage, the query around it recomputed over the stage's rows after each refresh.
// Aggregate over an aggregate over a left join, the subquery's columns renamed by
// its alias (Q13).
around!(
    aggregate_of_an_aggregate,
    D,
    Org,
    1321,
    "SELECT n, count(*) AS departments FROM \
     (SELECT d.id, count(e.id) FROM departments d LEFT JOIN employees e \
      ON e.department_id = d.id AND e.salary > 15 GROUP BY d.id) AS c (dept, n) \
     GROUP BY n"
);
// A CTE read twice: joined with another table (changed alone too) and compared with
// its maximum (Q15).
around!(
    cte_read_twice_with_its_maximum,
    D,
    Org,
    1322,
    "WITH totals AS (SELECT department_id, sum(salary) AS total FROM employees \
     GROUP BY department_id) \
     SELECT d.id, d.name, t.total FROM departments d, totals t \
     WHERE d.id = t.department_id AND t.total = (SELECT max(total) FROM totals)"
);
// A view read twice (expanded twice: the same relation), in FROM and in a scalar
// subquery over it.
around!(
    view_read_twice,
    D,
    Org,
    1323,
    "SELECT a.department_id, a.n, d.name FROM staff_per_department a \
     LEFT JOIN departments d ON d.id = a.department_id \
     WHERE a.n >= (SELECT max(n) - 1 FROM staff_per_department)",
    "CREATE VIEW staff_per_department AS SELECT department_id, count(*) AS n, \
     avg(salary) AS a FROM employees GROUP BY department_id"
);
// Group keys that are not output columns: equal rows from several groups.
around!(
    hidden_group_key_bag,
    D,
    Org,
    1324,
    "SELECT t.total FROM (SELECT sum(salary) AS total FROM employees \
     GROUP BY department_id) t"
);
// A window function over an aggregate relation over a join; MIN/MAX and HAVING in
// the stage.
around!(
    window_over_an_aggregate_with_having,
    D,
    Org,
    1325,
    "SELECT department_id, top, rank() OVER (ORDER BY top DESC NULLS LAST, department_id) AS r \
     FROM (SELECT e.department_id, max(e.salary) AS top FROM employees e \
           JOIN departments d ON d.id = e.department_id \
           GROUP BY e.department_id HAVING count(*) > 1) s"
);
// A keyless source (duplicate rows), counts of counts over a self join: the inner
// aggregate (over two tables, grouped by a column of the first) is an aggregate leaf,
// the outer one kept by counters over its delta.
joined_in!(
    counts_of_counts_over_a_keyless_source,
    Events,
    D,
    1326,
    "SELECT n, count(*) AS kinds FROM (SELECT a.kind, count(*) AS n FROM events a \
     JOIN events b ON b.kind = a.kind AND b.amount > a.amount GROUP BY a.kind) s \
     GROUP BY n"
);
// IMMEDIATE mode: the same statement inside each writing transaction.
around!(
    aggregate_of_an_aggregate_immediate,
    Mode::Immediate,
    Org,
    1327,
    "SELECT n, count(*) AS departments FROM \
     (SELECT d.id, count(e.id) AS n FROM departments d LEFT JOIN employees e \
      ON e.department_id = d.id GROUP BY d.id) AS c GROUP BY n"
);

// `HAVING` with a subquery (TPC-H Q11's shape): the aggregate without it is the
// stage, the condition is evaluated around it. Q11: the groups whose sum exceeds a
// fraction of the total over the same join; here the subquery's aliases differ from
// the aggregate's, so it is not the same text and is evaluated over the sources
// (`having_over_its_own_total` below is the decomposed twin).
around!(
    having_over_a_scalar_of_the_same_join,
    D,
    Org,
    1328,
    "SELECT e.department_id, sum(e.salary) AS total FROM employees e, departments d \
     WHERE e.department_id = d.id AND d.parent_id < 6 GROUP BY e.department_id \
     HAVING sum(e.salary) > (SELECT sum(e2.salary) * 0.2 FROM employees e2, departments d2 \
     WHERE e2.department_id = d2.id AND d2.parent_id < 6) ORDER BY total DESC"
);
// An aggregate the query does not output, a group key and an EXISTS in the condition;
// MIN/MAX in the stage (group recompute).
around!(
    having_with_a_hidden_aggregate_a_key_and_exists,
    D,
    OrgProjects,
    1329,
    "SELECT department_id, count(*) AS n FROM employees GROUP BY department_id \
     HAVING max(salary) > (SELECT avg(salary) FROM employees) AND department_id <> 3 \
     OR EXISTS (SELECT 1 FROM projects p WHERE p.budget > 5 AND p.department_id = 7)"
);
// A subquery correlated to the group's key by an unqualified name (departments have
// no `department_id`): around the stage it reads the stage's column of that name,
// which is the group's key.
around!(
    having_correlated_by_an_output_column,
    D,
    Org,
    1330,
    "SELECT department_id, count(*) AS n FROM employees GROUP BY department_id \
     HAVING count(*) > (SELECT count(*) FROM departments d WHERE d.parent_id = department_id)"
);
around!(
    having_over_a_scalar_immediate,
    Mode::Immediate,
    Org,
    1331,
    "SELECT department_id, sum(salary) AS total, count(*) AS n FROM employees \
     GROUP BY department_id HAVING sum(salary) >= (SELECT avg(salary) * 2 FROM employees)"
);

/// A subquery correlated to a table inside the aggregate (`e.department_id`) no
/// longer resolves around it: the query is recomputed whole, and stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn having_correlated_to_a_table_is_recomputed() {
    let name = "having_correlated_to_a_table_is_recomputed";
    let query = "SELECT e.department_id, count(*) AS n FROM employees e GROUP BY e.department_id \
         HAVING count(*) > (SELECT count(*) FROM projects p WHERE p.department_id = e.department_id)";
    let db = test_db().await;
    let o = common::oracle_for(name, query, OrgProjects, 1332);
    common::run_oracle(&db, &o, name, query, D, &[]).await;
    let strategy = common::strategy(&db, name).await;
    assert!(strategy.starts_with("recompute"), "{name}: {strategy}");
}

// The subquery over the aggregate's own rows, written as TPC-H Q11 writes it (the
// same FROM and WHERE): decomposed over the stage's groups, not evaluated over the
// sources. Sums of numeric, counts (0 over no rows), minimums and maximums.
around!(
    having_over_its_own_total,
    D,
    Org,
    1333,
    "SELECT e.department_id, sum(e.salary) AS total FROM employees e, departments d \
     WHERE e.department_id = d.id AND d.parent_id < 6 GROUP BY e.department_id \
     HAVING sum(e.salary) > (SELECT sum(e.salary) * 0.2 FROM employees e, departments d \
     WHERE e.department_id = d.id AND d.parent_id < 6) ORDER BY total DESC"
);
around!(
    having_over_its_own_count_min_and_max,
    D,
    Org,
    1334,
    "SELECT department_id, count(*) AS n, min(salary) AS lo FROM employees \
     GROUP BY department_id HAVING count(*) * 4 >= (SELECT count(*) FROM employees) \
     OR min(salary) = (SELECT min(salary) FROM employees) \
     OR max(salary) >= (SELECT max(salary) - 10 FROM employees)"
);
