//! The equivalence oracle over every construct DIFFERENTIAL mode maintains (and FULL
//! mode): random INSERT/UPDATE/DELETE batches with NULLs, duplicates, key changes,
//! both sides of joins, delete-and-reinsert and TRUNCATE; refresh through
//! `pgstream.refresh_stream_table`; compare with the query evaluated afresh.
//!
//! This file: DISTINCT, aggregates maintained by affected-group recompute (MIN, MAX,
//! ordered aggregates, DISTINCT aggregates, FILTER, statistics), HAVING, and window
//! functions by partition recompute.
//!
//! `PGS_ORACLE_BATCHES` overrides the number of batches, `PGS_ORACLE_SEED` the seed.

use crate::common;
use common::Tables;
use pgstream_core::Mode;

use Mode::Differential as D;
use Tables::*;

oracle!(
    select_distinct,
    D,
    Org,
    101,
    "SELECT DISTINCT department_id, salary FROM employees"
);
oracle!(distinct_over_join, D, Org, 102,
    "SELECT DISTINCT d.name, e.salary FROM departments d JOIN employees e ON e.department_id = d.id");
oracle!(min_max_per_group, D, Org, 103,
    "SELECT department_id, min(salary) AS lo, max(salary) AS hi, count(*) AS n FROM employees GROUP BY department_id");
oracle!(
    min_max_global,
    D,
    Org,
    104,
    "SELECT min(salary) AS lo, max(name) AS hi FROM employees"
);
oracle!(ordered_aggregates, D, Org, 105,
    "SELECT department_id, string_agg(name, ',' ORDER BY name, id) AS names, array_agg(id ORDER BY id) AS ids, \
     jsonb_agg(salary ORDER BY id) AS salaries FROM employees GROUP BY department_id");
oracle!(boolean_and_distinct_aggregates, D, Org, 106,
    "SELECT department_id, bool_and(salary > 15) AS all_rich, bool_or(name IS NULL) AS some_unnamed, \
     count(DISTINCT salary) AS salaries FROM employees GROUP BY department_id");
oracle!(filter_clause, D, Org, 107,
    "SELECT department_id, count(*) FILTER (WHERE salary > 15) AS rich, sum(salary) FILTER (WHERE name IS NOT NULL) AS named \
     FROM employees GROUP BY department_id");
oracle!(statistics_aggregates, D, Org, 108,
    "SELECT department_id, stddev(salary) AS sd, variance(salary) AS var FROM employees GROUP BY department_id");
oracle!(having_with_counters, D, Org, 109,
    "SELECT department_id, count(*) AS n, sum(salary) AS s FROM employees GROUP BY department_id HAVING count(*) > 1");
oracle!(having_with_min_over_join, D, Org, 110,
    "SELECT d.name, min(e.salary) AS lo FROM departments d LEFT JOIN employees e ON e.department_id = d.id \
     GROUP BY d.name HAVING min(e.salary) IS NULL OR min(e.salary) < 50");
oracle!(
    global_having,
    D,
    Org,
    111,
    "SELECT count(*) AS n FROM employees HAVING count(*) > 18"
);
oracle!(window_partitioned, D, Org, 112,
    "SELECT id, department_id, salary, rank() OVER (PARTITION BY department_id ORDER BY salary, id) AS r, \
     sum(salary) OVER (PARTITION BY department_id) AS dept_total FROM employees");
oracle!(window_over_join, D, Org, 113,
    "SELECT d.name, e.id, count(*) OVER (PARTITION BY d.id) AS n, lag(e.id) OVER (PARTITION BY d.id ORDER BY e.id) AS prev \
     FROM departments d JOIN employees e ON e.department_id = d.id WHERE e.salary IS NOT NULL");
// DISTINCT ON: one row per key, the first in ORDER BY (which ends with a key here, so
// the row is determined); keys and ORDER BY items by expression, output name or
// position; NULL keys and NULL sort values.
oracle!(
    distinct_on_per_key,
    D,
    Org,
    116,
    "SELECT DISTINCT ON (department_id) department_id, id, salary FROM employees \
     ORDER BY department_id, salary DESC NULLS LAST, id"
);
oracle!(
    distinct_on_over_join_by_output_name,
    D,
    Org,
    117,
    "SELECT DISTINCT ON (dname) d.name AS dname, e.id AS eid, e.salary FROM departments d \
     JOIN employees e ON e.department_id = d.id ORDER BY dname, e.salary NULLS FIRST, 2 DESC"
);
oracle!(distinct_on_expression_and_position, D, Org, 118,
    "SELECT DISTINCT ON (1, salary IS NULL) COALESCE(department_id, -1) AS dept, id, salary FROM employees \
     WHERE id > 2 ORDER BY 1, salary IS NULL, id DESC");
oracle!(window_partitioned_by_predicate, D, Org, 119,
    "SELECT id, salary IS NULL AS unpaid, count(*) OVER (PARTITION BY salary IS NULL) AS n FROM employees");
oracle!(min_grouped_by_predicate, D, Org, 120,
    "SELECT salary IS NULL AS unpaid, min(id) AS lo, max(name) AS hi FROM employees GROUP BY salary IS NULL");
oracle!(window_without_partition, D, Org, 114,
    "SELECT id, row_number() OVER (ORDER BY id) AS rn, lead(salary) OVER (ORDER BY id) AS next FROM employees");
oracle!(
    exact_scale_of_unconstrained_numeric,
    D,
    Ledger,
    115,
    "SELECT acct, sum(amount) AS s, avg(amount) AS a, count(amount) AS n FROM ledger GROUP BY acct"
);
