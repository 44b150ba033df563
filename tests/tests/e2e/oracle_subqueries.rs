//! The equivalence oracle over every construct DIFFERENTIAL mode maintains (and FULL
//! mode): random INSERT/UPDATE/DELETE batches with NULLs, duplicates, key changes,
//! both sides of joins, delete-and-reinsert and TRUNCATE; refresh through
//! `pgstream.refresh_stream_table`; compare with the query evaluated afresh.
//!
//! This file: semi and anti joins from EXISTS, NOT EXISTS, IN and NOT IN subqueries;
//! subqueries in FROM and CTEs (inlined); sources without a primary key (bags); set
//! operations.
//!
//! `PGS_ORACLE_BATCHES` overrides the number of batches, `PGS_ORACLE_SEED` the seed.

use crate::common;
use common::Tables;
use pgstream_core::Mode;

use Mode::Differential as D;
use Tables::*;

oracle!(exists_correlated, D, Org, 201,
    "SELECT d.id, d.name FROM departments d WHERE EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id AND e.salary > 15)");
oracle!(not_exists_correlated, D, Org, 202,
    "SELECT d.id, d.name FROM departments d WHERE NOT EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id)");
oracle!(in_subquery, D, Org, 203,
    "SELECT id, name FROM departments WHERE id IN (SELECT department_id FROM employees WHERE name IS NOT NULL)");
oracle!(not_in_subquery_with_nulls, D, Org, 204,
    "SELECT id, name FROM departments WHERE parent_id NOT IN (SELECT department_id FROM employees WHERE salary > 15)");
oracle!(exists_under_aggregate, D, Org, 205,
    "SELECT d.parent_id, count(*) AS n FROM departments d WHERE EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id) GROUP BY d.parent_id");
oracle!(
    exists_and_not_exists_with_join,
    D,
    OrgProjects,
    206,
    "SELECT e.id, d.name FROM employees e JOIN departments d ON d.id = e.department_id \
     WHERE EXISTS (SELECT 1 FROM projects p WHERE p.department_id = d.id) \
     AND NOT EXISTS (SELECT 1 FROM projects p2 WHERE p2.department_id = d.id AND p2.budget > 8)"
);
oracle!(self_referencing_exists, D, Org, 207,
    "SELECT a.id FROM departments a WHERE EXISTS (SELECT 1 FROM departments b WHERE b.parent_id = a.id)");
oracle!(
    keyless_source_bag,
    D,
    Events,
    208,
    "SELECT kind, amount FROM events WHERE amount IS NULL OR amount > 2"
);
oracle!(keyless_join_bag, D, Events, 209,
    "SELECT a.kind, b.amount FROM events a JOIN events b ON a.kind = b.kind AND a.amount < b.amount");
oracle!(subquery_in_from_under_left_join, D, Org, 210,
    "SELECT d.id, d.name, e.n FROM departments d LEFT JOIN \
     (SELECT department_id, name AS n FROM employees WHERE salary > 15) e ON e.department_id = d.id");
oracle!(cte_referenced_twice, D, Org, 211,
    "WITH rich AS (SELECT id, department_id FROM employees WHERE salary > 15) \
     SELECT a.id, b.id AS other FROM rich a JOIN rich b ON a.department_id = b.department_id AND a.id <> b.id");
oracle!(
    aggregate_over_cte_with_column_names,
    D,
    Org,
    212,
    "WITH t(dept, pay) AS (SELECT department_id, salary FROM employees WHERE name IS NOT NULL) \
     SELECT dept, sum(pay) AS total, count(*) AS n FROM t GROUP BY dept"
);
oracle!(union_all, D, Org, 213,
    "SELECT department_id AS k, name FROM employees WHERE salary > 15 UNION ALL SELECT parent_id, name FROM departments");
oracle!(
    union_distinct,
    D,
    Org,
    214,
    "SELECT department_id AS k FROM employees UNION SELECT parent_id FROM departments WHERE id > 3"
);
oracle!(
    set_intersect,
    D,
    Org,
    215,
    "SELECT department_id AS k FROM employees INTERSECT SELECT parent_id FROM departments"
);
oracle!(
    intersect_all,
    D,
    Org,
    216,
    "SELECT department_id AS k FROM employees INTERSECT ALL SELECT parent_id FROM departments"
);
oracle!(
    set_except,
    D,
    Org,
    217,
    "SELECT id AS k FROM departments EXCEPT SELECT department_id FROM employees WHERE salary > 15"
);
oracle!(
    except_all,
    D,
    Org,
    218,
    "SELECT department_id AS k FROM employees EXCEPT ALL SELECT parent_id FROM departments"
);
oracle!(union_all_of_joins, D, OrgProjects, 219,
    "SELECT e.id, d.name FROM employees e JOIN departments d ON d.id = e.department_id \
     UNION ALL SELECT p.id, d.name FROM projects p LEFT JOIN departments d ON d.id = p.department_id");
