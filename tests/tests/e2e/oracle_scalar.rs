//! The equivalence oracle over uncorrelated scalar aggregates (TPC-H Q22's
//! `c_acctbal > (SELECT avg(c_acctbal) FROM customer WHERE ...)`) and aggregates
//! without `GROUP BY` in FROM: each is an aggregate leaf keyed by nothing, its one row
//! recomputed over the old and new state when its table changed, `CROSS JOIN`ed, so
//! that the rows reading it are re-evaluated only when its value changed
//! (`pgstream-core/src/strategy/aggregate_subquery.rs`). Each case runs 200 batches of
//! random INSERT/UPDATE/DELETE (NULLs, duplicates, key changes, TRUNCATE), refreshes
//! and compares the stream table with the query run afresh; then it checks that the
//! stream table was maintained by delta rules with the aggregate as a leaf, so that a
//! case cannot pass by a whole-query recompute.
//!
//! `PGS_ORACLE_BATCHES` overrides the number of batches, `PGS_ORACLE_SEED` the seed.

use crate::common;
use common::Tables;
use pgstream_core::Mode;
use pgstream_tests::test_db;

use Mode::Differential as D;
use Tables::*;

/// The oracle of `common::check`, then: the stream table is maintained by delta
/// rules with its scalar aggregates as aggregate leaves, not recomputed.
async fn scalar(name: &str, query: &str, mode: Mode, tables: Tables, seed: u64) {
    let db = test_db().await;
    let o = common::oracle_for(name, query, tables, seed);
    common::run_oracle(&db, &o, name, query, mode, &[]).await;
    let strategy = common::strategy(&db, name).await;
    assert!(
        strategy.starts_with("incremental") && strategy.contains("each aggregate subquery"),
        "{name}: {strategy}"
    );
}

macro_rules! scalar {
    ($test:ident, $mode:expr, $tables:expr, $seed:expr, $query:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            scalar(stringify!($test), $query, $mode, $tables, $seed).await;
        }
    };
}

