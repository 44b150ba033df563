//! DESIGN.md invariant 4: a hash collision of `__pgs_row_id` may cost speed, never
//! correctness. This test binary makes row ids collide (a hash reduced to three
//! values, for everything it compiles) and runs the oracle over one query of each
//! strategy: keyed rows, aggregate counters, group recompute, bags, windows, set
//! operations, aggregate subqueries, recompute-and-diff and FULL mode.

use crate::common;
use common::Tables::*;
use pgstream_core::Mode::{Differential as D, Full as F};

/// Each test turns the weak hash on before it compiles (the switch is per process).
macro_rules! colliding {
    ($test:ident, $mode:expr, $tables:expr, $seed:expr, $query:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            pgstream_core::testing::set_weak_row_hash(true);
            common::check(stringify!($test), $query, $mode, $tables, $seed).await;
        }
    };
}

colliding!(collide_keyed_join, D, Org, 301,
    "SELECT e.id, d.id AS did, e.salary FROM employees e LEFT JOIN departments d ON d.id = e.department_id");
colliding!(
    collide_counters,
    D,
    Org,
    302,
    "SELECT department_id, count(*) AS n, sum(salary) AS s FROM employees GROUP BY department_id"
);
colliding!(collide_group_recompute, D, Org, 303,
    "SELECT department_id, min(salary) AS lo, max(name) AS hi FROM employees GROUP BY department_id");
colliding!(
    collide_bag,
    D,
    Events,
    304,
    "SELECT kind, amount FROM events"
);
colliding!(
    collide_window,
    D,
    Org,
    305,
    "SELECT id, rank() OVER (PARTITION BY department_id ORDER BY salary, id) AS r FROM employees"
);
colliding!(
    collide_union,
    D,
    Org,
    306,
    "SELECT department_id AS k FROM employees UNION SELECT parent_id FROM departments"
);
colliding!(
    collide_full_mode,
    F,
    Org,
    307,
    "SELECT DISTINCT department_id, salary FROM employees"
);
colliding!(collide_aggregate_subquery, D, Org, 308,
    "SELECT d.id, t.n, t.top FROM departments d RIGHT JOIN \
     (SELECT department_id, count(*) AS n, max(salary) AS top FROM employees GROUP BY department_id) t \
     ON t.department_id = d.parent_id");
colliding!(collide_correlated_scalar_count, D, Org, 309,
    "SELECT d.id, (SELECT count(*) FROM employees e WHERE e.department_id = d.id) AS n FROM departments d");

#[test]
fn the_switch_changes_the_generated_sql() {
    use pgstream_core::*;
    let catalog = Catalog::from_ddl("CREATE TABLE t (id int PRIMARY KEY, v int)").unwrap();
    let spec = StreamTableSpec {
        name: QualifiedName::new("public", "s"),
        query: "SELECT id, v FROM t".into(),
        schedule: Schedule::default(),
        mode: Mode::Differential,
    };
    testing::set_weak_row_hash(true);
    let c = compile(&spec, &catalog).unwrap();
    assert!(c
        .render(&c.placeholder_context())
        .full_refresh
        .contains("% 3)"));
}
