//! Structural checks of what the compiler emits, over a corpus of queries (one or
//! more per operator, and the 22 TPC-H queries as the specification writes them):
//!
//! - every artifact (storage DDL, full refresh, differential refresh, the refresh
//!   function's `CREATE FUNCTION`) parses with sqlparser's PostgreSQL dialect;
//! - no `SELECT` of a TPC-H delta statement joins two inputs without a condition
//!   linking them (issue 13: a delta term that is a cartesian product of changed
//!   rows with a whole table made Q7 take minutes), unless the query itself has
//!   nothing linking them;
//! - one small, pretty-printed snapshot of the differential refresh per operator
//!   (`cargo insta review` to accept a deliberate change).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use common::*;
use pgstream_core::*;
use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, JoinConstraint, JoinOperator, Query, Select, SelectItem,
    SetExpr, Statement, TableFactor, TableWithJoins, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use pgstream_core::testing::TPCH_SCHEMA;

/// One query per operator (and the common combinations), over the tutorial's
/// schema. The name is the snapshot's.
const OPERATORS: &[(&str, &str)] = &[
    ("scan", "SELECT id, name FROM departments"),
    (
        "filter_project",
        "SELECT id, salary * 12 AS yearly FROM employees WHERE salary > 1000",
    ),
    (
        "inner_join",
        "SELECT e.id, d.name FROM employees e JOIN departments d ON d.id = e.department_id",
    ),
    (
        "comma_join",
        "SELECT e.id, d.name FROM employees e, departments d WHERE d.id = e.department_id AND e.salary > 10",
    ),
    (
        "left_join",
        "SELECT d.id, e.id AS eid FROM departments d LEFT JOIN employees e ON e.department_id = d.id",
    ),
    (
        "full_join",
        "SELECT d.id, e.id AS eid FROM departments d FULL JOIN employees e ON e.department_id = d.id",
    ),
    (
        "semi_join",
        "SELECT d.id FROM departments d WHERE EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id)",
    ),
    (
        "anti_join",
        "SELECT d.id FROM departments d WHERE NOT EXISTS (SELECT 1 FROM employees e WHERE e.department_id = d.id)",
    ),
    (
        "aggregate_counters",
        "SELECT department_id, count(*) AS n, sum(salary) AS total, avg(salary) AS mean FROM employees GROUP BY department_id",
    ),
    (
        "aggregate_recompute",
        "SELECT department_id, min(salary) AS low, max(salary) AS high FROM employees GROUP BY department_id",
    ),
    ("distinct", "SELECT DISTINCT department_id FROM employees"),
    (
        "union_all",
        "SELECT id FROM departments UNION ALL SELECT department_id FROM employees",
    ),
    (
        "union",
        "SELECT id FROM departments UNION SELECT department_id FROM employees",
    ),
    (
        "except",
        "SELECT id FROM departments EXCEPT SELECT department_id FROM employees",
    ),
    (
        "window",
        "SELECT id, department_id, rank() OVER (PARTITION BY department_id ORDER BY salary DESC) AS r FROM employees",
    ),
    ("recursive", DEPARTMENT_TREE),
    (
        "top_k",
        "SELECT department_id, sum(salary) AS total FROM employees GROUP BY department_id ORDER BY total DESC LIMIT 3",
    ),
    (
        "scalar_subquery",
        "SELECT d.id, (SELECT count(*) FROM employees e WHERE e.department_id = d.id) AS n FROM departments d",
    ),
    (
        "using_join",
        "SELECT id, e.name FROM employees e JOIN (SELECT id AS department_id, name AS dname FROM departments) d USING (department_id)",
    ),
    (
        "set_returning_function",
        "SELECT e.id, w FROM employees e, regexp_split_to_table(e.name, ' ') AS w",
    ),
];

fn tpch() -> Vec<(usize, String)> {
    let out = pgstream_core::testing::tpch_queries();
    assert_eq!(out.len(), 22);
    out
}

fn compile_in(catalog: &Catalog, name: &str, query: &str, mode: Mode) -> (Compiled, Artifacts) {
    let spec = StreamTableSpec {
        name: QualifiedName::new("public", name),
        query: query.to_string(),
        schedule: Schedule::default(),
        mode,
    };
    let c = compile(&spec, catalog).unwrap_or_else(|e| panic!("{name}: {}", e.render(query)));
    let a = render_fixed(&c);
    (c, a)
}

