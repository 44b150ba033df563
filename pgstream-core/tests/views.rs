//! Views as sources: expanded in place into their bodies, over base tables.
mod common;
use common::*;
use pgstream_core::*;

const SCHEMA: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, amount numeric(10,2) NOT NULL, status text);
CREATE TABLE regions (code text PRIMARY KEY, label text NOT NULL);
CREATE VIEW big_orders AS
    SELECT o.id, o.amount, c.name AS customer, c.region
      FROM orders o JOIN customers c ON c.id = o.customer_id
     WHERE o.amount > 100;
CREATE VIEW named_big (order_id, total) AS SELECT id, amount, customer FROM big_orders;
CREATE VIEW north AS SELECT * FROM big_orders WHERE region = 'north';
CREATE VIEW per_customer AS SELECT customer_id, sum(amount) AS total FROM orders GROUP BY customer_id;
CREATE MATERIALIZED VIEW order_totals AS SELECT customer_id, sum(amount) FROM orders GROUP BY 1 WITH NO DATA;
";

fn cat() -> Catalog {
    Catalog::from_ddl(SCHEMA).unwrap()
}

fn compile_q(q: &str, mode: Mode) -> Result<Compiled> {
    compile(&spec(q, mode), &cat())
}

fn names(c: &Compiled) -> Vec<&str> {
    c.columns.iter().map(|c| c.name.as_str()).collect()
}

fn sources(c: &Compiled) -> Vec<String> {
    c.sources.iter().map(|t| t.name.to_string()).collect()
}

fn rendered(e: &Error, q: &str) -> String {
    e.render(q)
}

#[test]
fn a_view_is_expanded_into_its_base_tables() {
    let q =
        "SELECT b.id, b.customer, r.label FROM big_orders b JOIN regions r ON r.code = b.region";
    let c = compile_q(q, Mode::Differential).unwrap();
    assert_eq!(c.strategy, Strategy::Incremental);
    assert_eq!(names(&c), ["id", "customer", "label"]);
    assert_eq!(
        sources(&c),
        ["public.orders", "public.customers", "public.regions"]
    );
    assert!(
        c.expanded_query.contains("JOIN public.customers AS c"),
        "{}",
        c.expanded_query
    );
    assert_eq!(c.spec.query, q, "the spec keeps the user's text");
    // types come through the view
    assert_eq!(c.columns[1].sql_type.as_deref(), Some("text"));
    assert_eq!(c.columns[1].nullable, Some(false));
    // explain shows the base tables and the view's filter in place
    let x = c.explain();
    assert!(x.contains("Scan public.orders AS o"), "{x}");
    assert!(x.contains("Filter o.amount > 100"), "{x}");
}

#[test]
fn unaliased_view_reference_and_star() {
    let c = compile_q("SELECT * FROM big_orders", Mode::Differential).unwrap();
    assert_eq!(names(&c), ["id", "amount", "customer", "region"]);
    let c = compile_q(
        "SELECT big_orders.customer, count(*) AS n FROM big_orders GROUP BY big_orders.customer",
        Mode::Differential,
    )
    .unwrap();
    assert_eq!(names(&c), ["customer", "n"]);
}

#[test]
fn views_over_views_expand_recursively() {
    let c = compile_q("SELECT id, customer FROM north", Mode::Differential).unwrap();
    assert_eq!(c.strategy, Strategy::Incremental);
    assert_eq!(sources(&c), ["public.orders", "public.customers"]);
    let x = c.explain();
    assert!(x.contains("Filter (c.region) = 'north'"), "{x}");
    // The views expanded, nested ones too, each once, outer first.
    let views: Vec<String> = c.views.iter().map(|v| v.to_string()).collect();
    assert_eq!(views, ["public.north", "public.big_orders"]);
    let c = compile_q(
        "SELECT a.id FROM north a JOIN big_orders b ON a.id = b.id",
        Mode::Full,
    )
    .unwrap();
    let views: Vec<String> = c.views.iter().map(|v| v.to_string()).collect();
    assert_eq!(views, ["public.north", "public.big_orders"]);
    let c = compile_q("SELECT id FROM orders", Mode::Differential).unwrap();
    assert!(c.views.is_empty());
}