oracle!(
    top_k,
    D,
    Org,
    220,
    "SELECT id, salary FROM employees ORDER BY salary DESC NULLS LAST, id LIMIT 5"
);

/// A DIFFERENTIAL stream table over another one (whose storage table has no primary
/// key and hidden columns), refreshed upstream first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_table_over_stream_table() {
    use pgstream_core::{QualifiedName, Schedule, StreamTableSpec};
    use pgstream_tests::oracle::{Domain, Oracle};
    let db = pgstream_tests::test_db().await;
    let o = Oracle::new(
        "rich_departments",
        "SELECT department_id, n, total FROM (SELECT department_id, count(*) AS n, sum(salary) AS total \
         FROM employees GROUP BY department_id) s WHERE n > 1",
    )
    .table("employees", common::EMPLOYEES)
    .domain("employees", "department_id", Domain::Ints(0, 6))
    .domain("employees", "salary", Domain::literals(&["10.50", "20", "NULL"]))
    .seed(221)
    .batches(common::BATCHES)
    .truncate_probability(0.02)
    .refresh_sql(
        "SELECT pgstream.refresh_stream_table('dept_totals'); SELECT pgstream.refresh_stream_table('rich_departments');",
    );
    o.setup(&db.pool).await;
    for (name, query) in [
        ("dept_totals", "SELECT department_id, count(*) AS n, sum(salary) AS total FROM employees GROUP BY department_id"),
        ("rich_departments", "SELECT * FROM dept_totals WHERE n > 1"),
    ] {
        let spec = StreamTableSpec {
            name: QualifiedName::new("public", name),
            query: query.into(),
            schedule: Schedule::default(),
            mode: Mode::Differential,
        };
        pgstream_runtime::create_stream_table(&db.pool, &spec).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    o.assert_equivalent(&db.pool).await;
}

// LATERAL subqueries (select-project-join bodies): the WHERE, which names the tables
// to the left, becomes part of the join condition.
oracle!(lateral_comma, D, Org, 230,
    "SELECT d.id, s.eid, s.salary FROM departments d, \
     LATERAL (SELECT e.id AS eid, e.salary FROM employees e WHERE e.department_id = d.id AND e.salary > 15) AS s");
oracle!(left_join_lateral, D, Org, 231,
    "SELECT d.id, d.name, s.eid, s.twice FROM departments d LEFT JOIN LATERAL \
     (SELECT e.id AS eid, e.salary * 2 AS twice FROM employees e WHERE e.department_id = d.parent_id) AS s ON s.twice > 25");
oracle!(cross_join_lateral_over_join, D, OrgProjects, 232,
    "SELECT d.id, s.eid, s.pid FROM departments d CROSS JOIN LATERAL \
     (SELECT e.id AS eid, p.id AS pid FROM employees e JOIN projects p ON p.department_id = e.department_id \
      WHERE e.department_id = d.id) AS s");
oracle!(lateral_under_aggregate, D, Org, 233,
    "SELECT d.name, count(s.eid) AS n, sum(s.salary) AS total FROM departments d LEFT JOIN LATERAL \
     (SELECT e.id AS eid, e.salary FROM employees e WHERE e.department_id = d.id) AS s ON true GROUP BY d.name");

// Aggregates, DISTINCT and ORDER BY ... LIMIT below the top of the query, and scalar
// subqueries (see `docs/SQL_SUPPORT.md` for the strategy of each).
oracle!(
    aggregate_subquery_joined_on_its_group_key,
    D,
    Org,
    240,
    "SELECT d.id, d.name, t.total, t.n, t.top FROM departments d JOIN \
     (SELECT department_id, sum(salary) AS total, count(*) AS n, max(salary) AS top \
      FROM employees GROUP BY department_id) t ON t.department_id = d.parent_id"
);
oracle!(
    aggregate_subquery_under_left_join,
    D,
    Org,
    241,
    "SELECT d.id, t.total, t.n FROM departments d LEFT JOIN \
     (SELECT department_id, sum(salary) AS total, count(salary) AS n FROM employees \
      WHERE name IS NOT NULL GROUP BY department_id) t ON t.department_id = d.id"
);
oracle!(cte_with_group_by_referenced_twice, D, Org, 242,
    "WITH t AS (SELECT department_id, count(*) AS n, max(salary) AS top FROM employees GROUP BY department_id) \
     SELECT a.department_id, a.n, a.top, b.department_id AS other FROM t a JOIN t b \
     ON a.n = b.n AND a.department_id < b.department_id");
