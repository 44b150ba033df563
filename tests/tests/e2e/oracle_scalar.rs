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

/// The state tables of one-row `count`, `sum` and `avg` leaves (their running counts
/// and sums, `contract::scalar_state_table`): created and stored with the stream
/// table, moved to the table's counts and sums by each differential refresh, stored
/// again when their row is gone and by the full refresh after a TRUNCATE, and gone
/// with a replaced or dropped definition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_sums_follow_the_table_and_go_with_the_stream_table() {
    use pgstream_runtime::RuntimeHandle;
    let db = test_db().await;
    db.exec(
        "CREATE TABLE m (id int PRIMARY KEY, g int, v numeric(10,2));
         INSERT INTO m SELECT i, i % 4, CASE WHEN i % 5 = 0 THEN NULL ELSE i * 1.25 END
           FROM generate_series(1, 40) i;",
    )
    .await;
    let q = "SELECT id, v FROM m WHERE v > (SELECT avg(v) FROM m WHERE g <> 1) \
             AND g < (SELECT count(*) FROM m WHERE v < 20)";
    // Each state table's row against its aggregate's parts over the table, by the
    // columns it has (`__pgs_s0`: the average's sum beside its count).
    let states_match = |pool: sqlx::PgPool| async move {
        let tables: Vec<(String, bool)> = sqlx::query_as(
            "SELECT c.relname::text, EXISTS (SELECT 1 FROM pg_attribute a \
                     WHERE a.attrelid = c.oid AND a.attname = '__pgs_s0') \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = 'pgstream' AND c.relname LIKE '\\_scalar\\_%' ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut ok = Vec::new();
        for (t, avg) in &tables {
            let check = if *avg {
                format!(
                    "SELECT (SELECT count(*) = 1 FROM pgstream.\"{t}\") AND \
                     (SELECT (__pgs_n0, __pgs_s0) FROM pgstream.\"{t}\") IS NOT DISTINCT FROM \
                     (SELECT (count(v), sum(v)) FROM m WHERE g <> 1)"
                )
            } else {
                format!(
                    "SELECT (SELECT count(*) = 1 FROM pgstream.\"{t}\") AND \
                     (SELECT __pgs_n0 FROM pgstream.\"{t}\") = (SELECT count(*) FROM m WHERE v < 20)"
                )
            };
            ok.push(pgstream_tests::compare::scalar_bool(&pool, &check).await);
        }
        (tables.len(), ok)
    };
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", q, "1h", D).await.unwrap();
    assert_eq!(states_match(db.pool.clone()).await, (2, vec![true, true]));
    let strategy = common::strategy(&db, "st").await;
    assert!(
        strategy.contains("a one-row count, sum or avg keeps its counts and sums in a state table"),
        "{strategy}"
    );

    db.exec(
        "UPDATE m SET v = v + 30 WHERE id % 3 = 0; DELETE FROM m WHERE id IN (2, 7);
         INSERT INTO m VALUES (41, 0, NULL), (42, 2, 3.5); UPDATE m SET g = 1 WHERE id = 4;",
    )
    .await;
    h.refresh("st").await.unwrap();
    assert_eq!(db.difference(q, "id, v", "st").await, 0);
    assert_eq!(states_match(db.pool.clone()).await, (2, vec![true, true]));

    // A state row lost: the next refresh computes the parts from the table.
    for t in &pgstream_tests::compare::scalar_state_tables(&db.pool).await {
        db.exec(&format!("DELETE FROM pgstream.\"{t}\"")).await;
    }
    db.exec("UPDATE m SET v = NULL WHERE id = 11; INSERT INTO m VALUES (43, 3, 19)")
        .await;
    h.refresh("st").await.unwrap();
    assert_eq!(db.difference(q, "id, v", "st").await, 0);
    assert_eq!(states_match(db.pool.clone()).await, (2, vec![true, true]));

    // TRUNCATE: the full refresh stores the parts again.
    db.exec("TRUNCATE m; INSERT INTO m SELECT i, i % 3, i * 2.5 FROM generate_series(1, 12) i;")
        .await;
    h.refresh("st").await.unwrap();
    assert_eq!(db.difference(q, "id, v", "st").await, 0);
    assert_eq!(states_match(db.pool.clone()).await, (2, vec![true, true]));
    db.exec("UPDATE m SET v = v * 3 WHERE id < 5").await;
    h.refresh("st").await.unwrap();
    assert_eq!(db.difference(q, "id, v", "st").await, 0);
    assert_eq!(states_match(db.pool.clone()).await, (2, vec![true, true]));

    let plain = "SELECT id, v FROM m WHERE v > 10";
    assert!(h.replace_stream_table("st", plain, "1h", D).await.unwrap());
    assert_eq!(
        states_match(db.pool.clone()).await.0,
        0,
        "replaced: no state left"
    );
    assert!(h.replace_stream_table("st", q, "1h", D).await.unwrap());
    assert_eq!(states_match(db.pool.clone()).await, (2, vec![true, true]));
    h.drop_stream_table("st").await.unwrap();
    assert_eq!(
        states_match(db.pool.clone()).await.0,
        0,
        "dropped: no state left"
    );
}
// Under a stage (a top-k over the aggregate): the stage's full refresh stores the
// average's running sums too.
scalar!(
    running_sums_under_a_stage,
    D,
    Org,
    1417,
    "SELECT department_id, count(*) AS n FROM employees \
     WHERE salary > (SELECT avg(salary) FROM employees WHERE department_id <> 2) \
     GROUP BY department_id ORDER BY n DESC, department_id LIMIT 3"
);