#[test]
fn column_lists_rename_outputs() {
    // CREATE VIEW named_big (order_id, total): the third column keeps its name
    let c = compile_q("SELECT * FROM named_big", Mode::Differential).unwrap();
    assert_eq!(names(&c), ["order_id", "total", "customer"]);
    let c = compile_q(
        "SELECT n.total FROM named_big n WHERE n.order_id > 3",
        Mode::Differential,
    )
    .unwrap();
    assert_eq!(names(&c), ["total"]);
    // a column alias list on the reference renames first
    let c = compile_q(
        "SELECT x, total FROM named_big AS nb(x)",
        Mode::Differential,
    )
    .unwrap();
    assert_eq!(names(&c), ["x", "total"]);
    // FULL mode names the columns the same way
    let c = compile_q("SELECT * FROM named_big", Mode::Full).unwrap();
    assert_eq!(names(&c), ["order_id", "total", "customer"]);
}

#[test]
fn views_in_subqueries_ctes_and_exists() {
    for q in [
        "SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 FROM big_orders b WHERE b.customer = c.name)",
        "SELECT c.name FROM customers c WHERE c.name IN (SELECT customer FROM north)",
        "WITH x AS (SELECT id, amount FROM big_orders) SELECT x.id FROM x JOIN orders o ON o.id = x.id",
        "SELECT s.id FROM (SELECT id FROM north WHERE amount > 500) s",
        "SELECT a.id AS a, b.id AS b FROM big_orders a JOIN big_orders b ON a.customer = b.customer",
    ] {
        let c = compile_q(q, Mode::Differential).unwrap_or_else(|e| panic!("{q}: {}", e.render(q)));
        assert_eq!(c.strategy, Strategy::Incremental, "{q}");
        assert!(sources(&c).contains(&"public.orders".to_string()), "{q}");
    }
}

#[test]
fn a_cte_shadows_a_view_of_the_same_name() {
    let c = compile_q(
        "WITH big_orders AS (SELECT code FROM regions) SELECT code FROM big_orders",
        Mode::Differential,
    )
    .unwrap();
    assert_eq!(sources(&c), ["public.regions"]);
}

#[test]
fn unknown_column_of_a_view_has_a_hint() {
    let q = "SELECT b.custmer FROM big_orders b";
    let e = compile_q(q, Mode::Differential).unwrap_err();
    let r = rendered(&e, q);
    assert!(r.contains("unknown column `b.custmer`"), "{r}");
    assert!(r.contains("a column named `customer` exists"), "{r}");
    assert!(r.contains("^^^^^^^^^"), "{r}");
    let q = "SELECT custmer FROM big_orders";
    let r = rendered(&compile_q(q, Mode::Differential).unwrap_err(), q);
    assert!(r.contains("a column named `customer` exists"), "{r}");
    let q = "SELECT bb.id FROM big_orders b";
    let r = rendered(&compile_q(q, Mode::Differential).unwrap_err(), q);
    assert!(
        r.contains("missing FROM-clause entry for table `bb`"),
        "{r}"
    );
    assert!(r.contains("did you mean `b`?"), "{r}");
}

#[test]
fn an_aggregating_view_is_an_aggregate_subquery() {
    let q = "SELECT p.total FROM per_customer p JOIN customers c ON c.id = p.customer_id";
    let c = compile_q(q, Mode::Differential).unwrap();
    assert_eq!(c.strategy, Strategy::Incremental);
    assert!(c.strategy_summary().contains("aggregate subquery"));
    assert_eq!(sources(&c), ["public.orders", "public.customers"]);
}

#[test]
fn a_view_without_a_strategy_is_rejected_naming_the_view() {
    let cat = catalog_with(
        "CREATE VIEW some_orders AS SELECT customer_id, amount AS total FROM orders LIMIT 5;",
    );
    let q = "SELECT p.total FROM some_orders p JOIN customers c ON c.id = p.customer_id";
    let e = compile(&spec(q, Mode::Differential), &cat).unwrap_err();
    let Error::Unsupported(d) = &e else {
        panic!("{e}")
    };
    assert!(
        d.message.contains("in the view `some_orders`"),
        "{}",
        d.message
    );
    // the span points at the reference in the user's query
    assert_eq!(&q[d.span.clone().unwrap()], "some_orders p");
    // FULL mode takes it
    let c = compile(&spec(q, Mode::Full), &cat).unwrap();
    assert_eq!(sources(&c), ["public.orders", "public.customers"]);
    let a = c.render(&c.placeholder_context());
    assert!(
        a.full_refresh.contains("\"public\".\"orders\""),
        "{}",
        a.full_refresh
    );
}