oracle!(
    distinct_subquery_joined,
    D,
    Org,
    243,
    "SELECT d.id, x.name FROM departments d JOIN \
     (SELECT DISTINCT department_id, name FROM employees) x ON x.department_id = d.id"
);
oracle!(limit_subquery_ordered_by_a_unique_key, D, Org, 244,
    "SELECT x.id, x.salary, d.name FROM (SELECT id, department_id, salary FROM employees ORDER BY id LIMIT 5) x \
     LEFT JOIN departments d ON d.id = x.department_id");
oracle!(correlated_scalar_count, D, Org, 245,
    "SELECT d.id, d.name, (SELECT count(*) FROM employees e WHERE e.department_id = d.id) AS n FROM departments d");
oracle!(correlated_scalar_max, D, Org, 246,
    "SELECT d.id, (SELECT max(e.salary) FROM employees e WHERE e.department_id = d.parent_id) AS top FROM departments d");
oracle!(uncorrelated_scalar_in_where, D, Org, 247,
    "SELECT e.id, e.name, e.salary FROM employees e WHERE e.salary > (SELECT avg(salary) FROM employees)");
oracle!(lateral_aggregate, D, Org, 248,
    "SELECT d.id, s.n, s.total FROM departments d CROSS JOIN LATERAL \
     (SELECT count(*) AS n, sum(e.salary) AS total FROM employees e WHERE e.department_id = d.id) s");
oracle!(aggregate_over_an_aggregate_subquery_with_null_keys, D, Org, 249,
    "SELECT t.n, count(*) AS groups, sum(t.total) AS total FROM \
     (SELECT department_id, count(*) AS n, sum(salary) AS total FROM employees GROUP BY department_id) t GROUP BY t.n");
oracle!(aggregate_subquery_over_a_keyless_source, D, Events, 250,
    "SELECT s.kind, s.n, s.total, s.low FROM \
     (SELECT kind, count(*) AS n, sum(amount) AS total, min(weight) AS low FROM events WHERE amount <> 0 GROUP BY kind HAVING count(*) > 1) s");
oracle!(distinct_subquery_over_a_join, D, OrgProjects, 251,
    "SELECT x.name, p.id AS project FROM (SELECT DISTINCT d.name, d.id FROM departments d JOIN employees e ON e.department_id = d.id) x \
     JOIN projects p ON p.department_id = x.id");
oracle!(correlated_scalars_over_a_join, D, Org, 252,
    "SELECT d.id, p.name AS parent, \
     (SELECT count(*) FILTER (WHERE e.salary > 15) FROM employees e WHERE e.department_id = d.parent_id AND e.name IS NOT NULL) AS n, \
     (SELECT sum(salary) FROM employees WHERE department_id = d.id) \
     FROM departments d LEFT JOIN departments p ON p.id = d.parent_id WHERE d.id > 2");
oracle!(correlated_scalar_first_row_recomputed, D, Org, 253,
    "SELECT d.id, (SELECT e.id FROM employees e WHERE e.department_id = d.id ORDER BY e.salary DESC NULLS LAST, e.id LIMIT 1) AS top_earner FROM departments d");
oracle!(
    aggregate_subquery_in_exists,
    D,
    Org,
    254,
    "SELECT d.id, d.name FROM departments d WHERE EXISTS \
     (SELECT 1 FROM (SELECT department_id, count(*) AS n FROM employees GROUP BY department_id) t \
      WHERE t.department_id = d.id AND t.n > 1)"
);
oracle!(aggregate_cte_joined_with_itself_on_its_key, D, Org, 255,
    "WITH t AS (SELECT department_id, count(*) AS n, max(salary) AS top FROM employees WHERE salary > 15 GROUP BY department_id) \
     SELECT a.department_id, a.n, b.top FROM t a JOIN t b ON b.department_id = a.department_id");
oracle!(aggregate_subquery_under_full_join, D, OrgProjects, 256,
    "SELECT p.id, p.budget, t.department_id, t.n FROM projects p FULL JOIN \
     (SELECT department_id, count(*) AS n FROM employees GROUP BY department_id) t ON t.department_id = p.department_id");
