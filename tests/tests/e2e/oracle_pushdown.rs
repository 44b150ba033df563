//! The oracle over queries whose conditions the compiler moves (predicate pushdown,
//! `pgstream-core/src/pushdown.rs`): comma joins of three and four tables with the
//! conditions in WHERE (some in an order that needs the joins rebuilt), one-table
//! conditions, conditions in inner-join ON clauses, in inlined subqueries and
//! `EXISTS` subqueries, and WHERE conditions over the nullable side of outer joins,
//! which must stay above the join. The `key_link_*` cases restrict a source's
//! window by the restriction of the leaf whose primary key its rows reference
//! (`strategy/prefilter.rs`): both sides change in one batch, keys move in and out
//! of the restriction, rows are deleted and re-inserted, keys are NULL.

use crate::common;
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
/// A key-link case: the OrgProjects tables, with `projects.budget` drawn among the
/// employees' ids (the cases join it to `employees.id`, so that employees are
/// referenced by their key and their changes fan out).
async fn key_link(name: &str, seed: u64, query: &str) {
    let db = pgstream_tests::test_db().await;
    let o = common::oracle_for(name, query, OrgProjects, seed).domain(
        "projects",
        "budget",
        pgstream_tests::oracle::Domain::Ints(0, 18),
    );
    common::run_oracle(&db, &o, name, query, D, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_link_to_a_filtered_dimension() {
    key_link(
        "key_link_to_a_filtered_dimension",
        112,
        "SELECT e.id, e.salary, p.id AS pid, d.name FROM employees e, projects p, departments d \
         WHERE p.budget = e.id AND e.department_id = d.id AND d.parent_id IN (1, 2, 3)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_link_two_hops() {
    key_link("key_link_two_hops", 113,
        "SELECT e.id, p.id AS pid, d.id AS did FROM employees e, projects p, departments d, departments up \
         WHERE p.budget = e.id AND e.department_id = d.id AND d.parent_id = up.id AND up.parent_id < 4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_link_under_an_aggregate() {
    key_link(
        "key_link_under_an_aggregate",
        114,
        "SELECT d.parent_id, count(*) AS n, sum(e.salary) AS s FROM projects p JOIN employees e \
         ON e.id = p.budget JOIN departments d ON d.id = e.department_id WHERE d.parent_id > 5 \
         GROUP BY d.parent_id",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_link_into_an_exists_subquery() {
    key_link(
        "key_link_into_an_exists_subquery",
        115,
        "SELECT e.id, p.id AS pid FROM employees e, projects p WHERE p.budget = e.id AND EXISTS \
         (SELECT 1 FROM departments d WHERE d.id = e.department_id AND d.parent_id < 5)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_link_not_through_an_outer_join() {
    key_link(
        "key_link_not_through_an_outer_join",
        116,
        "SELECT e.id, d.name, p.id AS pid FROM employees e JOIN projects p ON p.budget = e.id \
         LEFT JOIN departments d ON d.id = e.department_id AND d.parent_id > 3",
    )
    .await;
}

// Disjunctions whose branches share conjuncts (`pushdown::factor_or`): the shared
// equality becomes the join's key, a shared one-table condition filters its table,
// and a branch that is only shared conjuncts absorbs the others. NULLs in the
// shared and the residual parts (salary, parent_id) exercise three-valued logic.
oracle!(
    or_branches_share_a_join_key,
    D,
    OrgProjects,
    117,
    "SELECT e.id, p.id AS pid, e.salary FROM employees e, projects p \
     WHERE (p.department_id = e.department_id AND p.budget > 1 AND e.salary > 20) \
        OR (p.department_id = e.department_id AND p.budget > 1 AND e.salary < 10) \
        OR (p.department_id = e.department_id AND p.budget > 1 AND p.budget = e.id % 7)"
);
oracle!(
    or_branches_share_a_key_under_an_aggregate,
    D,
    OrgProjects,
    118,
    "SELECT d.name, count(*) AS n, sum(e.salary) AS s FROM employees e, departments d \
     WHERE (d.id = e.department_id AND d.parent_id IN (1, 2) AND e.salary BETWEEN 1 AND 20) \
        OR (d.id = e.department_id AND d.parent_id IS NULL AND e.salary > 30) \
        OR (d.id = e.department_id AND d.parent_id > 4 AND e.name < 'm') GROUP BY d.name"
);
oracle!(or_absorbed_by_a_shared_branch, D, Org, 119,
    "SELECT e.id, e.salary, d.parent_id FROM employees e JOIN departments d ON d.id = e.department_id \
     WHERE (d.parent_id > 2 AND e.salary > 5) OR (d.parent_id > 2 AND e.salary > 5 AND e.name > 'k') \
        OR (e.salary > 5 AND d.parent_id > 2 AND d.name IS NULL)");
oracle!(or_in_a_left_join_on, D, Org, 120,
    "SELECT d.id, e.id AS eid, e.salary FROM departments d LEFT JOIN employees e \
     ON (e.department_id = d.id AND e.salary > 20) OR (e.department_id = d.id AND d.parent_id IS NULL)");
