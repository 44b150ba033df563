//! The equivalence oracle over every construct DIFFERENTIAL mode maintains (and FULL
//! mode): random INSERT/UPDATE/DELETE batches with NULLs, duplicates, key changes,
//! both sides of joins, delete-and-reinsert and TRUNCATE; refresh through
//! `pgstream.refresh_stream_table`; compare with the query evaluated afresh.
//!
//! `PGS_ORACLE_BATCHES` overrides the number of batches, `PGS_ORACLE_SEED` the seed.

use crate::common;
use common::Tables;
use pgstream_core::Mode;

use Mode::{Differential as D, Full as F};
use Tables::*;

oracle!(scan_filter_project, D, Org, 1,
    "SELECT id, name, salary * 2 AS double_salary, upper(name) AS loud, COALESCE(department_id, -1) AS dept \
     FROM employees WHERE salary > 15 OR name IS NULL");
oracle!(scan_all_columns, D, Org, 2, "SELECT * FROM employees");
oracle!(inner_join, D, Org, 3,
    "SELECT e.id, e.name, d.name AS dname, e.salary FROM employees e JOIN departments d ON d.id = e.department_id");
oracle!(
    inner_join_three_tables,
    D,
    OrgProjects,
    4,
    "SELECT e.id AS eid, d.id AS did, p.id AS pid, p.budget + 1 AS b FROM employees e \
     JOIN departments d ON d.id = e.department_id JOIN projects p ON p.department_id = d.id \
     WHERE p.budget IS NULL OR p.budget > 3"
);
oracle!(comma_join_with_where, D, Org, 5,
    "SELECT e.id, d.id AS did FROM employees e, departments d WHERE e.department_id = d.id AND d.name <> e.name");
oracle!(non_equi_join, D, Org, 6,
    "SELECT e.id, d.id AS did FROM employees e JOIN departments d ON e.department_id < d.id AND d.parent_id = 3");
oracle!(left_join, D, Org, 7,
    "SELECT d.id, d.name, e.id AS eid, e.salary FROM departments d LEFT JOIN employees e ON e.department_id = d.id");
oracle!(left_join_chain, D, OrgProjects, 8,
    "SELECT d.id, e.id AS eid, p.id AS pid FROM departments d LEFT JOIN employees e ON e.department_id = d.id \
     LEFT JOIN projects p ON p.department_id = d.id AND p.budget > 2");
oracle!(left_self_join, D, Org, 9,
    "SELECT a.id, a.name AS child, b.name AS parent FROM departments a LEFT JOIN departments b ON a.parent_id = b.id");
oracle!(right_join, D, Org, 10,
    "SELECT e.id AS eid, d.id AS did, d.name FROM employees e RIGHT JOIN departments d ON d.id = e.department_id");
oracle!(full_join, D, Org, 11,
    "SELECT e.id AS eid, d.id AS did FROM employees e FULL JOIN departments d ON d.id = e.department_id AND e.salary > 15");
// Dangling rows of outer joins under two strategies: the keyed one (equalities
// between the other side's columns and the preserved side, plus conditions on either
// side alone, as above) and the general one (any other condition, here a range and
// an expression key).
oracle!(left_join_non_equi, D, Org, 70,
    "SELECT d.id, e.id AS eid FROM departments d LEFT JOIN employees e ON e.department_id > d.id AND e.salary < d.id * 4");
oracle!(full_join_expression_key, D, Org, 71,
    "SELECT e.id AS eid, d.id AS did FROM employees e FULL JOIN departments d ON d.id + 1 = e.department_id + 1 AND d.parent_id IS NOT NULL");
oracle!(left_join_keyed_by_expression, D, Org, 72,
    "SELECT d.id, e.id AS eid FROM departments d LEFT JOIN employees e ON e.department_id = COALESCE(d.parent_id, d.id) AND e.name IS NOT NULL");
oracle!(inner_join_under_left_join, D, OrgProjects, 12,
    "SELECT d.id, e.id AS eid, p.id AS pid FROM departments d LEFT JOIN (employees e JOIN projects p ON p.department_id = e.department_id) ON e.department_id = d.id");
oracle!(
    tutorial_department_stats,
    D,
    Org,
    13,
    "SELECT d.id AS department_id, d.name AS department_name, COUNT(e.id) AS headcount, \
     COALESCE(SUM(e.salary), 0) AS total_salary, COALESCE(AVG(e.salary), 0) AS avg_salary \
     FROM departments d LEFT JOIN employees e ON e.department_id = d.id GROUP BY d.id, d.name"
);
oracle!(group_by_with_null_keys, D, Org, 14,
    "SELECT department_id, count(*) AS n, count(salary) AS ns, sum(salary) AS s, avg(salary) AS a, \
     sum(salary) / count(*) AS ratio, COALESCE(sum(salary), 0) + 1 AS s1 FROM employees GROUP BY department_id");
oracle!(
    global_aggregate,
    D,
    Org,
    15,
    "SELECT count(*) AS n, sum(salary) AS s, avg(salary) AS a, count(name) AS named FROM employees"
);
oracle!(
    global_aggregate_with_filter,
    D,
    Org,
    16,
    "SELECT count(*) AS n, sum(salary) AS s FROM employees WHERE department_id > 5"
);
oracle!(
    join_aggregate_by_non_key,
    D,
    Org,
    17,
    "SELECT d.name, count(*) AS n, sum(e.salary) AS s, avg(e.salary) AS a FROM departments d \
     JOIN employees e ON e.department_id = d.id GROUP BY d.name"
);
oracle!(aggregate_over_keyless_source, D, Events, 18,
    "SELECT kind, count(*) AS n, sum(amount) AS s, avg(amount) AS a, count(amount) AS na FROM events GROUP BY kind");
// No column of the keyless source read: its leaf carries a placeholder column.
oracle!(
    count_reading_no_column_of_a_keyless_source,
    D,
    Events,
    1801,
    "SELECT count(*) AS n FROM events"
);
oracle!(
    count_per_row_reading_no_column_of_a_keyless_source,
    D,
    Events,
    1802,
    "SELECT e.kind, count(*) AS n FROM events e, events x WHERE e.amount > 5 GROUP BY e.kind"
);
oracle!(
    float_aggregates,
    D,
    Events,
    19,
    "SELECT kind, sum(weight) AS sw, avg(weight) AS aw FROM events GROUP BY kind"
);
oracle!(group_by_expression, D, OrgProjects, 20,
    "SELECT department_id % 3 AS bucket, sum(budget) AS total, avg(budget) AS mean FROM projects GROUP BY department_id % 3");
oracle!(recursive_tree, D, Org, 21,
    "WITH RECURSIVE tree AS ( \
       SELECT id, name, parent_id, name AS path, 0 AS depth FROM departments WHERE parent_id IS NULL OR parent_id > 9 \
       UNION ALL \
       SELECT d.id, d.name, d.parent_id, tree.path || ' > ' || d.name, tree.depth + 1 \
       FROM departments d JOIN tree ON d.parent_id = tree.id WHERE tree.depth < 4) \
     SELECT id, name, parent_id, path, depth FROM tree");
oracle!(
    full_mode_distinct,
    F,
    Org,
    22,
    "SELECT DISTINCT department_id, salary FROM employees"
);
oracle!(
    full_mode_bag_with_duplicates,
    F,
    Org,
    23,
    "SELECT department_id FROM employees WHERE salary > 15"
);
oracle!(full_mode_aggregate, F, Org, 24,
    "SELECT department_id, min(salary) AS lo, max(salary) AS hi, string_agg(name, ',' ORDER BY name, id) AS names FROM employees GROUP BY department_id");
