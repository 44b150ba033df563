//! The oracle over `JOIN ... USING` (inner, left, right and full, whose merged
//! column is `COALESCE` of both sides), `NATURAL JOIN` and column aliases on tables.

use crate::common;
use common::Tables;
use pgstream_core::Mode;

use Mode::Differential as D;
use Tables::*;

oracle!(using_inner, D, OrgProjects, 201,
    "SELECT department_id, e.id AS eid, p.id AS pid, budget FROM employees e JOIN projects p USING (department_id)");
oracle!(using_left, D, OrgProjects, 202,
    "SELECT department_id, e.id AS eid, p.id AS pid FROM employees e LEFT JOIN projects p USING (department_id) \
     WHERE e.salary > 5");
oracle!(using_right, D, OrgProjects, 203,
    "SELECT department_id, e.id AS eid, p.id AS pid FROM employees e RIGHT JOIN projects p USING (department_id)");
oracle!(using_full, D, OrgProjects, 204,
    "SELECT department_id, e.id AS eid, p.id AS pid FROM employees e FULL JOIN projects p USING (department_id)");
oracle!(
    using_full_grouped_by_merged_column,
    D,
    OrgProjects,
    205,
    "SELECT department_id, count(*) AS n, count(e.id) AS ne FROM employees e FULL JOIN projects p \
     USING (department_id) GROUP BY department_id"
);
oracle!(
    natural_join,
    D,
    Org,
    206,
    "SELECT * FROM employees NATURAL JOIN departments"
);
oracle!(column_aliases_on_tables, D, Org, 207,
    "SELECT d.did, d.dname, e.id FROM departments AS d(did, dname) JOIN employees e ON e.department_id = d.did \
     WHERE d.dname <> 'x'");
oracle!(using_three_tables, D, OrgProjects, 208,
    "SELECT department_id, e.id AS eid, p.id AS pid, d.name FROM employees e JOIN projects p USING (department_id) \
     JOIN departments AS d(department_id) USING (department_id)");