#[test]
fn errors_after_a_view_point_at_the_users_text() {
    let q = "SELECT b.id FROM big_orders b WHERE b.nope > 1";
    let e = compile_q(q, Mode::Differential).unwrap_err();
    let d = e.diagnostic().unwrap();
    assert_eq!(&q[d.span.clone().unwrap()], "b.nope");
    assert!(!d.message.contains("in the view"), "{}", d.message);
}

#[test]
fn volatile_function_in_a_view_is_rejected() {
    let c = catalog_with("CREATE VIEW stamped AS SELECT id, random() AS r FROM orders;");
    let q = "SELECT id, r FROM stamped";
    let e = compile(&spec(q, Mode::Differential), &c).unwrap_err();
    let d = e.diagnostic().unwrap();
    assert!(d.message.contains("`random` is volatile"), "{}", d.message);
    assert!(
        d.message.contains("in the view `stamped`, at `random`"),
        "{}",
        d.message
    );
    assert_eq!(&q[d.span.clone().unwrap()], "stamped");
}

#[test]
fn materialized_views_are_rejected_with_a_suggestion() {
    for mode in [Mode::Differential, Mode::Full] {
        let q = "SELECT * FROM order_totals";
        let e = compile_q(q, mode).unwrap_err();
        let d = e.diagnostic().unwrap();
        assert!(
            d.message.contains("`order_totals` is a materialized view"),
            "{}",
            d.message
        );
        assert!(d.help.as_deref().unwrap().contains("stream table"));
        assert_eq!(&q[d.span.clone().unwrap()], "order_totals");
    }
}

#[test]
fn cycles_are_reported() {
    // Only possible in a catalog built by hand (PostgreSQL refuses it).
    let mut c = cat();
    c.add_view(plain_view("public", "a", "SELECT id FROM public.b", &[]));
    c.add_view(plain_view("public", "b", "SELECT id FROM public.a", &[]));
    let q = "SELECT id FROM a";
    let e = compile(&spec(q, Mode::Differential), &c).unwrap_err();
    let d = e.diagnostic().unwrap();
    assert!(d.message.contains("reads itself"), "{}", d.message);
    assert_eq!(&q[d.span.clone().unwrap()], "a");
}

#[test]
fn a_view_from_the_live_database_is_expanded_too() {
    // pg_get_viewdef's layout: multi-line, parenthesised, with a trailing semicolon
    let mut c = cat();
    c.add_view(plain_view("app", "recent", " SELECT o.id,\n    o.amount AS amt\n   FROM (public.orders o\n     JOIN public.customers c ON ((c.id = o.customer_id)))\n  WHERE (o.amount > (5)::numeric);", &["id", "amt"]));
    let c = compile(
        &spec("SELECT r.amt FROM app.recent r", Mode::Differential),
        &c,
    )
    .unwrap();
    assert_eq!(names(&c), ["amt"]);
    assert_eq!(sources(&c), ["public.orders", "public.customers"]);
}

#[test]
fn nullability_reason_through_a_view() {
    let r = nullable_reason("SELECT region FROM big_orders", &cat(), "region");
    assert!(r.is_some());
}

#[test]
fn a_misspelt_view_gets_a_hint() {
    let q = "SELECT id FROM big_ordrs";
    let r = compile_q(q, Mode::Differential).unwrap_err().render(q);
    assert!(r.contains("a view named `big_orders` exists"), "{r}");
}

/// A view (not materialized) of `schema.name` with `query` as its body.
fn plain_view(schema: &str, name: &str, query: &str, columns: &[&str]) -> View {
    View {
        name: QualifiedName::new(schema, name),
        query: query.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        materialized: false,
    }
}

/// The schema with `ddl` (views over it) applied.
fn catalog_with(ddl: &str) -> Catalog {
    Catalog::from_ddl(&format!("{SCHEMA} {ddl}")).unwrap()
}
