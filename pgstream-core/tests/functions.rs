//! Set-returning functions in FROM: binding, output types, explain and the shape of
//! the delta SQL (row-local: the function applied to the delta rows).
mod common;
use common::*;
use pgstream_core::*;

const SCHEMA: &str = "
CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, tags text[], qty int[], items jsonb, doc json, note text);
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE logs (line text);
";

fn compile_q(q: &str) -> Result<Compiled> {
    compile(
        &spec(q, Mode::Differential),
        &Catalog::from_ddl(SCHEMA).unwrap(),
    )
}

#[test]
fn lateral_functions_are_incremental_and_typed() {
    for (q, want) in [
        (
            "SELECT o.id, t.tag, t.n FROM orders o CROSS JOIN LATERAL unnest(o.tags) WITH ORDINALITY AS t(tag, n)",
            "id integer NOT NULL, tag text, n bigint NOT NULL",
        ),
        (
            "SELECT o.id, e.value, e.value ->> 'sku' AS sku FROM orders o, jsonb_array_elements(o.items) AS e",
            "id integer NOT NULL, value jsonb NOT NULL, sku text",
        ),
        (
            "SELECT o.id, k.key, k.value FROM orders o LEFT JOIN LATERAL jsonb_each_text(o.items) k ON true",
            "id integer NOT NULL, key text, value text",
        ),
        (
            "SELECT o.id, r.sku, r.n FROM orders o, jsonb_to_recordset(o.items) AS r(sku text, n int)",
            "id integer NOT NULL, sku text, n integer",
        ),
        (
            "SELECT g, o.id FROM generate_series(1, 3) g JOIN orders o ON o.customer = g",
            "g integer NOT NULL, id integer NOT NULL",
        ),
        (
            "SELECT o.customer, x, count(*) AS n FROM orders o, unnest(o.tags, o.qty) AS u(tag, x) GROUP BY o.customer, x",
            "customer integer NOT NULL, x integer, n bigint NOT NULL",
        ),
        (
            "SELECT w FROM logs, regexp_split_to_table(logs.line, ' ') AS w",
            "w text NOT NULL",
        ),
    ] {
        let c = compile_q(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(c.strategy, Strategy::Incremental, "{q}");
        assert_eq!(signature(&c), want, "{q}");
    }
}

#[test]
fn the_delta_applies_the_function_to_the_delta_rows() {
    let (c, d) = with_delta(
        "SELECT o.id, t.tag FROM orders o LEFT JOIN LATERAL unnest(o.tags) AS t(tag) ON true",
    );
    assert!(
        d.contains("LEFT JOIN LATERAL (SELECT f.\"c0\" AS \"__pgs_c1_0\", f.\"c1\" AS \"__pgs_c1_1\" FROM ROWS FROM (pg_catalog.\"unnest\"(l.\"__pgs_c0_2\")) WITH ORDINALITY AS f(\"c0\", \"c1\")) AS r ON true"),
        "{d}"
    );
    // No join of the delta with the whole source: the function is row-local.
    assert!(!d.contains("JOIN (SELECT"), "{d}");
    let e = c.explain();
    assert!(
        e.to_lowercase()
            .contains("left join lateral unnest(o.tags) as t (tag) on true"),
        "{e}"
    );
    assert!(e.contains("row-local"), "{e}");
}

#[test]
fn a_constant_function_has_no_delta() {
    let (c, d) = with_delta(
        "SELECT g.n, o.id FROM generate_series(1, 3) AS g(n), orders o WHERE o.customer = g.n",
    );
    assert!(d.contains("0::smallint AS \"__pgs_w\""), "{d}");
    assert!(c.explain().contains("constant relation"), "{}", c.explain());
}

#[test]
fn functions_are_recorded_for_the_volatility_check() {
    let c = compile_q("SELECT o.id, t FROM orders o, pg_catalog.unnest(o.tags) t").unwrap();
    assert!(c
        .functions
        .contains(&(Some("pg_catalog".into()), "unnest".into())));
}

#[test]
fn functions_without_a_rule_are_recomputed_with_the_reason() {
    for (q, what) in [
        (
            "SELECT o.id, x FROM orders o, myschema.f(o.id) x",
            "myschema.f",
        ),
        ("SELECT o.id, x FROM orders o, some_srf(o.id) x", "some_srf"),
        (
            "SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM unnest(o.tags) t WHERE t = 'a')",
            "enclosing query",
        ),
    ] {
        // No delta rule: recompute-and-diff, the function named in the reason.
        let c = compile_q(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_recomputed_for(&c, what);
    }
    for q in [
        "SELECT * FROM orders o, jsonb_to_recordset(o.items) r",
        "SELECT * FROM orders o, unnest(o.tags) AS t(a, b)",
        "SELECT * FROM orders o RIGHT JOIN LATERAL unnest(o.tags) t ON true",
    ] {
        let e = compile_q(q).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{q}: {e}");
        assert!(e.diagnostic().unwrap().span.is_some(), "{q}: {e}");
    }
    // FULL mode takes them.
    compile(
        &spec("SELECT o.id, x FROM orders o, some_srf(o.id) x", Mode::Full),
        &Catalog::from_ddl(SCHEMA).unwrap(),
    )
    .unwrap();
}

#[test]
fn conditions_over_the_input_go_below_the_function() {
    let c = compile_q(
        "SELECT o.id, t FROM orders o, unnest(o.tags) AS t WHERE o.customer = 1 AND t <> 'a'",
    )
    .unwrap();
    let e = c.explain();
    let lines: Vec<&str> = e.lines().collect();
    let lateral = lines.iter().position(|l| l.contains("LATERAL")).expect(&e);
    let input_filter = lines
        .iter()
        .position(|l| l.contains("Filter o.customer = 1"))
        .expect(&e);
    let func_filter = lines
        .iter()
        .position(|l| l.contains("Filter t.t <> 'a'"))
        .expect(&e);
    assert!(func_filter < lateral && lateral < input_filter, "{e}");
}

#[test]
fn a_lateral_subquery_over_a_function_of_the_outer_row_is_recomputed() {
    let c = compile_q(
        "SELECT o.id, s.t FROM orders o CROSS JOIN LATERAL (SELECT t FROM unnest(o.tags) AS t) AS s",
    )
    .unwrap();
    assert_recomputed_for(&c, "enclosing query");
}

/// `q` compiled, and its differential refresh statement.
fn with_delta(q: &str) -> (Compiled, String) {
    let c = compile_q(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    let d = differential_sql(&c);
    (c, d)
}
