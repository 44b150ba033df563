//! The equivalence oracle over the SQL surface DIFFERENTIAL mode refused before
//! (issue 13, item 4): random INSERT/UPDATE/DELETE batches with NULLs, duplicates,
//! key changes and TRUNCATE, 200 batches, each compared with the query run afresh.
//!
//! Maintained by delta rules: a `WITH` inside a subquery or an `EXISTS` body (inlined
//! like a top-level CTE), named windows (inlined into the window strategy), and
//! `EXISTS`/`IN` bodies with `DISTINCT`, `ORDER BY ... LIMIT 1` or a `GROUP BY` over one
//! table (semi/anti joins, the grouped body an aggregate-subquery leaf). Maintained by
//! recompute-and-diff, with the reason in the strategy: subqueries under `OR`, a mix
//! of set operators, window functions over a `GROUP BY`, `DISTINCT` with `GROUP BY`,
//! `ORDER BY ... LIMIT ... OFFSET`.
//!
//! `PGS_ORACLE_BATCHES` overrides the number of batches, `PGS_ORACLE_SEED` the seed;
//! `PGS_ORACLE_MODE=immediate` runs every case as IMMEDIATE.

use crate::common;
use common::Tables;
use pgstream_core::Mode;

use Mode::Differential as D;
use Tables::*;

oracle!(with_inside_a_subquery_in_from, D, Org, 1301,
    "SELECT s.id, d.name FROM (WITH rich AS (SELECT id, department_id FROM employees WHERE salary > 15) \
     SELECT rich.id, rich.department_id FROM rich) AS s JOIN departments d ON d.id = s.department_id");
oracle!(with_inside_exists, D, Org, 1302,
    "SELECT d.id, d.name FROM departments d WHERE EXISTS (WITH e AS (SELECT department_id FROM employees WHERE name IS NOT NULL) \
     SELECT 1 FROM e WHERE e.department_id = d.id)");
oracle!(with_inside_a_cte_with_shadowing, D, Org, 1303,
    "WITH e AS (SELECT id, parent_id FROM departments) \
     SELECT x.id, x.k FROM (WITH e AS (SELECT id, department_id AS k FROM employees) SELECT id, k FROM e) AS x \
     JOIN e AS d ON d.id = x.k");
oracle!(
    named_windows,
    D,
    Org,
    1304,
    "SELECT id, rank() OVER w AS r, sum(salary) OVER (w ORDER BY id) AS running FROM employees \
     WINDOW w AS (PARTITION BY department_id)"
);
oracle!(in_with_distinct_and_order_by, D, Org, 1305,
    "SELECT id, name FROM departments WHERE id IN (SELECT DISTINCT department_id FROM employees ORDER BY 1)");
oracle!(exists_with_limit_one, D, Org, 1306,
    "SELECT d.id FROM departments d WHERE EXISTS (SELECT e.id FROM employees e WHERE e.department_id = d.id ORDER BY e.salary LIMIT 1)");
oracle!(in_with_group_by_having, D, Org, 1307,
    "SELECT id, name FROM departments WHERE id IN (SELECT department_id FROM employees GROUP BY department_id HAVING count(*) > 1)");
oracle!(not_in_with_an_aggregate, D, Org, 1308,
    "SELECT id, parent_id FROM departments WHERE parent_id NOT IN (SELECT max(department_id) FROM employees GROUP BY name)");
oracle!(not_exists_with_group_by, D, Org, 1309,
    "SELECT d.id FROM departments d WHERE NOT EXISTS (SELECT 1 FROM employees GROUP BY department_id HAVING sum(salary) > 100)");
oracle!(
    subquery_under_or,
    D,
    Org,
    1310,
    "SELECT d.id, d.name FROM departments d WHERE d.parent_id IS NULL \
     OR EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id AND e.salary > 15)"
);
oracle!(
    mixed_set_operators,
    D,
    Org,
    1311,
    "SELECT department_id AS k FROM employees UNION SELECT parent_id FROM departments \
     EXCEPT SELECT id FROM departments WHERE parent_id IS NULL"
);
oracle!(window_over_group_by, D, Org, 1312,
    "SELECT department_id, count(*) AS n, rank() OVER (ORDER BY count(*) DESC, department_id) AS r \
     FROM employees GROUP BY department_id");
oracle!(
    distinct_with_group_by,
    D,
    Org,
    1313,
    "SELECT DISTINCT count(*) AS n FROM employees GROUP BY department_id"
);
oracle!(
    top_k_with_offset,
    D,
    Org,
    1314,
    "SELECT id, salary FROM employees ORDER BY salary DESC NULLS LAST, id LIMIT 4 OFFSET 2"
);