// A projection over the rows above the average (the average of the same table).
scalar!(
    where_above_average,
    D,
    Org,
    1401,
    "SELECT e.id, e.name, e.salary FROM employees e \
     WHERE e.salary > (SELECT avg(salary) FROM employees WHERE salary > 15)"
);
// TPC-H Q22's shape: in a subquery in FROM, beside NOT EXISTS, under GROUP BY.
scalar!(
    q22_shape,
    D,
    Org,
    1402,
    "SELECT grp, count(*) AS n, sum(salary) AS total FROM \
     (SELECT e.department_id AS grp, e.salary FROM employees e \
       WHERE e.salary > (SELECT avg(x.salary) FROM employees x WHERE x.salary > 0.00 \
                           AND x.department_id IN (1, 2, 3, 4, 5)) \
         AND NOT EXISTS (SELECT * FROM departments d WHERE d.parent_id = e.department_id)) AS s \
     GROUP BY grp"
);
// A count over another table (0, not NULL, over no rows), compared on the left.
scalar!(
    where_count_of_other_table,
    D,
    Org,
    1403,
    "SELECT d.id, d.name FROM departments d \
     WHERE (SELECT count(*) FROM employees WHERE salary >= 20) >= d.id"
);
// The maximum of a source without a primary key (a bag), arithmetic over it.
scalar!(
    where_max_keyless,
    D,
    Events,
    1404,
    "SELECT kind, amount FROM events WHERE amount >= (SELECT max(amount) - 2 FROM events)"
);
// Two scalar aggregates under a global aggregate.
scalar!(
    two_scalars_under_global_aggregate,
    D,
    Org,
    1405,
    "SELECT count(*) AS n, sum(e.salary) AS s FROM employees e, departments d \
     WHERE e.department_id = d.id \
       AND e.salary >= (SELECT min(salary) + 10 FROM employees) \
       AND d.parent_id < (SELECT max(parent_id) FROM departments WHERE name <> 'x')"
);
// An aggregate without GROUP BY in FROM, joined by a condition on its values.
scalar!(
    whole_table_aggregate_in_from,
    D,
    Org,
    1406,
    "SELECT d.id, s.total, s.n FROM departments d, \
     (SELECT sum(salary) AS total, count(*) AS n FROM employees WHERE department_id > 2) AS s \
     WHERE d.id < s.n"
);
// Only the aggregate: the stream table is its one row.
scalar!(
    whole_table_aggregate_alone,
    D,
    Ledger,
    1408,
    "SELECT x.n, x.total, x.top FROM \
     (SELECT count(*) AS n, sum(amount) AS total, max(acct) AS top FROM ledger WHERE acct > 1) AS x"
);
// IMMEDIATE mode: the same rules inside each writing transaction.
scalar!(
    where_above_average_immediate,
    Mode::Immediate,
    Org,
    1407,
    "SELECT e.id, e.salary FROM employees e \
     WHERE e.salary > (SELECT avg(salary) FROM employees)"
);
// One-row leaves whose old value is undone from the new sums and the window's
// (`AggLeaf::inverse`: count, sum and avg of integers and of `numeric(p, s)`): counts
// reaching zero (NULL sums and averages), NULL arguments, a table without a key
// (the window is not netted), the values themselves in the result (their digits).
scalar!(
    inverse_avg_of_a_numeric_column,
    D,
    Org,
    1409,
    "SELECT e.id, e.salary FROM employees e \
     WHERE e.salary > (SELECT avg(salary) FROM employees WHERE department_id < 6)"
);
scalar!(
    inverse_sum_and_count_of_an_unkeyed_table,
    D,
    Events,
    1410,
    "SELECT kind, amount FROM events \
     WHERE amount * 6 >= (SELECT sum(amount) FROM events WHERE kind IS NOT NULL) \
     AND amount < (SELECT count(*) FROM events)"
);
scalar!(
    inverse_values_in_the_result,
    D,
    Org,
    1411,
    "SELECT x.n, x.paid, x.total, x.mean, x.ids FROM \
     (SELECT count(*) AS n, count(salary) AS paid, sum(salary) AS total, avg(salary) AS mean, \
      avg(id) AS ids FROM employees WHERE department_id > 2) AS x"
);

// The flips restricted to the range between the old and the new value
// (`strategy/scalar_join.rs`, `flip_range`): equality and inequality with the value,
// an expression on the left's side, text compared under the column's collation, and
// a value that becomes NULL when its set empties.
scalar!(
    flip_range_equality_and_expressions,
    D,
    Org,
    1412,
    "SELECT e.id, e.salary FROM employees e \
     WHERE e.salary = (SELECT max(salary) FROM employees WHERE department_id < 4) \
        AND e.id % 3 <> 1"
);
scalar!(
    flip_range_not_equal,
    D,
    Org,
    1413,
    "SELECT e.id, e.salary FROM employees e \
     WHERE e.salary + e.id <> (SELECT min(salary) + 3 FROM employees WHERE salary > 20)"
);
scalar!(
    flip_range_text,
    D,
    Org,
    1414,
    "SELECT e.id, e.name FROM employees e JOIN departments d ON d.id = e.department_id \
     WHERE d.name <= (SELECT max(name) FROM employees WHERE salary BETWEEN 10 AND 14)"
);
// Booleans, which have no `min` or `max`: the range's bounds are LEAST and GREATEST.
scalar!(
    flip_range_boolean,
    D,
    Org,
    1415,
    "SELECT e.id, e.salary FROM employees e \
     WHERE (e.salary > 10) >= (SELECT bool_or(salary > 30) FROM employees WHERE department_id < 3)"
);
scalar!(
    flip_range_boolean_equality,
    D,
    Org,
    1416,
    "SELECT e.id, e.salary FROM employees e \
     WHERE (e.salary > 10) = (SELECT bool_and(salary < 40) FROM employees WHERE department_id > 2)"
);