/// Every query of the corpus, compiled in both modes: (label, artifacts).
fn corpus() -> Vec<(String, Artifacts)> {
    let mut out = Vec::new();
    let tutorial = catalog();
    let tpch_catalog = Catalog::from_ddl(TPCH_SCHEMA).unwrap();
    for mode in [Mode::Differential, Mode::Full] {
        for (name, q) in OPERATORS {
            out.push((
                format!("{name} ({mode:?})"),
                compile_in(&tutorial, name, q, mode).1,
            ));
        }
        out.push((
            format!("department_stats ({mode:?})"),
            compile_in(&tutorial, "st", DEPARTMENT_STATS, mode).1,
        ));
        for (n, q) in tpch() {
            out.push((
                format!("Q{n} ({mode:?})"),
                compile_in(&tpch_catalog, &format!("q{n}"), &q, mode).1,
            ));
        }
    }
    out
}

/// sqlparser 0.64 does not read `ROWS FROM (...)`, which the compiler emits for a
/// set-returning function `WITH ORDINALITY` (PostgreSQL needs it there for a column
/// definition list); such statements are checked with it spelled as a plain call.
fn parse(label: &str, what: &str, sql: &str) -> Vec<Statement> {
    let sql = &rows_from_as_call(sql);
    Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .unwrap_or_else(|e| panic!("{label}: the {what} does not parse: {e}\n{sql}"))
}

/// `ROWS FROM (f(x)) WITH ORDINALITY` -> `f(x) WITH ORDINALITY` (one function only).
fn rows_from_as_call(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find("ROWS FROM (") {
        out.push_str(&rest[..at]);
        let body = &rest[at + "ROWS FROM (".len()..];
        // the matching parenthesis, skipping quoted text
        let (mut depth, mut end, mut quote) = (1usize, None, None::<char>);
        for (i, ch) in body.char_indices() {
            match (quote, ch) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(ch),
                (None, '(') => depth += 1,
                (None, ')') => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let end = end.expect("ROWS FROM without its closing parenthesis");
        out.push_str(&body[..end]);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_artifact_parses() {
    for (label, a) in corpus() {
        for ddl in &a.storage_ddl {
            parse(&label, "storage DDL", ddl);
        }
        parse(&label, "full refresh", &a.full_refresh);
        if let Some(d) = &a.differential_refresh {
            parse(&label, "differential refresh", d);
        }
        if let Some(f) = &a.refresh_function {
            let stmts = parse(&label, "refresh function", f);
            assert!(
                stmts
                    .iter()
                    .any(|s| matches!(s, Statement::CreateFunction(_))),
                "{label}: the refresh function is not a CREATE FUNCTION"
            );
        }
    }
}

// --- joins without a condition ----------------------------------------------------

/// The relation names a `FROM` item introduces (its alias, else its last name part).
fn factor_name(f: &TableFactor) -> Option<String> {
    let alias = match f {
        TableFactor::Table { alias, name, .. } => {
            return Some(
                alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .unwrap_or_else(|| name.0.last().unwrap().to_string().replace('"', "")),
            )
        }
        TableFactor::Derived { alias, .. } => alias,
        TableFactor::Function { alias, .. } => alias,
        TableFactor::TableFunction { alias, .. } => alias,
        TableFactor::UNNEST { alias, .. } => alias,
        TableFactor::NestedJoin { alias, .. } => alias,
        _ => return None,
    };
    alias.as_ref().map(|a| a.name.value.clone())
}

/// Every relation name the expressions under `v` qualify a column with (`x.col`
/// names `x`).
/// An unqualified column counts for the table whose column it is, when only one
/// table of the catalog has a column of that name (`owners`: column -> table).
fn qualifiers<V: Visit>(v: &V, owners: &BTreeMap<String, String>) -> BTreeSet<String> {
    struct Q<'a>(BTreeSet<String>, &'a BTreeMap<String, String>);
    impl Visitor for Q<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    self.0.insert(parts[parts.len() - 2].value.clone());
                }
                Expr::Identifier(id) => {
                    if let Some(t) = self.1.get(&id.value) {
                        self.0.insert(t.clone());
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut q = Q(BTreeSet::new(), owners);
    let _ = v.visit(&mut q);
    q.0
}

/// Column name -> table name, for the column names only one table has.
fn column_owners(catalog: &Catalog) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    for t in catalog.tables() {
        for c in &t.columns {
            seen.entry(c.name.clone())
                .and_modify(|o| *o = None)
                .or_insert_with(|| Some(t.name.name.clone()));
        }
    }
    seen.into_iter()
        .filter_map(|(c, t)| Some((c, t?)))
        .collect()
}

/// What the check knows beyond one SELECT: which column names belong to which
/// table, and which CTEs hold at most one row.
struct Known {
    /// Column name -> table, for names only one table of the catalog has.
    owners: BTreeMap<String, String>,
    /// CTEs whose body yields at most one row.
    one_row_ctes: BTreeSet<String>,
}

/// A query that yields at most one row: a SELECT without FROM, an aggregate without
/// GROUP BY, a lookup of one frontier row, or a lookup of a storage table by its
/// unique row id.
fn one_row(q: &Query) -> bool {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return false;
    };
    let no_group = matches!(&s.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    let aggregate_only = no_group
        && !s.projection.is_empty()
        && s.projection.iter().all(|p| {
            let t = p.to_string().to_lowercase();
            [
                "count(",
                "sum(",
                "max(",
                "min(",
                "avg(",
                "bool_or(",
                "bool_and(",
            ]
            .iter()
            .any(|f| t.contains(f))
        });
    let by_row_id = s.selection.as_ref().is_some_and(|w| {
        let mut cs = Vec::new();
        conjuncts(w, &mut cs);
        cs.iter().any(|c| match c {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => {
                left.to_string().ends_with("\"__pgs_row_id\"")
                    && matches!(right.as_ref(), Expr::Value(_) | Expr::Cast { .. })
            }
            _ => false,
        })
    });
    let no_from = s.from.is_empty();
    // A frontier row (its own FROM reads the catalog of frontiers by stream table and
    // source; not a window, whose FROM reads it through a subquery).
    let frontier = s.from.iter().any(|t| {
        matches!(&t.relation, TableFactor::Table { name, .. }
            if name.to_string().ends_with("\"pgs_frontiers\""))
    });
    no_from || aggregate_only || by_row_id || frontier
}

/// The column names a FROM item exposes, when the SELECT can tell: a derived
/// table's column aliases, else its select list's names.
fn exposed_columns(f: &TableFactor) -> Vec<String> {
    let TableFactor::Derived {
        subquery, alias, ..
    } = f
    else {
        return Vec::new();
    };
    if let Some(a) = alias {
        if !a.columns.is_empty() {
            return a.columns.iter().map(|c| c.name.value.clone()).collect();
        }
    }
    let SetExpr::Select(s) = subquery.body.as_ref() else {
        return Vec::new();
    };
    s.projection
        .iter()
        .filter_map(|p| match p {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.value.clone()),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                parts.last().map(|i| i.value.clone())
            }
            _ => None,
        })
        .collect()
}

