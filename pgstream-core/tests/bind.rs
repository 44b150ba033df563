//! Binding and strategy choice.
mod common;
use common::*;
use pgstream_core::*;

fn columns(c: &Compiled) -> Vec<&str> {
    c.columns.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn tutorial_stats_is_incremental() {
    let c = diff(DEPARTMENT_STATS).unwrap();
    assert_eq!(c.strategy, Strategy::Incremental);
    assert_eq!(
        columns(&c),
        [
            "department_id",
            "department_name",
            "headcount",
            "total_salary",
            "avg_salary"
        ]
    );
    let names: Vec<String> = c.sources.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["public.departments", "public.employees"]);
}

#[test]
fn recursive_query_is_recompute_diff() {
    let c = diff(DEPARTMENT_TREE).unwrap();
    assert!(matches!(c.strategy, Strategy::RecomputeDiff { .. }));
    assert_eq!(columns(&c), ["id", "name", "parent_id", "path", "depth"]);
    assert_eq!(c.sources.len(), 1);
}

#[test]
fn full_mode_takes_anything_postgres_takes() {
    let q = "SELECT DISTINCT name, random() AS r FROM departments ORDER BY name LIMIT 3";
    let c = compile(&spec(q, Mode::Full), &catalog()).unwrap();
    assert_eq!(c.strategy, Strategy::Full);
    assert_eq!(columns(&c), ["name", "r"]);
    let a = c.render(&c.placeholder_context());
    assert!(a.differential_refresh.is_none());
    assert!(a.full_refresh.contains("\"public\".\"departments\""));
}

#[test]
fn projections_filters_and_joins_are_incremental() {
    for q in [
        "SELECT id, name FROM departments WHERE parent_id IS NOT NULL",
        "SELECT e.name, e.salary * 2 AS double_salary, upper(d.name) AS dept FROM employees e JOIN departments d ON d.id = e.department_id",
        "SELECT a.name AS child, b.name AS parent FROM departments a LEFT JOIN departments b ON a.parent_id = b.id",
        "SELECT e.name, d.name AS dname FROM employees e RIGHT JOIN departments d ON d.id = e.department_id",
        "SELECT e.name, d.name AS dname FROM employees e FULL JOIN departments d ON d.id = e.department_id AND e.salary > 100",
        "SELECT e.name, d.name AS dname FROM employees e, departments d WHERE d.id = e.department_id",
        "SELECT * FROM employees",
        "SELECT d.* FROM departments d",
        "SELECT count(*) AS n, sum(salary) AS s FROM employees",
        "SELECT department_id, count(*) AS n, avg(salary) + 1 AS a FROM employees GROUP BY department_id",
        "SELECT d.name, count(*) AS n FROM departments d JOIN employees e ON e.department_id = d.id GROUP BY d.id",
        "SELECT kind, sum(amount) AS total, count(amount) AS n FROM events GROUP BY kind",
    ] {
        let c = incremental(q);
        let a = c.render(&c.placeholder_context());
        assert!(a.differential_refresh.is_some());
    }
}

#[test]
fn output_names_follow_postgres() {
    let c =
        diff("SELECT e.name, count(*), sum(e.salary) FROM employees e GROUP BY e.name").unwrap();
    assert_eq!(columns(&c), ["name", "count", "sum"]);
}

#[test]
fn group_by_position_and_alias() {
    let c = diff("SELECT department_id AS d, count(*) AS n FROM employees GROUP BY 1").unwrap();
    assert_eq!(columns(&c), ["d", "n"]);
    diff("SELECT department_id AS d, count(*) AS n FROM employees GROUP BY d").unwrap();
}

#[test]
fn self_join_needs_distinct_aliases_and_shares_one_source() {
    let c = diff(
        "SELECT a.id, b.id AS pid FROM departments a JOIN departments b ON a.parent_id = b.id",
    )
    .unwrap();
    assert_eq!(c.sources.len(), 1);
    let a = c.render(&c.placeholder_context());
    let d = a.differential_refresh.unwrap();
    assert_eq!(
        d.matches("\"__pgs_win0\" AS MATERIALIZED").count(),
        1,
        "{d}"
    );
    assert!(d.contains("__pgs_d0") && d.contains("__pgs_d1"));
}

#[test]
fn identifiers_are_quoted_everywhere() {
    let cat =
        Catalog::from_ddl("CREATE TABLE \"Weird\"\"Name\" (\"a b\" int PRIMARY KEY, \"x;y\" text)")
            .unwrap();
    let s = StreamTableSpec {
        name: QualifiedName::new("my schema", "st\"x"),
        query: "SELECT \"a b\", \"x;y\" FROM \"Weird\"\"Name\"".into(),
        schedule: Schedule::default(),
        mode: Mode::Differential,
    };
    let c = compile(&s, &cat).unwrap();
    let a = c.render(&c.placeholder_context());
    assert!(
        a.storage_ddl[0].starts_with("CREATE TABLE \"my schema\".\"st\"\"x\""),
        "{}",
        a.storage_ddl[0]
    );
    assert!(a.full_refresh.contains("\"public\".\"Weird\"\"Name\""));
    assert_eq!(c.columns[0].name, "a b");
}

