//! What the compiler says about queries it refuses or cannot maintain incrementally:
//! errors with spans and help, and the reasons of recompute strategies.
mod common;
use common::*;
use pgstream_core::*;

#[test]
fn full_mode_still_reports_unknown_columns() {
    let e = compile(&spec("SELECT nme FROM departments", Mode::Full), &catalog()).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
}

#[test]
fn unknown_table_suggests_nearest() {
    let e = err("SELECT id FROM employes");
    assert!(matches!(e, Error::Invalid(_)));
    assert!(message(&e).contains("unknown table `employes`"), "{e}");
    assert!(message(&e).contains("employees"), "{e}");
    let d = e.diagnostic().unwrap();
    let q = "SELECT id FROM employes";
    assert_eq!(&q[d.span.clone().unwrap()], "employes");
}

#[test]
fn unknown_column_suggests_nearest_and_points_at_it() {
    let q = "SELECT e.nam FROM employees e";
    let e = err(q);
    assert!(message(&e).contains("unknown column `e.nam`"), "{e}");
    assert!(message(&e).contains("`name`"), "{e}");
    assert_eq!(&q[e.diagnostic().unwrap().span.clone().unwrap()], "e.nam");
    let rendered = e.render(q);
    assert!(rendered.contains("^^^^^"), "{rendered}");
}

#[test]
fn ambiguous_column_names_the_tables() {
    let e = err("SELECT name FROM employees e JOIN departments d ON d.id = e.department_id");
    assert!(message(&e).contains("ambiguous"), "{e}");
    assert!(
        message(&e).contains("`e`") && message(&e).contains("`d`"),
        "{e}"
    );
}

#[test]
fn syntax_error_has_a_span() {
    let q = "SELECT id FROM departments WHERE";
    let e = err(q);
    assert!(matches!(e, Error::Syntax(_)), "{e}");
    let q2 = "SELEC id FROM departments";
    assert!(matches!(err(q2), Error::Syntax(_)));
}

#[test]
fn unsupported_constructs_name_themselves_and_suggest_full() {
    for (q, what) in [
        (
            "SELECT x.id FROM (SELECT id FROM employees LIMIT 3) AS x",
            "LIMIT or OFFSET without ORDER BY in a subquery",
        ),
        (
            "SELECT d.id, (SELECT e.id FROM employees e WHERE e.department_id = d.id) AS n FROM departments d",
            "scalar subqueries that may return more than one row",
        ),
        (
            "SELECT d.id, (SELECT max(e.id) FROM employees e GROUP BY e.salary) AS n FROM departments d",
            "scalar subqueries that may return more than one row",
        ),
        (
            "SELECT d.id, (SELECT e.id FROM employees e LIMIT 1) AS n FROM departments d",
            "LIMIT or OFFSET without ORDER BY",
        ),
        (
            "SELECT x.n FROM (SELECT count(*) AS n, random() AS r FROM employees) AS x",
            "random",
        ),
        (
            "SELECT d.id, (SELECT max(e.salary) * random() FROM employees e WHERE e.department_id = d.id) AS m FROM departments d",
            "random",
        ),
        (
            "SELECT x.name FROM (SELECT DISTINCT ON (name) name FROM departments) AS x",
            "subqueries in FROM, CTEs or views with DISTINCT ON",
        ),
        ("SELECT id, random() AS r FROM departments", "random"),
        ("SELECT id, now() AS t FROM departments", "now"),
        ("SELECT id FROM departments LIMIT 3", "LIMIT"),

        ("SELECT id FROM departments LIMIT 3 OFFSET 1", "LIMIT"),
        (
            "SELECT id FROM departments d WHERE id = 1 OR EXISTS (SELECT e.id FROM employees e WHERE e.department_id = d.id LIMIT 2)",
            "LIMIT or OFFSET without ORDER BY in a subquery",
        ),
    ] {
        let e = err(q);
        assert!(matches!(e, Error::Unsupported(_)), "{q}: {e}");
        let m = message(&e);
        assert!(m.contains(what), "{q}: {m}");
        assert!(m.contains("FULL mode"), "{q}: {m}");
    }
}

#[test]
fn columns_outside_group_by_need_a_grouped_primary_key() {
    let e = err("SELECT e.name, count(*) AS n FROM employees e GROUP BY e.department_id");
    assert!(message(&e).contains("must appear in the GROUP BY"), "{e}");
    // d.name depends on d.id, the primary key
    diff("SELECT d.id, d.name, count(*) AS n FROM departments d GROUP BY d.id").unwrap();
}

#[test]
fn aggregates_are_rejected_in_where() {
    let e = err("SELECT id FROM employees WHERE sum(salary) > 1");
    assert!(matches!(e, Error::Invalid(_)));
}

#[test]
fn duplicate_output_names_and_reserved_prefix() {
    assert!(message(&err("SELECT id, id FROM departments")).contains("appears twice"));
    assert!(message(&err("SELECT id AS __pgs_x FROM departments")).contains("reserves"));
}

#[test]
fn a_definition_is_one_select() {
    assert!(matches!(err("DELETE FROM employees"), Error::Invalid(_)));
    assert!(matches!(err("SELECT 1; SELECT 2"), Error::Invalid(_)));
    assert!(err("SELECT 1").to_string().contains("reads no table"));
}

#[test]
fn the_tutorials_comparison_trap_is_a_compile_error() {
    let q = DEPARTMENT_TREE.replace("' > '", "'' > ''");
    let e = err(&q);
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    let d = e.diagnostic().unwrap();
    assert!(d.message.contains("UNION"), "{}", d.message);
    assert!(
        d.message.contains("text") && d.message.contains("boolean"),
        "{}",
        d.message
    );
    assert!(d.help.as_ref().unwrap().contains("' > '"));
    assert!(
        q[d.span.clone().unwrap()].contains("'' > ''"),
        "{:?}",
        &q[d.span.clone().unwrap()]
    );
    // the same trap in FULL mode
    assert!(compile(&spec(&q, Mode::Full), &catalog()).is_err());
    // matching branches pass
    diff(DEPARTMENT_TREE).unwrap();
    compile(
        &spec(
            "SELECT id, name FROM departments UNION SELECT id, name FROM employees",
            Mode::Full,
        ),
        &catalog(),
    )
    .unwrap();
}

#[test]
fn syntax_error_at_the_end_points_at_the_end() {
    let q = "SELECT id FROM departments WHERE";
    let e = err(q);
    let d = e.diagnostic().unwrap();
    assert_eq!(&q[d.span.clone().unwrap()], "E");
    assert!(d.message.contains("end of the query"), "{}", d.message);
}

#[test]
fn volatile_functions_are_rejected_in_recursive_queries_too() {
    let q = DEPARTMENT_TREE.replace("0 AS depth", "random() AS depth");
    let e = err(&q);
    assert!(e.to_string().contains("random"), "{e}");
}