struct Item {
    name: String,
    one_row: bool,
    /// Names an outer relation is referred to by (a LATERAL item's correlation).
    refers: BTreeSet<String>,
}

fn items(
    from: &[TableWithJoins],
    known: &Known,
    owners: &mut BTreeMap<String, Option<String>>,
    constraints: &mut Vec<Expr>,
    using: &mut Vec<BTreeSet<String>>,
) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::new();
    let mut push = |f: &TableFactor, out: &mut Vec<Item>| {
        let Some(name) = factor_name(f) else { return };
        for c in exposed_columns(f) {
            owners
                .entry(c)
                .and_modify(|o| *o = None)
                .or_insert_with(|| Some(name.clone()));
        }
        let lateral = matches!(
            f,
            TableFactor::Derived { lateral: true, .. }
                | TableFactor::Function { .. }
                | TableFactor::UNNEST { .. }
                | TableFactor::TableFunction { .. }
        );
        let one = match f {
            TableFactor::Derived { subquery, .. } => one_row(subquery),
            TableFactor::Table {
                name: t,
                args: None,
                ..
            } => known
                .one_row_ctes
                .contains(&t.0.last().unwrap().to_string().replace('"', "")),
            _ => false,
        };
        out.push(Item {
            name,
            one_row: one,
            refers: if lateral {
                qualifiers(f, &known.owners)
            } else {
                BTreeSet::new()
            },
        });
    };
    for t in from {
        push(&t.relation, &mut out);
        for j in &t.joins {
            push(&j.relation, &mut out);
            use JoinOperator as J;
            let constraint = match &j.join_operator {
                J::Join(c) | J::Inner(c) | J::CrossJoin(c) => Some(c),
                J::Left(c) | J::LeftOuter(c) | J::LeftSemi(c) | J::LeftAnti(c) => Some(c),
                J::Right(c) | J::RightOuter(c) | J::FullOuter(c) => Some(c),
                _ => None,
            };
            match constraint {
                Some(JoinConstraint::On(e)) => constraints.push(e.clone()),
                Some(JoinConstraint::Using(_)) | Some(JoinConstraint::Natural) => {
                    // USING links the joined item with the items before it.
                    using.push(out.iter().map(|i| i.name.clone()).collect());
                }
                _ => {}
            }
        }
    }
    out
}

/// The AND-ed parts of `e` (written here apart from the compiler's own, which this
/// test checks).
fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    let mut pending = vec![e];
    while let Some(e) = pending.pop() {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => pending.extend([right.as_ref(), left.as_ref()]),
            Expr::Nested(inner) => pending.push(inner),
            other => out.push(other.clone()),
        }
    }
}