#[test]
fn full_mode_takes_table_functions_and_grouping_sets() {
    for q in [
        "SELECT g, d.name FROM generate_series(1, 3) AS g JOIN departments d ON d.id = g",
        "SELECT parent_id, count(*) AS n FROM departments GROUP BY ROLLUP (parent_id)",
    ] {
        compile(&spec(q, Mode::Full), &catalog()).unwrap_or_else(|e| panic!("{q}: {e}"));
        // DIFFERENTIAL mode refuses nothing FULL mode computes (deterministically).
        diff(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    // A set-returning function in FROM is maintained (tests/functions.rs); grouping
    // sets are recomputed, with the reason.
    let q = "SELECT g, d.name FROM generate_series(1, 3) AS g JOIN departments d ON d.id = g";
    assert_eq!(diff(q).unwrap().strategy, Strategy::Incremental);
    let c = diff("SELECT parent_id, count(*) AS n FROM departments GROUP BY ROLLUP (parent_id)")
        .unwrap();
    assert_recomputed_for(&c, "ROLLUP");
}

#[test]
fn set_operations_are_maintained() {
    for q in [
        "SELECT id FROM departments UNION ALL SELECT id FROM employees",
        "SELECT id, name FROM departments UNION SELECT department_id, name FROM employees",
        "SELECT id FROM departments INTERSECT SELECT department_id FROM employees",
        "SELECT id FROM departments EXCEPT ALL SELECT department_id FROM employees",
    ] {
        incremental(q);
    }
    let c = diff("SELECT id FROM departments UNION ALL SELECT count(*) FROM employees").unwrap();
    assert_recomputed_for(&c, "inside a branch");
    let e = err("SELECT id, name FROM departments UNION SELECT id FROM employees");
    assert!(e.to_string().contains("same number of columns"), "{e}");
}

#[test]
fn other_aggregates_and_having_recompute_affected_groups() {
    for q in [
        "SELECT department_id, min(salary) AS lo, max(salary) AS hi FROM employees GROUP BY department_id",
        "SELECT department_id, count(DISTINCT name) AS n FROM employees GROUP BY department_id",
        "SELECT department_id, count(*) FILTER (WHERE salary > 10) AS rich FROM employees GROUP BY department_id",
        "SELECT department_id, string_agg(name, ',' ORDER BY name) AS names FROM employees GROUP BY department_id",
        "SELECT department_id, count(*) AS n FROM employees GROUP BY department_id HAVING count(*) > 1",
        "SELECT max(salary) AS top FROM employees",
    ] {
        let c = diff(q).unwrap_or_else(|e| panic!("{q}: {}", e.render(q)));
        assert!(c.explain().contains("recompute only the groups"), "{q}");
    }
    let c = diff("SELECT DISTINCT department_id FROM employees").unwrap();
    assert!(c.explain().contains("per-group counters"));
}

#[test]
fn exists_and_in_become_semi_and_anti_joins() {
    for q in [
        "SELECT d.id FROM departments d WHERE EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id)",
        "SELECT d.id FROM departments d WHERE NOT EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id) AND d.id > 1",
        "SELECT id, name FROM departments WHERE id IN (SELECT department_id FROM employees WHERE salary > 10)",
        "SELECT id FROM departments WHERE id NOT IN (SELECT department_id FROM employees)",
        // an unqualified name resolves in the innermost scope that has it
        "SELECT id, name FROM departments WHERE EXISTS (SELECT 1 FROM employees WHERE department_id = departments.id AND name <> 'x')",
    ] {
        let c = diff(q).unwrap_or_else(|e| panic!("{q}: {}", e.render(q)));
        assert_eq!(c.strategy, Strategy::Incremental);
        assert!(c.explain().contains("SEMI JOIN") || c.explain().contains("ANTI JOIN"), "{q}");
    }
    // * expands to the outer tables only
    let c = diff("SELECT * FROM departments d WHERE EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id)").unwrap();
    assert_eq!(c.columns.len(), 3);
    // a subquery under OR is not a join: recomputed, and explain says why
    let c = diff("SELECT id FROM departments d WHERE id = 1 OR EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id)").unwrap();
    assert!(
        c.explain()
            .contains("subqueries in expressions: no delta rule for it yet"),
        "{}",
        c.explain()
    );
}

/// What has no delta rule yet but a determined result is recomputed when a source
/// changed, with the construct named in the strategy (and so in explain and
/// `pgs_status().strategy`); only what a recomputation cannot reproduce is refused.
#[test]
fn constructs_without_a_delta_rule_are_recomputed_with_the_reason() {
    for (q, what) in [
        // ONLY reads no partition of a partitioned source, which the maintenance
        // (capture on every partition) would
        ("SELECT id FROM ONLY departments", "FROM ONLY"),
        (
            "SELECT d.id FROM departments d JOIN employees e USING (id) AS j",
            "USING (...) AS alias",
        ),
        (
            "SELECT d.id, s.eid FROM departments d CROSS JOIN LATERAL (SELECT e.id AS eid FROM employees e JOIN departments d2 ON d2.id = d.parent_id) AS s",
            "LATERAL subqueries that name the outer tables outside their WHERE",
        ),
        (
            "SELECT DISTINCT ON (name) name, count(*) AS n FROM departments GROUP BY name",
            "DISTINCT ON together with GROUP BY",
        ),
        (
            "SELECT DISTINCT department_id, count(*) AS n FROM employees GROUP BY department_id",
            "DISTINCT together with GROUP BY",
        ),
        (
            "SELECT parent_id, count(*) AS n, rank() OVER (ORDER BY parent_id) AS r FROM departments GROUP BY parent_id",
            "window functions together with GROUP BY",
        ),
        (
            "SELECT id FROM departments UNION SELECT id FROM employees EXCEPT SELECT id FROM departments WHERE parent_id IS NULL",
            "a mix of set operators",
        ),
        (
            "SELECT id FROM departments INTERSECT SELECT department_id FROM employees INTERSECT SELECT id FROM departments WHERE parent_id IS NULL",
            "INTERSECT of more than two queries",
        ),
        (
            "SELECT d.id, s.eid FROM departments d CROSS JOIN LATERAL (WITH r AS (SELECT id, department_id FROM employees) SELECT r.id AS eid FROM r WHERE r.department_id = d.id) AS s",
            "LATERAL subqueries whose WHERE reads a CTE or a subquery",
        ),
        (
            "SELECT d.id FROM departments d WHERE d.parent_id IS NULL OR d.id IN (SELECT e.department_id FROM employees e)",
            "subqueries in expressions",
        ),
        (
            "SELECT d.id FROM departments d WHERE EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id GROUP BY e.name HAVING count(*) > 1)",
            "subqueries with GROUP BY in EXISTS/IN other than an uncorrelated one over one table",
        ),
    ] {
        let c = diff(q).unwrap_or_else(|e| panic!("{q}: {}", e.render(q)));
        match &c.strategy {
            Strategy::RecomputeDiff { reason } => {
                assert!(reason.contains(what), "{q}: {reason}");
                assert!(reason.ends_with("no delta rule for it yet"), "{q}: {reason}");
            }
            other => panic!("{q}: {other:?}"),
        }
        assert!(c.explain().contains(what), "{q}: {}", c.explain());
        assert!(c.strategy_summary().contains(what), "{q}");
        let a = c.render(&c.placeholder_context());
        assert!(a.differential_refresh.is_some(), "{q}");
    }
}

#[test]
fn keyless_sources_are_maintained_as_bags() {
    let c = diff("SELECT kind, amount FROM events WHERE amount > 1").unwrap();
    let a = c.render(&c.placeholder_context());
    assert!(a.hidden_columns.contains(&"__pgs_n".to_string()));
    assert!(a.differential_refresh.unwrap().contains("generate_series"));
}

#[test]
fn subqueries_in_from_and_ctes_are_inlined() {
    for q in [
        "SELECT r.name, r.salary FROM (SELECT name, salary FROM employees WHERE salary > 10) AS r",
        "WITH rich AS (SELECT id, department_id FROM employees WHERE salary > 15) \
         SELECT a.id, b.id AS other FROM rich a JOIN rich b ON a.department_id = b.department_id",
        "SELECT d.name, e.n FROM departments d LEFT JOIN (SELECT department_id, name AS n FROM employees WHERE salary > 10) e ON e.department_id = d.id",
        "WITH t(dept, pay) AS (SELECT department_id, salary FROM employees) SELECT dept, sum(pay) AS total FROM t GROUP BY dept",
        "SELECT * FROM (SELECT id, name FROM departments) AS s(i, n) WHERE i > 2",
    ] {
        incremental(q);
    }
    let c = diff("SELECT * FROM (SELECT id, name FROM departments) AS s(i, n)").unwrap();
    assert_eq!(columns(&c), ["i", "n"]);
    // a CTE referenced twice gets one occurrence (and delta term) per reference
    let c = diff("WITH d AS (SELECT id, parent_id FROM departments) SELECT a.id FROM d a JOIN d b ON a.parent_id = b.id").unwrap();
    let sql = c
        .render(&c.placeholder_context())
        .differential_refresh
        .unwrap();
    assert!(sql.contains("__pgs_d0") && sql.contains("__pgs_d1"));
}

#[test]
fn window_functions_recompute_partitions() {
    let c = diff(
        "SELECT id, rank() OVER (PARTITION BY department_id ORDER BY salary) AS r FROM employees",
    )
    .unwrap();
    assert!(
        c.explain().contains("recompute the partitions"),
        "{}",
        c.explain()
    );
    let c = diff("SELECT id, row_number() OVER (ORDER BY id) AS r FROM employees").unwrap();
    assert!(c.explain().contains("recompute the whole result"));
}

#[test]
fn intersect_all_with_other_table() {
    let q =
        "SELECT department_id AS k FROM employees INTERSECT ALL SELECT parent_id FROM departments";
    diff(q).unwrap_or_else(|e| panic!("{}", e.render(q)));
}

#[test]
fn aggregates_over_inner_joins_are_aggregate_leaves() {
    // `JOIN ... ON` inside the subquery is read as comma-separated tables and a
    // `WHERE`; the group keys over one table.
    for q in [
        "SELECT d.id, (SELECT max(e.salary) FROM employees e JOIN departments x ON x.id = e.department_id \
         WHERE e.department_id = d.id) AS m FROM departments d",
        "SELECT d.id FROM departments d WHERE d.id IN (SELECT e.department_id FROM employees e \
         INNER JOIN departments x ON x.id = e.department_id GROUP BY e.department_id HAVING count(*) > 1)",
        "SELECT d.id, s.n FROM departments d JOIN (SELECT e.department_id, count(*) AS n FROM employees e, \
         departments x WHERE x.id = e.department_id GROUP BY e.department_id) s ON s.department_id = d.id",
    ] {
        let c = diff(q).unwrap_or_else(|e| panic!("{}", e.render(q)));
        assert_eq!(c.strategy, Strategy::Incremental, "{q}");
        assert!(
            c.strategy_summary()
                .contains("one over several tables, the groups the changes of any of them touch"),
            "{q}: {}",
            c.strategy_summary()
        );
    }
    // Not a leaf: a LEFT JOIN inside, group keys over two tables.
    for q in [
        "SELECT d.id, (SELECT max(e.salary) FROM employees e LEFT JOIN departments x ON x.id = e.department_id \
         WHERE e.department_id = d.id) AS m FROM departments d",
        "SELECT d.id, s.n FROM departments d JOIN (SELECT e.department_id, x.parent_id, count(*) AS n FROM employees e, \
         departments x WHERE x.id = e.department_id GROUP BY e.department_id, x.parent_id) s ON s.department_id = d.id",
    ] {
        let c = diff(q).unwrap_or_else(|e| panic!("{}", e.render(q)));
        assert!(
            !c.strategy_summary().contains("one over several tables"),
            "{q}: {}",
            c.strategy_summary()
        );
    }
}

#[test]
fn top_k_over_keyed_rows_reads_a_stage() {
    // Rows identified by their leaves' keys: the block is kept in a stage table, the
    // stream table holds its first rows; `ORDER BY` items by name, by position or as
    // written in the select list.
    for q in [
        "SELECT id, salary FROM employees ORDER BY salary DESC, id LIMIT 3",
        "SELECT e.id, e.salary, d.name FROM employees e JOIN departments d ON d.id = e.department_id \
         ORDER BY d.name, 2 DESC NULLS LAST, e.id LIMIT 3",
        "SELECT e.id AS eid, d.name AS dept FROM employees e LEFT JOIN departments d ON d.id = e.department_id \
         ORDER BY d.name NULLS FIRST, eid LIMIT 5",
    ] {
        let c = diff(q).unwrap_or_else(|e| panic!("{}", e.render(q)));
        assert_eq!(c.strategy, Strategy::Incremental, "{q}");
        let summary = c.strategy_summary();
        assert!(
            summary.contains("read from a stage table that holds every row"),
            "{q}: {summary}"
        );
        let a = c.render(&c.placeholder_context());
        let d = a.differential_refresh.unwrap();
        // The first rows come from the stage's rows the changes did not touch and
        // the changed rows' new versions, not from the query.
        assert!(d.contains("\"__pgs_top_ins\""), "{q}");
        assert!(d.contains("FROM \"__pgs_src\" AS s WHERE s.\"__pgs_w\" > 0"), "{d}");
        assert!(
            a.storage_ddl
                .iter()
                .any(|s| s.starts_with("CREATE INDEX ON \"pgstream\".\"_stage_0\" (")),
            "{q}: {:?}",
            a.storage_ddl
        );
    }
    // Still recomputed: an `OFFSET`, a keyless source (a bag: its copies have no key
    // the changes could be matched by), an `ORDER BY` over what the select list does
    // not hold.
    for q in [
        "SELECT id, salary FROM employees ORDER BY salary DESC, id LIMIT 3 OFFSET 2",
        "SELECT kind, amount FROM events ORDER BY amount, kind LIMIT 3",
        "SELECT id FROM employees ORDER BY salary DESC, id LIMIT 3",
    ] {
        let c = diff(q).unwrap_or_else(|e| panic!("{}", e.render(q)));
        assert!(
            matches!(c.strategy, Strategy::RecomputeDiff { .. }),
            "{q}: {}",
            c.strategy_summary()
        );
        assert!(c.explain().contains("ORDER BY ... LIMIT"), "{q}");
    }
}

#[test]
fn aggregates_below_the_top_and_scalar_subqueries_are_recomputed() {
    for (q, why) in [
        (
            "SELECT d.id, s.n FROM departments d, LATERAL (SELECT count(*) + 1 AS n FROM employees e WHERE e.department_id = d.id) AS s",
            "GROUP BY or an aggregate in a subquery",
        ),
        (
            "SELECT d.id, s.n FROM departments d, LATERAL (SELECT e.name, count(*) AS n FROM employees e WHERE e.department_id = d.id GROUP BY e.name) AS s",
            "GROUP BY or an aggregate in a subquery",
        ),
        (
            "SELECT d.id, n FROM departments d CROSS JOIN LATERAL (SELECT count(*) AS n FROM employees e WHERE e.department_id = d.id) AS s",
            "GROUP BY or an aggregate in a subquery",
        ),
        (
            "SELECT x.name FROM (SELECT DISTINCT d.name, e.name AS ename FROM departments d JOIN employees e ON e.department_id = d.id) AS x",
            "DISTINCT in a subquery",
        ),
        (
            "SELECT x.id FROM (SELECT id FROM employees ORDER BY id LIMIT 3) AS x",
            "ORDER BY ... LIMIT in a subquery",
        ),
        (
            "SELECT id, (SELECT count(*) FROM employees) AS n FROM departments",
            "scalar subquery",
        ),
        (
            // over no rows `count(*) + 1` is 1, the joined value of a missing group NULL
            "SELECT d.id, (SELECT count(*) + 1 FROM employees e WHERE e.department_id = d.id) AS m FROM departments d",
            "scalar subquery",
        ),
        (
            "SELECT d.id, (SELECT max(e.salary) FROM employees e WHERE e.department_id = d.id OR e.id = d.id) AS m FROM departments d",
            "scalar subquery",
        ),
        (
            "SELECT d.id, count(*) AS n, (SELECT max(e.salary) FROM employees e WHERE e.department_id = d.id) AS m FROM departments d GROUP BY d.id",
            "scalar subquery",
        ),
        (
            "SELECT d.id, (SELECT e.name FROM employees e WHERE e.department_id = d.id ORDER BY e.id LIMIT 1) AS first FROM departments d",
            "scalar subquery",
        ),
    ] {
        let c = diff(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        match &c.strategy {
            Strategy::RecomputeDiff { reason } => assert!(reason.contains(why), "{q}: {reason}"),
            s => panic!("{q}: {s:?}"),
        }
        let summary = c.strategy_summary();
        assert!(summary.starts_with("recompute and apply the difference"), "{summary}");
        assert!(c.explain().contains(why), "{q}");
        let a = c.render(&c.placeholder_context());
        assert!(a.differential_refresh.is_some(), "{q}");
    }
}

#[test]
fn uncorrelated_scalar_aggregates_in_where_are_one_row_leaves() {
    for q in [
        "SELECT d.id FROM departments d WHERE d.id > (SELECT avg(e.department_id) FROM employees e)",
        "SELECT x.id FROM (SELECT d.id FROM departments d WHERE (SELECT count(*) FROM employees) > d.id) AS x",
        "SELECT d.id, s.n FROM departments d, (SELECT count(*) AS n FROM employees) AS s",
        "SELECT x.n FROM (SELECT count(*) AS n FROM employees) AS x",
    ] {
        let c = incremental(q);
        assert!(c.explain().contains("ScalarAggregate ("), "{q}");
        let d = differential_sql(&c);
        // No GROUP BY in the leaf, and its delta is empty unless its table changed.
        assert!(!d.contains("GROUP BY )"), "{q}");
        assert!(d.contains("\"__pgs_g\" WHERE EXISTS (SELECT 1 FROM"), "{q}");
    }
    // Not with items outside aggregates (an error in PostgreSQL).
    let c = diff(
        "SELECT d.id, s.n FROM departments d, (SELECT count(*) AS n, name FROM employees) AS s",
    )
    .unwrap();
    assert_ne!(c.strategy, Strategy::Incremental);
}

#[test]
fn correlated_scalar_arithmetic_over_an_aggregate_is_joined() {
    // NULL over no rows, as the joined value of a missing group: maintained.
    for q in [
        "SELECT d.id, (SELECT max(e.salary) + 1 FROM employees e WHERE e.department_id = d.id) AS m FROM departments d",
        "SELECT d.id, (SELECT 0.2 * avg(e.salary) FROM employees e WHERE e.department_id = d.id) AS m FROM departments d",
        "SELECT d.id, (SELECT -(sum(e.salary) / count(*)) FROM employees e WHERE e.department_id = d.id) AS m FROM departments d",
    ] {
        incremental(q);
    }
}

#[test]
fn a_scalar_count_is_not_null() {
    let c = diff("SELECT d.id, (SELECT count(*) FROM employees e WHERE e.department_id = d.id) AS n, (SELECT max(e.salary) FROM employees e WHERE e.department_id = d.id) AS m FROM departments d").unwrap();
    assert_eq!(c.columns[1].nullable, Some(false), "{:?}", c.columns);
    assert_eq!(c.columns[1].sql_type.as_deref(), Some("bigint"));
    assert_eq!(c.columns[2].nullable, Some(true), "{:?}", c.columns);
}

#[test]
fn aggregate_subqueries_over_one_table_are_leaves() {
    for q in [
        "SELECT d.name, t.total FROM departments d JOIN (SELECT department_id, sum(salary) AS total FROM employees GROUP BY department_id) t ON t.department_id = d.id",
        "SELECT d.name, t.total FROM departments d LEFT JOIN (SELECT e.department_id AS dept, sum(e.salary) AS total, min(e.name) AS first FROM employees e WHERE e.salary > 1 GROUP BY 1 HAVING count(*) > 1) t ON t.dept = d.id",
        "WITH t AS (SELECT department_id, count(*) AS n FROM employees GROUP BY department_id) SELECT a.department_id, b.n FROM t a JOIN t b ON a.n = b.n",
        "SELECT t.n, count(*) AS c FROM (SELECT department_id, count(*) AS n FROM employees GROUP BY department_id) t GROUP BY t.n",
        "SELECT x.name, x.department_id FROM (SELECT DISTINCT name, department_id FROM employees) AS x JOIN departments d ON d.id = x.department_id",
        "SELECT d.id, (SELECT max(e.salary) FROM employees e WHERE e.department_id = d.id) AS m FROM departments d",
        "SELECT d.id, s.n FROM departments d, LATERAL (SELECT count(*) AS n FROM employees e WHERE e.department_id = d.id) AS s",
        "SELECT d.id, s.n, s.total FROM departments d CROSS JOIN LATERAL (SELECT count(*) AS n, sum(e.salary) AS total FROM employees e WHERE e.department_id = d.id AND e.salary > 1) s WHERE s.n < 3",
        "SELECT d.id, s.a FROM departments d LEFT JOIN LATERAL (SELECT max(e.salary) FROM employees e WHERE d.parent_id = e.department_id) AS s(a) ON true",
        "SELECT d.id, (SELECT count(*) FROM employees e WHERE e.department_id = d.parent_id AND e.salary > 2) AS n, (SELECT sum(salary) FROM employees WHERE department_id = d.id) FROM departments d JOIN departments p ON p.id = d.parent_id",
    ] {
        let c = incremental(q);
        let (summary, explain) = (c.strategy_summary(), c.explain());
        assert!(summary.contains("aggregate subquery") && explain.contains("AggregateSubquery"));
        // its table's buffer holds the columns it reads and the primary key
        let e = c.sources.iter().position(|t| t.name.name == "employees").unwrap();
        let cols = c.buffer_columns(e);
        assert!(cols.contains(&"id".to_string()) && cols.contains(&"department_id".to_string()), "{q}: {cols:?}");
    }
    // joined on its group key: the delta of the other side reads its groups by key
    let c = diff("SELECT d.name, t.total FROM departments d JOIN (SELECT department_id, sum(salary) AS total FROM employees GROUP BY department_id) t ON t.department_id = d.id").unwrap();
    assert_eq!(c.buffer_columns(1), ["id", "department_id", "salary"]);
    let a = c.render(&c.placeholder_context());
    assert!(a.differential_refresh.unwrap().contains("JOIN LATERAL"));
    // a group key that is not an output column: no row identity for a leaf; the
    // relation is kept in a stage table and the query around it reads the stage
    let c = diff(
        "SELECT t.total FROM (SELECT sum(salary) AS total FROM employees GROUP BY department_id) t",
    )
    .unwrap();
    assert_eq!(c.strategy, Strategy::Incremental);
    assert!(c
        .strategy_summary()
        .starts_with("incremental below: the aggregate relation"));
}

#[test]
fn correlated_scalar_aggregates_keep_their_names_and_types() {
    let c = diff("SELECT d.id, (SELECT count(*) FROM employees e WHERE e.department_id = d.id), (SELECT max(e.salary) FROM employees e WHERE e.department_id = d.id) AS top FROM departments d").unwrap();
    assert_eq!(c.strategy, Strategy::Incremental);
    assert_eq!(columns(&c), ["id", "count", "top"]);
    assert_eq!(c.columns[1].nullable, Some(false));
    assert_eq!(c.columns[2].nullable, Some(true));
}

#[test]
fn rewritten_correlated_aggregates_keep_the_output_names() {
    for (q, names) in [
        (
            "SELECT d.id, s.n, s.top AS \"Top\" FROM departments d CROSS JOIN LATERAL (SELECT count(*) AS n, max(e.salary) AS top FROM employees e WHERE e.department_id = d.id) s",
            vec!["id", "n", "Top"],
        ),
        (
            "SELECT d.id, s.a FROM departments d, LATERAL (SELECT count(*) FROM employees e WHERE e.department_id = d.id) s(a)",
            vec!["id", "a"],
        ),
        (
            "SELECT d.id, (SELECT count(*) AS \"Many\" FROM employees e WHERE e.department_id = d.id), (SELECT min(e.name) FROM employees e WHERE e.department_id = d.id) AS \"First\" FROM departments d",
            vec!["id", "Many", "First"],
        ),
    ] {
        let c = incremental(q);
        assert_eq!(columns(&c), names, "{q}");
    }
}

#[test]
fn empty_target_list_is_a_clear_error_with_a_span() {
    for q in [
        "SELECT FROM employees",
        "SELECT FROM employees UNION ALL SELECT FROM departments",
        "WITH RECURSIVE r AS (SELECT 1 AS x UNION ALL SELECT x + 1 FROM r WHERE x < 3) SELECT FROM r, employees",
    ] {
        for m in [Mode::Differential, Mode::Full] {
            let e = compile(&spec(q, m), &catalog()).expect_err(q);
            assert!(matches!(e, Error::Invalid(_)), "{q}: {e:?}");
            let d = e.diagnostic().unwrap();
            assert!(d.message.contains("no output columns"), "{q}: {}", d.message);
            assert_eq!(d.span.clone().map(|r| &q[r]), Some("SELECT"), "{q}");
        }
    }
    // An empty target list inside EXISTS is ordinary SQL.
    diff("SELECT id FROM departments d WHERE EXISTS (SELECT FROM employees e WHERE e.department_id = d.id)")
        .unwrap();
}

#[test]
fn system_columns_are_a_clear_error_with_a_span() {
    for (q, col) in [
        ("SELECT xmin, id FROM employees", "xmin"),
        ("SELECT e.ctid FROM employees e", "e.ctid"),
        ("SELECT id FROM employees WHERE tableoid > 0", "tableoid"),
    ] {
        for m in [Mode::Differential, Mode::Full] {
            let e = compile(&spec(q, m), &catalog()).expect_err(q);
            let d = e.diagnostic().unwrap();
            assert!(d.message.contains("system column"), "{q}: {}", d.message);
            assert_eq!(d.span.clone().map(|r| &q[r]), Some(col), "{q}");
        }
    }
}

#[test]
fn names_longer_than_postgresql_keeps_are_rejected() {
    let mut s = spec("SELECT id FROM employees", Mode::Differential);
    s.name = QualifiedName::new("public", "x".repeat(64));
    let e = compile(&s, &catalog()).unwrap_err();
    assert!(
        e.diagnostic().unwrap().message.contains("at most 63 bytes"),
        "{e:?}"
    );
    s.name = QualifiedName::new("public", "x".repeat(63));
    compile(&s, &catalog()).unwrap();
}

/// A `WITH` inside a subquery in FROM, an `EXISTS` body, a CTE body or a `LATERAL`
/// subquery is inlined where it is referenced, like a top-level one, with
/// PostgreSQL's scoping: the innermost CTE of a name wins, a CTE's body does not see
/// itself nor the CTEs defined after it or inside the referencing query.
#[test]
fn with_inside_subqueries_is_inlined() {
    for q in [
        "SELECT s.id, d.name FROM (WITH r AS (SELECT id, department_id FROM employees WHERE salary > 10) SELECT r.id, r.department_id FROM r) AS s JOIN departments d ON d.id = s.department_id",
        "SELECT d.id FROM departments d WHERE EXISTS (WITH r AS (SELECT department_id FROM employees WHERE salary > 10) SELECT 1 FROM r WHERE r.department_id = d.id)",
        "SELECT id FROM departments WHERE id NOT IN (WITH r AS (SELECT department_id FROM employees) SELECT department_id FROM r)",
        "WITH a AS (WITH b AS (SELECT id, parent_id FROM departments) SELECT id FROM b WHERE parent_id IS NULL) SELECT a.id FROM a",
        "SELECT d.id, s.eid FROM departments d CROSS JOIN LATERAL (WITH r AS (SELECT id, department_id FROM employees) SELECT r.id AS eid FROM r) AS s",
        "SELECT s.department_id, s.n FROM (WITH r AS (SELECT department_id, salary FROM employees) SELECT department_id, count(*) AS n FROM employees GROUP BY department_id) AS s",
    ] {
        let c = incremental(q);
        c.render(&c.placeholder_context());
    }
    let sources = |q: &str| -> Vec<String> {
        let c = incremental(q);
        // the tables the maintained query scans
        let x = c.explain();
        ["departments", "employees"]
            .into_iter()
            .filter(|t| x.contains(&format!("Scan public.{t} AS")))
            .map(str::to_string)
            .collect::<Vec<String>>()
    };
    // the inner `e` shadows the outer one
    assert_eq!(
        sources("WITH e AS (SELECT id FROM departments) SELECT x.id FROM (WITH e AS (SELECT id FROM employees) SELECT id FROM e) AS x"),
        ["employees"]
    );
    // `a` reads the table `employees`, not the CTE of that name where `a` is used
    assert_eq!(
        sources("WITH a AS (SELECT id FROM employees) SELECT x.id FROM (WITH employees AS (SELECT id FROM departments) SELECT id FROM a) AS x"),
        ["employees"]
    );
    // a later CTE is not visible to an earlier one's body
    assert_eq!(
        sources("WITH a AS (SELECT id FROM departments), departments AS (SELECT id FROM employees) SELECT a.id FROM a"),
        ["departments"]
    );
}

/// `WINDOW w AS (...)` is the same query with the window written inline.
#[test]
fn named_windows_are_inlined() {
    for q in [
        "SELECT id, rank() OVER w AS r FROM employees WINDOW w AS (PARTITION BY department_id ORDER BY salary)",
        "SELECT id, sum(salary) OVER (w ORDER BY id) AS s, count(*) OVER w AS n FROM employees WINDOW w AS (PARTITION BY department_id)",
        "SELECT id, row_number() OVER w2 AS r FROM employees WINDOW w1 AS (PARTITION BY department_id), w2 AS (w1 ORDER BY id)",
    ] {
        let c = incremental(q);
        assert!(c.explain().contains("partition"), "{q}: {}", c.explain());
        let a = c.render(&c.placeholder_context());
        assert!(a.full_refresh.contains("PARTITION BY"), "{q}");
    }
    for (q, what) in [
        ("SELECT id, rank() OVER v AS r FROM employees WINDOW w AS (ORDER BY id)", "window `v` does not exist"),
        ("SELECT id, rank() OVER (w ORDER BY id) AS r FROM employees WINDOW w AS (ORDER BY salary)", "cannot override the ORDER BY clause of window `w`"),
        ("SELECT id, rank() OVER (w PARTITION BY name) AS r FROM employees WINDOW w AS (PARTITION BY department_id)", "cannot override the PARTITION BY clause"),
    ] {
        let e = err(q);
        assert!(matches!(e, Error::Invalid(_)), "{q}: {e}");
        assert!(message(&e).contains(what), "{q}: {e}");
        assert!(e.diagnostic().unwrap().span.is_some(), "{q}");
    }
}

/// `EXISTS`/`IN` bodies with what does not change membership (`DISTINCT`, `ORDER
/// BY`, `LIMIT n >= 1` under `EXISTS`) are semi and anti joins; a body with `GROUP
/// BY` over one table is an aggregate subquery leaf on the join's right side.
#[test]
fn membership_subqueries_with_distinct_limit_and_group_by_are_joins() {
    for (q, leaf) in [
        ("SELECT id FROM departments WHERE id IN (SELECT DISTINCT department_id FROM employees ORDER BY 1)", false),
        ("SELECT d.id FROM departments d WHERE EXISTS (SELECT e.id FROM employees e WHERE e.department_id = d.id ORDER BY e.salary LIMIT 1)", false),
        ("SELECT d.id FROM departments d WHERE NOT EXISTS (SELECT DISTINCT e.name FROM employees e WHERE e.department_id = d.id)", false),
        ("SELECT id FROM departments WHERE id IN (SELECT department_id FROM employees GROUP BY department_id HAVING count(*) > 1)", true),
        ("SELECT id FROM departments WHERE parent_id NOT IN (SELECT max(department_id) FROM employees GROUP BY name)", true),
        ("SELECT id FROM departments WHERE id IN (SELECT department_id FROM employees GROUP BY 1 HAVING sum(salary) > 20)", true),
        ("SELECT d.id FROM departments d WHERE EXISTS (SELECT count(*) FROM employees GROUP BY department_id HAVING count(*) > 2)", true),
    ] {
        let c = incremental(q);
        let x = c.explain();
        assert!(x.contains("SEMI JOIN") || x.contains("ANTI JOIN"), "{q}: {x}");
        assert_eq!(x.contains("AggregateSubquery"), leaf, "{q}: {x}");
        c.render(&c.placeholder_context());
    }
    // `LIMIT 0` keeps no row; `IN` with a `LIMIT` depends on which rows: recomputed
    for q in [
        "SELECT d.id FROM departments d WHERE EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id ORDER BY e.id LIMIT 0)",
        "SELECT id FROM departments WHERE id IN (SELECT department_id FROM employees ORDER BY id LIMIT 2)",
    ] {
        let c = diff(q).unwrap_or_else(|e| panic!("{q}: {}", e.render(q)));
        assert!(matches!(c.strategy, Strategy::RecomputeDiff { .. }), "{q}");
    }
}

#[test]
fn select_all_is_select() {
    let plain = diff("SELECT id, name FROM departments").unwrap();
    let all = diff("SELECT ALL id, name FROM departments").unwrap();
    assert_eq!(plain.strategy, all.strategy);
    assert_eq!(plain.explain(), all.explain());
}
