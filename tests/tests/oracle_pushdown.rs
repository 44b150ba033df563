//! The oracle over queries whose conditions the compiler moves (predicate pushdown,
//! `pgstream-core/src/pushdown.rs`): comma joins of three and four tables with the
//! conditions in WHERE (some in an order that needs the joins rebuilt), one-table
//! conditions, conditions in inner-join ON clauses, in inlined subqueries and
//! `EXISTS` subqueries, and WHERE conditions over the nullable side of outer joins,
//! which must stay above the join.

mod common;
use common::Tables;
use pgstream_core::Mode;

use Mode::Differential as D;
use Tables::*;

oracle!(
    comma_join_three_tables,
    D,
    OrgProjects,
    101,
    "SELECT e.id, d.name, p.id AS pid FROM employees e, departments d, projects p \
     WHERE e.department_id = d.id AND p.department_id = d.id AND e.salary > 10 AND p.budget < 5"
);
oracle!(comma_join_four_tables_reordered, D, OrgProjects, 102,
    "SELECT p.id AS pid, e.id AS eid, up.name AS parent FROM projects p, employees e, departments d, departments up \
     WHERE up.id = d.parent_id AND p.department_id = d.id AND e.department_id = d.id AND up.name <> e.name");
oracle!(
    comma_join_with_left_join,
    D,
    OrgProjects,
    103,
    "SELECT d.id, e.id AS eid, p.id AS pid, e.salary FROM departments d LEFT JOIN employees e \
     ON e.department_id = d.id AND e.salary > 5, projects p \
     WHERE p.department_id = d.id AND (e.salary IS NULL OR e.salary < 30) AND p.budget > 1"
);
oracle!(
    where_on_the_nullable_side_stays_above,
    D,
    Org,
    104,
    "SELECT d.id, d.name FROM departments d LEFT JOIN employees e ON e.department_id = d.id \
     WHERE e.id IS NULL AND d.parent_id IS NOT NULL"
);
oracle!(
    right_join_with_where,
    D,
    Org,
    105,
    "SELECT d.id, e.id AS eid FROM employees e RIGHT JOIN departments d ON d.id = e.department_id \
     WHERE d.parent_id > 1 AND e.name IS DISTINCT FROM 'x'"
);
oracle!(
    comma_join_aggregate,
    D,
    OrgProjects,
    106,
    "SELECT d.name, count(*) AS n, sum(e.salary) AS s FROM employees e, departments d, projects p \
     WHERE e.department_id = d.id AND p.department_id = d.id AND p.budget > 2 GROUP BY d.name"
);
oracle!(comma_join_in_a_subquery, D, OrgProjects, 107,
    "SELECT s.eid, p.id AS pid FROM (SELECT e.id AS eid, d.id AS did FROM employees e, departments d \
     WHERE e.department_id = d.id AND d.name > 'c') AS s, projects p WHERE p.department_id = s.did AND p.budget <> s.eid");
oracle!(comma_join_in_exists, D, OrgProjects, 108,
    "SELECT d.id, d.name FROM departments d WHERE d.parent_id IS NOT NULL AND EXISTS \
     (SELECT 1 FROM employees e, projects p WHERE e.department_id = p.department_id AND p.department_id = d.id AND e.salary > 3)");
oracle!(
    inner_join_on_with_one_side_conditions,
    D,
    OrgProjects,
    109,
    "SELECT e.id, d.id AS did, p.id AS pid FROM employees e JOIN departments d \
     ON d.id = e.department_id AND e.salary > 10 AND d.parent_id IS NOT NULL \
     JOIN projects p ON p.department_id = d.id AND p.budget = e.id % 5"
);
oracle!(cte_comma_join, D, OrgProjects, 110,
    "WITH staff AS (SELECT e.id, e.salary, d.parent_id FROM employees e, departments d WHERE d.id = e.department_id) \
     SELECT s.id, p.id AS pid FROM staff s, projects p, departments up \
     WHERE up.id = s.parent_id AND p.department_id = up.id AND s.salary < 40");
oracle!(anti_join_with_conditions, D, OrgProjects, 111,
    "SELECT d.id FROM departments d, projects p WHERE p.department_id = d.id AND p.budget > 0 AND NOT EXISTS \
     (SELECT 1 FROM employees e WHERE e.department_id = d.id AND e.salary > 20)");