/// The groups of a SELECT's FROM items that no condition links to each other
/// (leaving out items of one row, which multiply nothing).
fn unlinked(s: &Select, known: &Known) -> Vec<BTreeSet<String>> {
    let mut local: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut conditions = Vec::new();
    let mut edges = Vec::new();
    let items = items(&s.from, known, &mut local, &mut conditions, &mut edges);
    if items.len() < 2 {
        return Vec::new();
    }
    // names the SELECT's own items expose take precedence over the catalog's
    let mut owners = known.owners.clone();
    owners.extend(local.into_iter().filter_map(|(c, t)| Some((c, t?))));
    if let Some(w) = &s.selection {
        conjuncts(w, &mut conditions);
    }
    edges.extend(conditions.iter().map(|c| qualifiers(c, &owners)));
    for i in &items {
        let mut e = i.refers.clone();
        e.insert(i.name.clone());
        edges.push(e);
    }
    // union-find over the item names
    let mut group: BTreeMap<String, usize> = items
        .iter()
        .filter(|i| !i.one_row)
        .enumerate()
        .map(|(k, i)| (i.name.clone(), k))
        .collect();
    for e in &edges {
        let present: Vec<usize> = e.iter().filter_map(|n| group.get(n).copied()).collect();
        if let Some(&first) = present.first() {
            for g in group.values_mut() {
                if present.contains(g) {
                    *g = first;
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (n, g) in group {
        groups.entry(g).or_default().insert(n);
    }
    if groups.len() < 2 {
        Vec::new()
    } else {
        groups.into_values().collect()
    }
}

type Found = Vec<(String, Vec<BTreeSet<String>>)>;

/// Every SELECT of a statement whose FROM items fall into unlinked groups.
fn cartesian_selects(stmt: &Statement, owners: &BTreeMap<String, String>) -> Found {
    struct S(Found, Known);
    impl Visitor for S {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                for cte in &with.cte_tables {
                    if one_row(&cte.query) {
                        self.1.one_row_ctes.insert(cte.alias.name.value.clone());
                    }
                }
            }
            fn walk(b: &SetExpr, known: &Known, out: &mut Found) {
                match b {
                    SetExpr::Select(s) => {
                        let u = unlinked(s, known);
                        if !u.is_empty() {
                            out.push((s.to_string(), u));
                        }
                    }
                    SetExpr::SetOperation { left, right, .. } => {
                        walk(left, known, out);
                        walk(right, known, out);
                    }
                    _ => {}
                }
            }
            walk(&q.body, &self.1, &mut self.0);
            ControlFlow::Continue(())
        }
    }
    let known = Known {
        owners: owners.clone(),
        one_row_ctes: BTreeSet::new(),
    };
    let mut s = S(Vec::new(), known);
    let _ = stmt.visit(&mut s);
    s.0
}

/// Every query of the TPC-H specification links all the tables of its FROM, so no
/// SELECT of its delta statement may leave inputs unlinked.
#[test]
fn tpch_delta_statements_join_nothing_without_a_condition() {
    let catalog = Catalog::from_ddl(TPCH_SCHEMA).unwrap();
    let owners = column_owners(&catalog);
    let mut failures = Vec::new();
    for (n, q) in tpch() {
        let (_, a) = compile_in(&catalog, &format!("q{n}"), &q, Mode::Differential);
        let Some(d) = a.differential_refresh else {
            continue;
        };
        for stmt in parse(&format!("Q{n}"), "differential refresh", &d) {
            for (select, groups) in cartesian_selects(&stmt, &owners) {
                let cut: String = select.chars().take(400).collect();
                failures.push(format!("Q{n}: unlinked {groups:?} in {cut}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} SELECT(s) join inputs without a condition:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_check_finds_a_cartesian_product() {
    let stmt = &Parser::parse_sql(
        &PostgreSqlDialect {},
        "SELECT 1 FROM a, b JOIN c ON c.x = b.x WHERE a.y > 0",
    )
    .unwrap()[0];
    let found = cartesian_selects(stmt, &BTreeMap::new());
    assert_eq!(found.len(), 1, "{found:?}");
    let linked = &Parser::parse_sql(
        &PostgreSqlDialect {},
        "SELECT 1 FROM a, b JOIN c ON c.x = b.x, (SELECT count(*) FROM d) AS n, LATERAL (SELECT a.z) AS l WHERE a.y = b.y",
    )
    .unwrap()[0];
    let found = cartesian_selects(linked, &BTreeMap::new());
    assert!(found.is_empty(), "{found:?}");
}

/// One snapshot per operator: the differential refresh of its query, pretty-printed.
#[test]
fn operator_snapshots() {
    let catalog = catalog();
    for (name, query) in OPERATORS {
        let (_, a) = compile_in(&catalog, name, query, Mode::Differential);
        let sql = a
            .differential_refresh
            .unwrap_or_else(|| panic!("{name}: no differential refresh"));
        insta::assert_snapshot!(format!("operator_{name}"), pretty(&sql), query);
    }
}
