//! The equivalence oracle over stream tables that read views: the view is expanded
//! into its body at creation, change capture goes on the tables it reads, and the
//! stream table must equal the query run directly (PostgreSQL evaluating the view).
//! Random INSERT/UPDATE/DELETE batches with NULLs, duplicates, key changes, both
//! sides of joins, delete-and-reinsert and TRUNCATE, as in the other oracle files.
//!
//! `PGS_ORACLE_BATCHES` overrides the number of batches, `PGS_ORACLE_SEED` the seed.

mod common;
use common::Tables;
use pgstream_core::Mode;

use Mode::Differential as D;
use Tables::*;

/// A view with a join and a filter.
const STAFF: &str = "CREATE VIEW staff AS
    SELECT e.id, e.name, e.salary, e.department_id, d.name AS dept, d.parent_id
      FROM employees e JOIN departments d ON d.id = e.department_id
     WHERE e.salary > 15";
/// A view over that view, with a column list.
const NAMED_STAFF: &str = "CREATE VIEW named_staff (staff_id, staff_name) AS
    SELECT id, name, dept, parent_id FROM staff WHERE name IS NOT NULL";
/// A view with a column list, read by an aggregate.
const PAY: &str =
    "CREATE VIEW pay (dept, amount) AS SELECT department_id, salary FROM employees";
/// A view with GROUP BY: no delta rule below a join, so FULL mode only.
const DEPT_TOTALS: &str = "CREATE VIEW dept_totals AS
    SELECT department_id, sum(salary) AS total, count(*) AS n FROM employees GROUP BY department_id";

oracle!(view_with_join_and_filter_joined_with_a_table, D, OrgProjects, 501, ddl = [STAFF],
    "SELECT s.id, s.dept, p.id AS project, p.budget \
     FROM staff s JOIN projects p ON p.department_id = s.parent_id");
oracle!(view_over_view_under_left_join, D, Org, 502, ddl = [STAFF, NAMED_STAFF],
    "SELECT d.id, d.name, n.staff_id, n.staff_name, n.dept \
     FROM departments d LEFT JOIN named_staff n ON n.parent_id = d.id");
oracle!(aggregate_over_view_with_column_list, D, Org, 503, ddl = [PAY],
    "SELECT dept, sum(amount) AS total, count(*) AS n, min(amount) AS low FROM pay GROUP BY dept");
oracle!(view_in_exists_and_not_in, D, Org, 504, ddl = [STAFF],
    "SELECT d.id, d.name FROM departments d \
     WHERE EXISTS (SELECT 1 FROM staff s WHERE s.department_id = d.id) \
     AND d.id NOT IN (SELECT parent_id FROM staff WHERE parent_id IS NOT NULL)");
oracle!(view_referenced_twice, D, Org, 505, ddl = [STAFF],
    "SELECT a.id, b.id AS colleague FROM staff a JOIN staff b \
     ON a.department_id = b.department_id AND a.id < b.id");
oracle!(aggregating_view_in_full_mode, Mode::Full, Org, 506, ddl = [DEPT_TOTALS],
    "SELECT d.name, t.total, t.n FROM dept_totals t JOIN departments d ON d.id = t.department_id");