// Aliases inside the subqueries named like the aliases of the generated SQL.
oracle!(aggregate_subqueries_with_clashing_aliases, D, Org, 257,
    "SELECT d.id, a.top, b.n FROM departments d \
     JOIN (SELECT l.department_id, max(l.salary) AS top FROM employees l GROUP BY l.department_id) a ON a.department_id = d.id \
     LEFT JOIN (SELECT k.department_id, count(*) AS n FROM employees k WHERE k.salary > 15 GROUP BY k.department_id) b \
     ON b.department_id = d.parent_id");
oracle!(aggregate_subquery_with_two_keys, D, Org, 258,
    "SELECT e.id, s.n, s.total FROM employees e LEFT JOIN \
     (SELECT r.department_id, r.name, count(*) AS n, sum(r.salary) AS total FROM employees r GROUP BY r.department_id, r.name) s \
     ON s.department_id = e.department_id AND s.name = e.name");
oracle!(lateral_aggregate_counted_in_where, D, Org, 259,
    "SELECT d.id, s.n, s.top FROM departments d, \
     LATERAL (SELECT count(e.salary) AS n, max(e.salary) AS top FROM employees e WHERE e.department_id = d.parent_id AND e.salary > 15) s \
     WHERE s.n < 2");
oracle!(left_join_lateral_aggregate_with_column_names, D, Org, 260,
    "SELECT d.id, s.a, s.b FROM departments d LEFT JOIN LATERAL \
     (SELECT count(*), min(e.name) FROM employees e WHERE d.id = e.department_id) AS s(a, b) ON true");
oracle!(lateral_grouped_recomputed, D, Org, 261,
    "SELECT d.id, s.name, s.n FROM departments d CROSS JOIN LATERAL \
     (SELECT e.name, count(*) AS n FROM employees e WHERE e.department_id = d.id GROUP BY e.name) s");
oracle!(filtered_aggregate_subquery_under_left_join, D, Org, 262,
    "SELECT d.id, x.n FROM departments d LEFT JOIN \
     (SELECT t.department_id, t.n FROM (SELECT department_id, count(*) AS n FROM employees GROUP BY department_id) t WHERE t.n > 1) x \
     ON x.department_id = d.id");
oracle!(union_all_over_an_aggregate_subquery, D, Org, 263,
    "SELECT t.department_id AS k, t.n FROM (SELECT department_id, count(*) AS n FROM employees GROUP BY department_id) t \
     UNION ALL SELECT d.parent_id, d.id FROM departments d");
// EXISTS / NOT EXISTS correlated by a key and by an inequality over both sides
// (TPC-H Q21's `l2.l_suppkey <> l1.l_suppkey`): the keyed dangling rule with the
// weights summed per row.
oracle!(exists_and_not_exists_keyed_with_an_inequality, D, Org, 264,
    "SELECT e.id, e.name FROM employees e \
     WHERE EXISTS (SELECT 1 FROM employees e2 WHERE e2.department_id = e.department_id AND e2.id <> e.id) \
     AND NOT EXISTS (SELECT 1 FROM employees e3 WHERE e3.department_id = e.department_id AND e3.id <> e.id AND e3.salary > e.salary)");
// A correlated scalar aggregate in WHERE over a filtered join (TPC-H Q17): the
// aggregate leaf recomputes only the groups the filtered side carries.
oracle!(
    correlated_scalar_aggregate_over_a_filtered_join,
    D,
    Org,
    265,
    "SELECT e.id, e.salary, d.name FROM employees e, departments d \
     WHERE d.id = e.department_id AND d.parent_id IS NOT NULL \
     AND e.salary < (SELECT avg(e2.salary) FROM employees e2 WHERE e2.department_id = d.id)"
);
// Aggregate subqueries on either side of inner and RIGHT joins with a filtered other side.
oracle!(aggregate_subquery_left_of_a_filtered_join, D, Org, 266,
    "SELECT t.department_id, t.n, d.name FROM \
     (SELECT department_id, count(*) AS n, sum(salary) AS total FROM employees GROUP BY department_id) t \
     JOIN departments d ON d.id = t.department_id WHERE d.parent_id IS NOT NULL");
oracle!(aggregate_subquery_right_join_filtered, D, Org, 267,
    "SELECT d.id, t.n FROM \
     (SELECT department_id, count(*) AS n FROM employees WHERE salary > 12 GROUP BY department_id) t \
     RIGHT JOIN departments d ON t.department_id = d.id WHERE d.id > 2");