/// An integer column that holds its type's extremes, in a table without a key: the
/// running sums take the window's added values less its removed ones (the weighted
/// sum `x * w` of a deleted -2147483648 overflowed, and every refresh after it failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_sums_at_the_integer_limits() {
    use pgstream_tests::oracle::Domain;
    let name = "running_sums_at_the_integer_limits";
    let query = "SELECT kind, amount FROM events \
                 WHERE amount <= (SELECT avg(amount) FROM events WHERE kind IS NOT NULL) \
                 AND amount < (SELECT sum(amount) FROM events)";
    let db = test_db().await;
    let o = common::oracle_for(name, query, Events, 1418).domain(
        "events",
        "amount",
        Domain::literals(&["-2147483648", "2147483647", "-2147483647", "0", "3", "NULL"]),
    );
    common::run_oracle(&db, &o, name, query, D, &[]).await;
    let strategy = common::strategy(&db, name).await;
    assert!(
        strategy.contains("keeps its counts and sums in a state table"),
        "{strategy}"
    );
}

/// IMMEDIATE mode refreshes inside each writing statement, so the running sums are
/// written there too: a statement rolled back to a savepoint takes its refresh's
/// state with it, and the sums stay those of the rows that remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_sums_roll_back_with_a_savepoint() {
    use pgstream_runtime::RuntimeHandle;
    let db = test_db().await;
    db.exec(
        "CREATE TABLE m (id int PRIMARY KEY, v numeric(10,2));
         INSERT INTO m SELECT i, i * 1.5 FROM generate_series(1, 20) i;",
    )
    .await;
    let q = "SELECT id, v FROM m WHERE v > (SELECT avg(v) FROM m)";
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", q, "1h", Mode::Immediate)
        .await
        .unwrap();
    let [state] = &pgstream_tests::compare::scalar_state_tables(&db.pool).await[..] else {
        panic!("one state table expected");
    };
    let mut tx = db.pool.begin().await.unwrap();
    for sql in [
        "INSERT INTO m VALUES (21, 100)",
        "SAVEPOINT s",
        "UPDATE m SET v = v + 1000 WHERE id <= 10",
        "DELETE FROM m WHERE id > 15",
        "ROLLBACK TO SAVEPOINT s",
        "UPDATE m SET v = NULL WHERE id = 3",
        "SAVEPOINT t",
        "INSERT INTO m VALUES (22, 5000)",
        "RELEASE SAVEPOINT t",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(db.difference(q, "id, v", "st").await, 0);
    let same = pgstream_tests::compare::scalar_bool(
        &db.pool,
        &format!(
            "SELECT (SELECT (__pgs_n0, __pgs_s0) FROM pgstream.\"{state}\") \
                    = (SELECT (count(v), sum(v)) FROM m)"
        ),
    )
    .await;
    assert!(same, "the state row is not the table's count and sum");
}
