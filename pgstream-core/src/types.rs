//! Output types: the SQL type and nullability of every output column of a defining
//! query, inferred from the sqlparser AST and the [`Catalog`] the way PostgreSQL
//! resolves them, so that `#[stream_table]` can check a struct's field types at
//! compile time.
//!
//! The inference is deliberately partial. Whatever it cannot decide is `None`, which
//! the macro accepts (the runtime checks it at start-up); whatever it decides must be
//! what PostgreSQL decides, because the macro turns a disagreement into an error.
//!
//! Rules, in PostgreSQL's terms:
//!
//! - column references take the catalog type; an outer join makes the padded side
//!   nullable; `ROLLUP`/`CUBE`/`GROUPING SETS` make grouped columns nullable;
//! - literals: integers are `integer`, `bigint` or `numeric` by size, decimals
//!   `numeric`, strings `unknown` (which becomes `text` as an output), `NULL` is a
//!   nullable `unknown`;
//! - operators are strict (NULL in, NULL out); `IS [NOT] NULL`, `IS [NOT] DISTINCT FROM`
//!   and `EXISTS` are never NULL;
//! - arithmetic follows the numeric ladder `smallint < integer < bigint < numeric`,
//!   and any `real`/`double precision` operand that is not matched by another `real`
//!   gives `double precision`; date and time arithmetic by the operator tables;
//! - `CASE`, `COALESCE`, `GREATEST`/`LEAST` and set operations take the common type
//!   (UNION's resolution rule); `COALESCE` is non-null when any argument is;
//! - aggregates: `count` → `bigint NOT NULL`; `sum` of `smallint`/`integer` → `bigint`,
//!   of `bigint`/`numeric` → `numeric`, of `real` → `real`, of `double precision` →
//!   `double precision`; `avg` of integers and `numeric` → `numeric`, of floats →
//!   `double precision`; `min`/`max` → the argument's type. All but `count` are
//!   nullable, except over a non-null argument in a `GROUP BY` query without
//!   `FILTER` (every group has a row).
//!
//! The same walk finds comparisons that PostgreSQL cannot make: `GROUP BY`, `DISTINCT`,
//! `UNION` (without `ALL`) and `=`/`<>`/... on `json`, `xml` or `point`, which have
//! no equality operator ([`check`]).

use crate::catalog::Catalog;
use crate::error::{Diagnostic, Error, Result};
use crate::ir::OutputColumn;
use crate::sql::ident::{ident_value, qualified};
use crate::sql::parse::{self, expr_range};
use crate::sql::walk::{function_name, AGGREGATES};
use sqlparser::ast::{
    BinaryOperator as B, DataType, Distinct, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    GroupByExpr, JoinConstraint, JoinOperator, Query, Select, SelectItem, SetExpr, SetOperator,
    SetQuantifier, TableFactor, TableWithJoins, UnaryOperator, Value,
};

/// The type and nullability of an expression; `None` where it is not known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Ty {
    /// The type as `format_type` spells it; `unknown` for an untyped literal.
    pub(crate) sql: Option<String>,
    /// Whether the value can be NULL.
    pub(crate) null: Option<bool>,
}

impl Ty {
    fn new(sql: &str, null: Option<bool>) -> Ty {
        Ty {
            sql: Some(sql.to_string()),
            null,
        }
    }
    fn not_null(sql: &str) -> Ty {
        Ty::new(sql, Some(false))
    }
    fn unknown() -> Ty {
        Ty::default()
    }
    fn base(&self) -> Option<String> {
        self.sql.as_deref().map(base)
    }
}

/// Fill in `sql_type` and `nullable` of `columns`, the compiled output columns of
/// `query`. Columns are matched by position and name; a column that cannot be matched
/// stays unknown.
pub(crate) fn annotate(query: &str, catalog: &Catalog, columns: &mut [OutputColumn]) {
    let Some(q) = parse::last_query(query) else {
        return;
    };
    let mut inf = Infer::new(query, catalog);
    let Some(out) = inf.query(&q, &[], None) else {
        return;
    };
    for (i, c) in columns.iter_mut().enumerate() {
        let hit = match out.get(i) {
            Some((n, t)) if *n == c.name => Some(t),
            _ => {
                let mut same = out.iter().filter(|(n, _)| *n == c.name);
                match (same.next(), same.next()) {
                    (Some((_, t)), None) => Some(t),
                    _ => None,
                }
            }
        };
        if let Some(t) = hit {
            c.sql_type = t.sql.as_deref().map(|s| {
                if s == "unknown" {
                    "text".to_string()
                } else {
                    s.to_string()
                }
            });
            c.nullable = t.null;
        }
    }
}

/// Comparisons PostgreSQL cannot make: grouping, `DISTINCT`, `UNION` or comparing
/// values of a type without an equality operator (`json`, `xml`, `point`). The error
/// points at the expression and suggests `jsonb` or a cast.
pub(crate) fn check(query: &str, catalog: &Catalog) -> Result<()> {
    let Some(q) = parse::last_query(query) else {
        return Ok(());
    };
    let mut inf = Infer::new(query, catalog);
    let _ = inf.query(&q, &[], None);
    match inf.error {
        Some(d) => Err(Error::Invalid(d)),
        None => Ok(()),
    }
}

/// Types that have an `=` operator but no default btree or hash operator class:
/// GROUP BY, DISTINCT and UNION cannot use it (`json`, `xml` and `point` have no `=`
/// at all and are reported by `no_equality`).
const NOT_GROUPABLE: &[&str] = &[
    "box", "lseg", "line", "path", "polygon", "circle", "jsonpath",
];

// ---------------------------------------------------------------------------------
// Type names

/// The spelling `format_type` uses for a type name as written.
pub(crate) fn canonical(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(elem) = t.strip_suffix("[]") {
        return format!("{}[]", canonical(elem));
    }
    let (head, args) = match t.find('(') {
        Some(i) => {
            let close = t.rfind(')').unwrap_or(t.len() - 1);
            (
                format!("{} {}", t[..i].trim(), t[close + 1..].trim())
                    .trim()
                    .to_string(),
                Some(t[i..=close].replace(' ', "")),
            )
        }
        None => (t.clone(), None),
    };
    let name = match head.as_str() {
        "int" | "int4" | "integer" | "serial" | "serial4" => "integer",
        "int8" | "bigint" | "bigserial" | "serial8" => "bigint",
        "int2" | "smallint" | "smallserial" | "serial2" => "smallint",
        "float8" | "double precision" | "double" => "double precision",
        "float4" | "real" => "real",
        "float" => match &args {
            Some(a)
                if a.trim_matches(|c| c == '(' || c == ')')
                    .parse::<u32>()
                    .unwrap_or(53)
                    <= 24 =>
            {
                return "real".into()
            }
            _ => return "double precision".into(),
        },
        "bool" | "boolean" => "boolean",
        "decimal" | "numeric" => "numeric",
        "varchar" | "character varying" => "character varying",
        "char" | "character" | "bpchar" => "character",
        "timestamptz" | "timestamp with time zone" => "timestamp with time zone",
        "timestamp" | "timestamp without time zone" => "timestamp without time zone",
        "timetz" | "time with time zone" => "time with time zone",
        "time" | "time without time zone" => "time without time zone",
        other => other,
    };
    match args {
        // PostgreSQL prints the precision inside the name: timestamp(3) with time zone
        Some(a) if name.starts_with("timestamp ") || name.starts_with("time ") => {
            let (first, rest) = name.split_once(' ').expect("has a space");
            format!("{first}{a} {rest}")
        }
        Some(a) => format!("{name}{a}"),
        None => name.to_string(),
    }
}

/// The type without modifiers: `numeric(10,2)` → `numeric`,
/// `timestamp(3) with time zone` → `timestamp with time zone`.
pub(crate) fn base(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut depth = 0;
    for c in t.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn numeric_rank(t: &str) -> Option<u8> {
    Some(match t {
        "smallint" => 1,
        "integer" => 2,
        "bigint" => 3,
        "numeric" => 4,
        "real" => 5,
        "double precision" => 6,
        _ => return None,
    })
}

fn is_string(t: &str) -> bool {
    matches!(t, "text" | "character varying" | "character" | "name")
}

fn is_array(t: &str) -> bool {
    t.ends_with("[]")
}

/// The common type of CASE branches, COALESCE arguments and UNION columns (PostgreSQL's
/// "UNION, CASE, and related constructs" rule, for the types this module knows).
fn common(types: &[Option<String>]) -> Option<String> {
    let mut known: Vec<&str> = Vec::new();
    for t in types {
        match t.as_deref() {
            None => return None,
            Some("unknown") => {}
            Some(t) => known.push(t),
        }
    }
    let Some(first) = known.first() else {
        return Some("unknown".into());
    };
    // an untyped NULL or literal has no type modifier, so the result has none either
    let unknowns = known.len() < types.len();
    if known.iter().all(|t| t == first) && !unknowns {
        return Some(first.to_string());
    }
    let bases: Vec<String> = known.iter().map(|t| base(t)).collect();
    if bases.iter().all(|b| *b == bases[0]) {
        return Some(bases[0].clone());
    }
    if let Some(ranks) = bases
        .iter()
        .map(|b| numeric_rank(b))
        .collect::<Option<Vec<u8>>>()
    {
        let max = ranks.iter().copied().max().expect("not empty");
        return Some(bases[ranks.iter().position(|r| *r == max).expect("max")].clone());
    }
    if bases.iter().all(|b| is_string(b)) {
        // text and varchar convert to each other implicitly: the first one stays
        return Some(bases[0].clone());
    }
    let ts = |b: &str| {
        matches!(
            b,
            "date" | "timestamp without time zone" | "timestamp with time zone"
        )
    };
    if bases.iter().all(|b| ts(b)) {
        return Some(
            if bases.iter().any(|b| b == "timestamp with time zone") {
                "timestamp with time zone"
            } else {
                "timestamp without time zone"
            }
            .into(),
        );
    }
    None
}

/// NULL in, NULL out: nullable if any input is, not null if all inputs are not.
fn strict(nulls: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut all_known = true;
    for n in nulls {
        match n {
            Some(true) => return Some(true),
            None => all_known = false,
            Some(false) => {}
        }
    }
    all_known.then_some(false)
}

/// Not null if any input is not null (COALESCE, GREATEST, LEAST).
fn any_not_null(nulls: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut all_known = true;
    for n in nulls {
        match n {
            Some(false) => return Some(false),
            None => all_known = false,
            Some(true) => {}
        }
    }
    all_known.then_some(true)
}

fn arithmetic(op: &B, l: &Ty, r: &Ty) -> Option<String> {
    let (l, r) = (l.base()?, r.base()?);
    let (l, r) = match (l.as_str(), r.as_str()) {
        ("unknown", "unknown") => return None,
        ("unknown", o) | (o, "unknown") => (o.to_string(), o.to_string()),
        _ => (l, r),
    };
    if let (Some(a), Some(b)) = (numeric_rank(&l), numeric_rank(&r)) {
        if matches!(op, B::PGExp) {
            return Some(
                if a.max(b) == 4 && a.max(b) < 5 {
                    "numeric"
                } else {
                    "double precision"
                }
                .into(),
            );
        }
        let t = match (a, b) {
            (5, 5) => "real",
            _ if a >= 5 || b >= 5 => "double precision",
            _ => return Some(if a >= b { l } else { r }),
        };
        return Some(t.into());
    }
    let int = |t: &str| matches!(t, "smallint" | "integer" | "bigint");
    let t = match (op, l.as_str(), r.as_str()) {
        (B::Plus, "date", i) | (B::Plus | B::Minus, i, "date") | (B::Minus, "date", i)
            if int(i) =>
        {
            "date"
        }
        (B::Minus, "date", "date") => "integer",
        (B::Plus, "date", "interval")
        | (B::Plus, "interval", "date")
        | (B::Minus, "date", "interval") => "timestamp without time zone",
        (B::Plus | B::Minus, t, "interval") | (B::Plus, "interval", t)
            if t.starts_with("timestamp") || t.starts_with("time ") || t == "interval" =>
        {
            return Some(t.to_string())
        }
        (B::Minus, a, b) if a == b && a.starts_with("timestamp") => "interval",
        (B::Multiply | B::Divide, "interval", n) | (B::Multiply, n, "interval")
            if numeric_rank(n).is_some() =>
        {
            "interval"
        }
        _ => return None,
    };
    Some(t.into())
}

// ---------------------------------------------------------------------------------
// Scopes

type Columns = Vec<(String, Ty)>;

/// A relation of a FROM clause: its name in the query and its columns (`None` when
/// they are not known, e.g. a table function).
#[derive(Debug, Clone)]
struct Rel {
    name: String,
    cols: Option<Columns>,
}

struct Scope<'p> {
    rels: Vec<Rel>,
    parent: Option<&'p Scope<'p>>,
}

/// How column references outside aggregates behave in the current SELECT.
#[derive(Debug, Clone, Copy, Default)]
struct Ctx {
    /// GROUP BY with at least one expression and no grouping sets.
    grouped: bool,
    /// ROLLUP, CUBE or GROUPING SETS: grouped columns are NULL in subtotal rows.
    grouping_sets: bool,
    /// Inside an aggregate's argument.
    in_agg: bool,
}

struct Infer<'a> {
    text: &'a str,
    catalog: &'a Catalog,
    error: Option<Diagnostic>,
}

type Ctes = [(String, Columns)];

impl<'a> Infer<'a> {
    fn new(text: &'a str, catalog: &'a Catalog) -> Self {
        Infer {
            text,
            catalog,
            error: None,
        }
    }

    fn report(&mut self, d: Diagnostic) {
        if self.error.is_none() {
            self.error = Some(d);
        }
    }

    /// The output columns of a query, or `None` when they cannot be determined.
    fn query(&mut self, q: &Query, ctes: &Ctes, parent: Option<&Scope>) -> Option<Columns> {
        let mut env: Vec<(String, Columns)> = ctes.to_vec();
        if let Some(w) = &q.with {
            for c in &w.cte_tables {
                let name = ident_value(&c.alias.name);
                let rename = |cols: Columns| -> Columns {
                    if c.alias.columns.is_empty() {
                        cols
                    } else {
                        cols.into_iter()
                            .zip(&c.alias.columns)
                            .map(|((_, t), cd)| (ident_value(&cd.name), t))
                            .collect()
                    }
                };
                let cols = match (w.recursive, c.query.body.as_ref()) {
                    (
                        true,
                        SetExpr::SetOperation {
                            op: SetOperator::Union,
                            set_quantifier,
                            left,
                            right,
                        },
                    ) => {
                        // The non-recursive term fixes the types; the recursive term can
                        // only add NULLs. Iterate until nullability is stable.
                        let mut cols = self.set_expr(left, &env, parent).map(rename);
                        for _ in 0..4 {
                            let Some(cur) = cols.clone() else { break };
                            let mut inner = env.clone();
                            inner.push((name.clone(), cur.clone()));
                            let r = self.set_expr(right, &inner, parent);
                            let next =
                                combine(&SetOperator::Union, set_quantifier, Some(cur.clone()), r)
                                    .map(|n| {
                                        // names and types stay those of the first term
                                        cur.iter()
                                            .zip(n)
                                            .map(|((name, t), (_, u))| {
                                                (
                                                    name.clone(),
                                                    Ty {
                                                        sql: t.sql.clone(),
                                                        null: u.null,
                                                    },
                                                )
                                            })
                                            .collect::<Columns>()
                                    });
                            if next == cols {
                                break;
                            }
                            cols = next;
                        }
                        cols
                    }
                    _ => self.query(&c.query, &env, parent).map(rename),
                };
                env.push((name, cols.unwrap_or_default()));
            }
        }
        self.set_expr(&q.body, &env, parent)
    }

    fn set_expr(&mut self, body: &SetExpr, ctes: &Ctes, parent: Option<&Scope>) -> Option<Columns> {
        match body {
            SetExpr::Select(s) => self.select(s, ctes, parent),
            SetExpr::Query(q) => self.query(q, ctes, parent),
            SetExpr::SetOperation {
                op,
                set_quantifier,
                left,
                right,
            } => {
                let l = self.set_expr(left, ctes, parent);
                let r = self.set_expr(right, ctes, parent);
                let out = combine(op, set_quantifier, l, r);
                let dedup = !matches!(
                    set_quantifier,
                    SetQuantifier::All | SetQuantifier::AllByName
                );
                if dedup {
                    if let Some(cols) = &out {
                        for (i, (name, t)) in cols.iter().enumerate() {
                            let span = first_select(left)
                                .and_then(|s| s.projection.get(i))
                                .and_then(|item| match item {
                                    SelectItem::UnnamedExpr(e)
                                    | SelectItem::ExprWithAlias { expr: e, .. } => {
                                        expr_range(self.text, e)
                                    }
                                    _ => None,
                                });
                            self.no_grouping(t, &format!("{op} (without ALL) removes duplicate rows, so it compares the column `{name}`"), span, name);
                        }
                    }
                }
                out
            }
            SetExpr::Values(v) => {
                let scope = Scope {
                    rels: vec![],
                    parent,
                };
                let rows: Vec<Vec<Ty>> = v
                    .rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|e| self.expr(e, &scope, ctes, Ctx::default()))
                            .collect()
                    })
                    .collect();
                let width = rows.first()?.len();
                Some(
                    (0..width)
                        .map(|i| {
                            let col: Vec<&Ty> = rows.iter().filter_map(|r| r.get(i)).collect();
                            (
                                format!("column{}", i + 1),
                                Ty {
                                    sql: common(
                                        &col.iter().map(|t| t.sql.clone()).collect::<Vec<_>>(),
                                    ),
                                    null: strict(col.iter().map(|t| t.null)),
                                },
                            )
                        })
                        .collect(),
                )
            }
            _ => None,
        }
    }

    fn select(&mut self, s: &Select, ctes: &Ctes, parent: Option<&Scope>) -> Option<Columns> {
        let mut rels = Vec::new();
        for twj in &s.from {
            let lateral = Scope {
                rels: rels.clone(),
                parent,
            };
            let more = self.table_with_joins(twj, ctes, &lateral);
            rels.extend(more);
        }
        let scope = Scope { rels, parent };

        let (group, grouping_sets) = match &s.group_by {
            GroupByExpr::Expressions(exprs, mods) => {
                let sets = !mods.is_empty()
                    || exprs.iter().any(|e| {
                        matches!(e, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_))
                    });
                (exprs.clone(), sets)
            }
            GroupByExpr::All(_) => (vec![], true),
        };
        let ctx = Ctx {
            grouped: !group.is_empty() && !grouping_sets,
            grouping_sets,
            in_agg: false,
        };

        // WHERE and HAVING: only for the equality check
        if let Some(w) = &s.selection {
            self.expr(w, &scope, ctes, Ctx::default());
        }
        if let Some(h) = &s.having {
            self.expr(h, &scope, ctes, ctx);
        }

        let mut out: Columns = Vec::new();
        let mut items: Vec<Option<&Expr>> = Vec::new();
        let mut complete = true;
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    out.push((
                        crate::sql::walk::output_name(e),
                        self.expr(e, &scope, ctes, ctx),
                    ));
                    items.push(Some(e));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    out.push((ident_value(alias), self.expr(expr, &scope, ctes, ctx)));
                    items.push(Some(expr));
                }
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    let qual = match item {
                        SelectItem::QualifiedWildcard(k, _) => {
                            Some(k.to_string().to_lowercase().rsplit('.').next()?.to_string())
                        }
                        _ => None,
                    };
                    for r in &scope.rels {
                        if qual.as_ref().is_some_and(|q| *q != r.name) {
                            continue;
                        }
                        match &r.cols {
                            Some(cols) => {
                                for c in cols.iter().filter(|(n, _)| !n.starts_with("__pgs_")) {
                                    let mut c = c.clone();
                                    if grouping_sets {
                                        c.1.null = Some(true);
                                    }
                                    out.push(c);
                                    items.push(None);
                                }
                            }
                            None => complete = false,
                        }
                    }
                }
            }
        }

        // Grouping and DISTINCT compare values.
        for g in &group {
            let exprs: Vec<&Expr> = match g {
                Expr::Rollup(sets) | Expr::Cube(sets) | Expr::GroupingSets(sets) => {
                    sets.iter().flatten().collect()
                }
                e => vec![e],
            };
            for e in exprs {
                // GROUP BY 2 or GROUP BY <output name>
                let t = match e {
                    Expr::Value(v) => match &v.value {
                        Value::Number(n, _) => n
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| out.get(i.wrapping_sub(1)))
                            .map(|(_, t)| t.clone())
                            .unwrap_or_default(),
                        _ => Ty::unknown(),
                    },
                    Expr::Identifier(i) if resolve(&scope, None, &ident_value(i)).is_none() => out
                        .iter()
                        .find(|(n, _)| *n == ident_value(i))
                        .map(|(_, t)| t.clone())
                        .unwrap_or_default(),
                    _ => self.expr(e, &scope, ctes, Ctx::default()),
                };
                self.no_grouping(
                    &t,
                    "GROUP BY compares the values of this expression",
                    expr_range(self.text, e),
                    &e.to_string(),
                );
            }
        }
        match &s.distinct {
            Some(Distinct::Distinct) => {
                for (i, (name, t)) in out.iter().enumerate() {
                    let span = items
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|e| expr_range(self.text, e));
                    self.no_grouping(
                        t,
                        &format!("DISTINCT compares the values of the column `{name}`"),
                        span,
                        name,
                    );
                }
            }
            Some(Distinct::On(exprs)) => {
                for e in exprs {
                    let t = self.expr(e, &scope, ctes, ctx);
                    self.no_grouping(
                        &t,
                        "DISTINCT ON compares the values of this expression",
                        expr_range(self.text, e),
                        &e.to_string(),
                    );
                }
            }
            None => {}
        }
        complete.then_some(out)
    }

    /// The relations of one FROM item, with outer-join padding applied.
    fn table_with_joins(&mut self, twj: &TableWithJoins, ctes: &Ctes, outer: &Scope) -> Vec<Rel> {
        let mut rels = self.factor(&twj.relation, ctes, outer);
        for j in &twj.joins {
            let lateral = Scope {
                rels: outer.rels.iter().chain(&rels).cloned().collect(),
                parent: outer.parent,
            };
            let mut right = self.factor(&j.relation, ctes, &lateral);
            let (pad_left, pad_right, constraint) = match &j.join_operator {
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (false, true, Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (true, false, Some(c)),
                JoinOperator::FullOuter(c) => (true, true, Some(c)),
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (false, false, Some(c)),
                _ => (false, false, None),
            };
            // the join condition sees both sides before padding
            let both = Scope {
                rels: outer
                    .rels
                    .iter()
                    .chain(&rels)
                    .chain(&right)
                    .cloned()
                    .collect(),
                parent: outer.parent,
            };
            match constraint {
                Some(JoinConstraint::On(on)) => {
                    self.expr(on, &both, ctes, Ctx::default());
                }
                Some(JoinConstraint::Using(cols)) => {
                    for c in cols {
                        let name = c.to_string().to_lowercase();
                        if let Some(t) = resolve(&both, None, &name) {
                            self.no_grouping(
                                &t,
                                &format!("the join compares `{name}` on both sides"),
                                None,
                                &name,
                            );
                        }
                    }
                }
                _ => {}
            }
            if pad_left {
                pad(&mut rels);
            }
            if pad_right {
                pad(&mut right);
            }
            rels.extend(right);
        }
        rels
    }

    fn factor(&mut self, f: &TableFactor, ctes: &Ctes, outer: &Scope) -> Vec<Rel> {
        match f {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let q = qualified(name);
                let rel_name = alias
                    .as_ref()
                    .map(|a| ident_value(&a.name))
                    .unwrap_or_else(|| q.name.clone());
                let mut cols = if args.is_some() {
                    None
                } else if let Some((_, cols)) = (name.0.len() == 1)
                    .then(|| ctes.iter().rev().find(|(n, _)| *n == q.name))
                    .flatten()
                {
                    Some(cols.clone())
                } else {
                    self.catalog
                        .lookup((name.0.len() > 1).then_some(q.schema.as_str()), &q.name)
                        .map(|t| {
                            t.columns
                                .iter()
                                .map(|c| {
                                    (
                                        c.name.clone(),
                                        Ty::new(&canonical(&c.sql_type), Some(c.nullable)),
                                    )
                                })
                                .collect()
                        })
                };
                if let (Some(a), Some(c)) = (alias, cols.as_mut()) {
                    rename(
                        c,
                        &a.columns
                            .iter()
                            .map(|c| ident_value(&c.name))
                            .collect::<Vec<_>>(),
                    );
                }
                vec![Rel {
                    name: rel_name,
                    cols,
                }]
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
            } => {
                let parent = if *lateral { Some(outer) } else { outer.parent };
                let mut cols = self.query(subquery, ctes, parent);
                if let (Some(a), Some(c)) = (alias, cols.as_mut()) {
                    rename(
                        c,
                        &a.columns
                            .iter()
                            .map(|c| ident_value(&c.name))
                            .collect::<Vec<_>>(),
                    );
                }
                vec![Rel {
                    name: alias
                        .as_ref()
                        .map(|a| ident_value(&a.name))
                        .unwrap_or_default(),
                    cols,
                }]
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let rels = self.table_with_joins(table_with_joins, ctes, outer);
                match alias {
                    // an aliased join hides the names inside it
                    Some(a) => {
                        let cols = rels
                            .iter()
                            .map(|r| r.cols.clone())
                            .collect::<Option<Vec<Columns>>>()
                            .map(|v| v.concat());
                        vec![Rel {
                            name: ident_value(&a.name),
                            cols,
                        }]
                    }
                    None => rels,
                }
            }
            other => {
                let name = match other {
                    TableFactor::Function { alias, .. }
                    | TableFactor::UNNEST { alias, .. }
                    | TableFactor::TableFunction { alias, .. } => alias.as_ref(),
                    _ => None,
                }
                .map(|a| ident_value(&a.name))
                .unwrap_or_default();
                vec![Rel { name, cols: None }]
            }
        }
    }

    /// Report `t` when GROUP BY, DISTINCT, UNION or a USING join cannot compare its
    /// values: no equality operator (`json`, `xml`, `point`), or one that grouping
    /// cannot use (no default btree or hash operator class: the other geometric types,
    /// `jsonpath`).
    fn no_grouping(&mut self, t: &Ty, why: &str, span: Option<std::ops::Range<usize>>, what: &str) {
        let Some(b) = t.base() else { return };
        let elem = b.trim_end_matches("[]");
        if !NOT_GROUPABLE.contains(&elem) {
            return self.no_equality(t, why, span, what);
        }
        self.report(
            Diagnostic::new(format!(
                "{why}, but PostgreSQL cannot group values of type `{b}`: it has no equality operator for grouping (no default btree or hash operator class)"
            ))
            .with_span(span)
            .with_help(format!("cast it to text: `{what}::text`")),
        );
    }

    /// Report `t` when it has no equality operator.
    fn no_equality(&mut self, t: &Ty, why: &str, span: Option<std::ops::Range<usize>>, what: &str) {
        let Some(b) = t.base() else { return };
        let elem = b.trim_end_matches("[]");
        let help = match elem {
            "json" => format!(
                "store the column as `jsonb`, which has equality (ALTER TABLE ... ALTER COLUMN ... TYPE jsonb), or cast it here: `{what}::jsonb`"
            ),
            "xml" => format!("cast it to text: `{what}::text`"),
            "point" => format!(
                "cast it to text (`{what}::text`), or compare its coordinates (`{what}[0]`, `{what}[1]`)"
            ),
            _ => return,
        };
        self.report(
            Diagnostic::new(format!(
                "{why}, but PostgreSQL cannot compare two values of type `{b}`: it has no equality operator"
            ))
            .with_span(span)
            .with_help(help),
        );
    }

    fn expr(&mut self, e: &Expr, sc: &Scope, ctes: &Ctes, ctx: Ctx) -> Ty {
        match e {
            Expr::Identifier(i) => self.column(sc, None, &ident_value(i), ctx),
            Expr::CompoundIdentifier(ids) if ids.len() >= 2 => {
                let n = ids.len();
                self.column(
                    sc,
                    Some(&ident_value(&ids[n - 2])),
                    &ident_value(&ids[n - 1]),
                    ctx,
                )
            }
            Expr::Value(v) => literal(&v.value),
            Expr::TypedString { data_type, .. } => Ty::not_null(&type_name(data_type)),
            Expr::Cast {
                expr, data_type, ..
            } => {
                let inner = self.expr(expr, sc, ctes, ctx);
                Ty::new(&type_name(data_type), inner.null)
            }
            Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => {
                self.expr(inner, sc, ctes, ctx)
            }
            Expr::BinaryOp { left, op, right } => {
                let l = self.expr(left, sc, ctes, ctx);
                let r = self.expr(right, sc, ctes, ctx);
                let null = strict([l.null, r.null]);
                match op {
                    B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq => {
                        for t in [&l, &r] {
                            self.no_equality(
                                t,
                                &format!("`{e}` compares two values"),
                                expr_range(self.text, e),
                                &if std::ptr::eq(t, &l) { left } else { right }.to_string(),
                            );
                        }
                        Ty::new("boolean", null)
                    }
                    B::And
                    | B::Or
                    | B::PGRegexMatch
                    | B::PGRegexIMatch
                    | B::PGRegexNotMatch
                    | B::PGRegexNotIMatch
                    | B::PGLikeMatch
                    | B::PGILikeMatch
                    | B::PGNotLikeMatch
                    | B::PGNotILikeMatch
                    | B::AtArrow
                    | B::ArrowAt
                    | B::Question
                    | B::QuestionAnd
                    | B::QuestionPipe
                    | B::PGOverlap => Ty::new("boolean", null),
                    B::StringConcat => {
                        let (lb, rb) = (l.base(), r.base());
                        let t = match (lb.as_deref(), rb.as_deref()) {
                            (Some("jsonb"), Some("jsonb" | "unknown"))
                            | (Some("unknown"), Some("jsonb")) => Some("jsonb".to_string()),
                            (Some(a), _) if is_array(a) => Some(a.to_string()),
                            (_, Some(b)) if is_array(b) => Some(b.to_string()),
                            (None, _) | (_, None) => None,
                            _ => Some("text".to_string()),
                        };
                        Ty { sql: t, null }
                    }
                    B::Arrow | B::HashArrow => Ty {
                        sql: l.base().filter(|b| b == "json" || b == "jsonb"),
                        null: Some(true),
                    },
                    B::LongArrow | B::HashLongArrow => Ty::new("text", Some(true)),
                    B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo | B::PGExp => Ty {
                        sql: arithmetic(op, &l, &r),
                        null,
                    },
                    _ => Ty { sql: None, null },
                }
            }
            Expr::UnaryOp { op, expr } => {
                let t = self.expr(expr, sc, ctes, ctx);
                match op {
                    UnaryOperator::Not => Ty::new("boolean", t.null),
                    UnaryOperator::Minus | UnaryOperator::Plus => Ty {
                        sql: t
                            .base()
                            .filter(|b| numeric_rank(b).is_some() || b == "interval"),
                        null: t.null,
                    },
                    _ => Ty {
                        sql: None,
                        null: t.null,
                    },
                }
            }
            Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsTrue(x)
            | Expr::IsNotTrue(x)
            | Expr::IsFalse(x)
            | Expr::IsNotFalse(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotUnknown(x) => {
                self.expr(x, sc, ctes, ctx);
                Ty::not_null("boolean")
            }
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                let (l, r) = (self.expr(a, sc, ctes, ctx), self.expr(b, sc, ctes, ctx));
                for (t, side) in [(&l, a), (&r, b)] {
                    self.no_equality(
                        t,
                        &format!("`{e}` compares two values"),
                        expr_range(self.text, e),
                        &side.to_string(),
                    );
                }
                Ty::not_null("boolean")
            }
            Expr::InList { expr, list, .. } => {
                let mut nulls = vec![self.expr(expr, sc, ctes, ctx).null];
                for x in list {
                    nulls.push(self.expr(x, sc, ctes, ctx).null);
                }
                Ty::new("boolean", strict(nulls))
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                let n = [
                    self.expr(expr, sc, ctes, ctx).null,
                    self.expr(low, sc, ctes, ctx).null,
                    self.expr(high, sc, ctes, ctx).null,
                ];
                Ty::new("boolean", strict(n))
            }
            Expr::Like { expr, pattern, .. }
            | Expr::ILike { expr, pattern, .. }
            | Expr::SimilarTo { expr, pattern, .. } => {
                let n = [
                    self.expr(expr, sc, ctes, ctx).null,
                    self.expr(pattern, sc, ctes, ctx).null,
                ];
                Ty::new("boolean", strict(n))
            }
            Expr::InSubquery { expr, subquery, .. } => {
                let t = self.expr(expr, sc, ctes, ctx);
                self.query(subquery, ctes, Some(sc));
                Ty {
                    sql: Some("boolean".into()),
                    null: (t.null == Some(true)).then_some(true),
                }
            }
            Expr::AnyOp { left, right, .. } | Expr::AllOp { left, right, .. } => {
                self.expr(left, sc, ctes, ctx);
                self.expr(right, sc, ctes, ctx);
                Ty::new("boolean", None)
            }
            Expr::Exists { subquery, .. } => {
                self.query(subquery, ctes, Some(sc));
                Ty::not_null("boolean")
            }
            Expr::Subquery(q) => {
                let cols = self.query(q, ctes, Some(sc));
                let first = cols.and_then(|c| c.into_iter().next()).map(|(_, t)| t);
                // An aggregate without GROUP BY or HAVING returns exactly one row:
                // its value is NULL only when the aggregate's is (`count` never).
                let one_row = q.limit.is_none()
                    && q.offset.is_none()
                    && q.fetch.is_none()
                    && matches!(q.body.as_ref(), SetExpr::Select(s)
                    if s.having.is_none()
                        && matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
                        && s.projection.len() == 1
                        && s.projection.iter().any(|i| match i {
                            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                                crate::sql::walk::contains_aggregate(e)
                            }
                            _ => false,
                        }));
                Ty {
                    null: if one_row {
                        first.as_ref().and_then(|t| t.null)
                    } else {
                        // no row is NULL
                        Some(true)
                    },
                    sql: first.and_then(|t| t.sql),
                }
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
            } => {
                if let Some(o) = operand {
                    self.expr(o, sc, ctes, ctx);
                }
                let mut results = Vec::new();
                for w in conditions {
                    self.expr(&w.condition, sc, ctes, ctx);
                    results.push(self.expr(&w.result, sc, ctes, ctx));
                }
                let else_t = match else_result {
                    Some(x) => self.expr(x, sc, ctes, ctx),
                    None => Ty::new("unknown", Some(true)),
                };
                results.push(else_t);
                Ty {
                    sql: common(&results.iter().map(|t| t.sql.clone()).collect::<Vec<_>>()),
                    null: if results.iter().any(|t| t.null == Some(true)) {
                        Some(true)
                    } else if results.iter().all(|t| t.null == Some(false)) {
                        Some(false)
                    } else {
                        None
                    },
                }
            }
            Expr::Extract { expr, .. } => {
                let t = self.expr(expr, sc, ctes, ctx);
                Ty::new("numeric", t.null)
            }
            Expr::Ceil { expr, .. } | Expr::Floor { expr, .. } => {
                let t = self.expr(expr, sc, ctes, ctx);
                Ty {
                    sql: rounding(&t),
                    null: t.null,
                }
            }
            Expr::Position { expr, r#in } => {
                let n = [
                    self.expr(expr, sc, ctes, ctx).null,
                    self.expr(r#in, sc, ctes, ctx).null,
                ];
                Ty::new("integer", strict(n))
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut n = vec![self.expr(expr, sc, ctes, ctx).null];
                for x in [substring_from, substring_for].into_iter().flatten() {
                    n.push(self.expr(x, sc, ctes, ctx).null);
                }
                Ty::new("text", strict(n))
            }
            Expr::Trim { expr, .. } => {
                let t = self.expr(expr, sc, ctes, ctx);
                Ty::new("text", t.null)
            }
            Expr::AtTimeZone {
                timestamp,
                time_zone,
            } => {
                let t = self.expr(timestamp, sc, ctes, ctx);
                let z = self.expr(time_zone, sc, ctes, ctx);
                let sql = match t.base().as_deref() {
                    Some("timestamp with time zone") => Some("timestamp without time zone"),
                    Some("timestamp without time zone") | Some("date") => {
                        Some("timestamp with time zone")
                    }
                    _ => None,
                };
                Ty {
                    sql: sql.map(String::from),
                    null: strict([t.null, z.null]),
                }
            }
            Expr::Interval(_) => Ty::not_null("interval"),
            Expr::Array(a) => {
                let elems: Vec<Ty> = a.elem.iter().map(|x| self.expr(x, sc, ctes, ctx)).collect();
                let t = common(&elems.iter().map(|t| t.sql.clone()).collect::<Vec<_>>());
                Ty {
                    sql: t.map(|t| {
                        let t = if t == "unknown" {
                            "text".to_string()
                        } else {
                            t
                        };
                        format!("{}[]", base(&t))
                    }),
                    null: Some(false),
                }
            }
            Expr::Function(f) => self.function(f, sc, ctes, ctx),
            _ => Ty::unknown(),
        }
    }

    fn column(&mut self, sc: &Scope, qual: Option<&str>, name: &str, ctx: Ctx) -> Ty {
        let mut t = resolve(sc, qual, name).unwrap_or_default();
        if ctx.grouping_sets && !ctx.in_agg {
            t.null = Some(true);
        }
        t
    }

    fn function(&mut self, f: &sqlparser::ast::Function, sc: &Scope, ctes: &Ctes, ctx: Ctx) -> Ty {
        let name = function_name(f);
        let is_agg = AGGREGATES.contains(&name.as_str()) || name == "count";
        let arg_ctx = Ctx {
            in_agg: ctx.in_agg || is_agg,
            ..ctx
        };
        let mut star = false;
        let args: Vec<Ty> = match &f.args {
            FunctionArguments::List(l) => l
                .args
                .iter()
                .map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
                    | FunctionArg::Named {
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    }
                    | FunctionArg::ExprNamed {
                        arg: FunctionArgExpr::Expr(e),
                        ..
                    } => self.expr(e, sc, ctes, arg_ctx),
                    _ => {
                        star = true;
                        Ty::unknown()
                    }
                })
                .collect(),
            FunctionArguments::Subquery(q) => {
                self.query(q, ctes, Some(sc));
                vec![Ty::unknown()]
            }
            FunctionArguments::None => vec![],
        };
        if let Some(filter) = &f.filter {
            self.expr(filter, sc, ctes, arg_ctx);
        }
        let arg = args.first().cloned().unwrap_or_default();
        let ab = arg.base();
        let ab = ab.as_deref();
        let nulls = || args.iter().map(|a| a.null);

        // Window functions
        if f.over.is_some() {
            let sql = match name.as_str() {
                "row_number" | "rank" | "dense_rank" | "count" => return Ty::not_null("bigint"),
                "ntile" => return Ty::not_null("integer"),
                "percent_rank" | "cume_dist" => return Ty::not_null("double precision"),
                "lag" | "lead" | "first_value" | "last_value" | "nth_value" => arg.sql.clone(),
                _ if is_agg => aggregate_type(&name, ab, star),
                _ => None,
            };
            return Ty {
                sql,
                null: Some(true),
            };
        }
        if is_agg {
            if name == "count" {
                return Ty::not_null("bigint");
            }
            let sql = aggregate_type(&name, ab, star);
            let every_group_has_a_row = ctx.grouped && f.filter.is_none();
            let null = match name.as_str() {
                // NULL over no rows, and over rows that are all NULL: not NULL when
                // every group has a row and the argument is never NULL
                "sum" | "avg" | "min" | "max" | "array_agg" | "string_agg" | "bool_and"
                | "bool_or" | "every" | "bit_and" | "bit_or" | "bit_xor" | "json_agg"
                | "jsonb_agg" | "stddev_pop" | "var_pop" => {
                    Some(!(every_group_has_a_row && arg.null == Some(false)))
                }
                // NULL for a single row too
                "stddev" | "stddev_samp" | "variance" | "var_samp" => Some(true),
                _ => None,
            };
            return Ty { sql, null };
        }
        let strict_as = |t: &str| Ty::new(t, strict(args.iter().map(|a| a.null)));
        match name.as_str() {
            "coalesce" | "greatest" | "least" => Ty {
                sql: common(&args.iter().map(|t| t.sql.clone()).collect::<Vec<_>>()),
                null: any_not_null(nulls()),
            },
            "nullif" => Ty {
                sql: arg.sql.clone(),
                null: Some(true),
            },
            "lower" | "upper" | "btrim" | "ltrim" | "rtrim" | "initcap" | "replace" | "substr"
            | "left" | "right" | "lpad" | "rpad" | "repeat" | "reverse" | "md5" | "translate"
            | "to_char" | "quote_ident" | "quote_literal" | "regexp_replace" | "split_part"
            | "chr" => strict_as("text"),
            "concat" => Ty::not_null("text"),
            "concat_ws" => Ty::new("text", arg.null),
            "format" => Ty::new("text", arg.null),
            "length" | "char_length" | "character_length" | "octet_length" | "strpos" | "ascii" => {
                strict_as("integer")
            }
            "abs" => Ty {
                sql: ab.filter(|b| numeric_rank(b).is_some()).map(String::from),
                null: arg.null,
            },
            "round" | "trunc" if args.len() == 2 => strict_as("numeric"),
            "round" | "trunc" | "ceil" | "ceiling" | "floor" => Ty {
                sql: rounding(&arg),
                null: arg.null,
            },
            "sqrt" | "exp" | "ln" | "log" | "power" | "pow" | "cbrt" => Ty {
                sql: if args.iter().any(|a| a.base().as_deref() == Some("numeric")) {
                    Some("numeric".into())
                } else if args
                    .iter()
                    .all(|a| a.base().is_some_and(|b| numeric_rank(&b).is_some()))
                {
                    Some("double precision".into())
                } else {
                    None
                },
                null: strict(nulls()),
            },
            "now"
            | "current_timestamp"
            | "transaction_timestamp"
            | "statement_timestamp"
            | "clock_timestamp" => Ty::not_null("timestamp with time zone"),
            "localtimestamp" => Ty::not_null("timestamp without time zone"),
            "current_date" => Ty::not_null("date"),
            "gen_random_uuid" | "uuid_generate_v4" => Ty::not_null("uuid"),
            "date_trunc" => {
                let t = args.get(1).cloned().unwrap_or_default();
                Ty {
                    sql: match t.base().as_deref() {
                        Some("date") => Some("timestamp with time zone".into()),
                        Some(b) if b.starts_with("timestamp") || b == "interval" => Some(b.into()),
                        _ => None,
                    },
                    null: strict(nulls()),
                }
            }
            "date_part" => strict_as("double precision"),
            "age" => strict_as("interval"),
            "to_timestamp" if args.len() == 1 => strict_as("timestamp with time zone"),
            "to_date" => strict_as("date"),
            "to_number" => strict_as("numeric"),
            "jsonb_build_object" | "jsonb_build_array" => Ty::not_null("jsonb"),
            "json_build_object" | "json_build_array" => Ty::not_null("json"),
            "to_jsonb" => strict_as("jsonb"),
            "to_json" => strict_as("json"),
            "cardinality" => strict_as("integer"),
            "array_length" => Ty::new("integer", Some(true)),
            _ => Ty::unknown(),
        }
    }
}

fn aggregate_type(name: &str, arg: Option<&str>, star: bool) -> Option<String> {
    let t = match (name, arg) {
        ("count", _) => "bigint",
        (_, _) if star => return None,
        ("sum", Some("smallint" | "integer")) => "bigint",
        ("sum", Some("bigint" | "numeric")) => "numeric",
        ("sum", Some(t @ ("real" | "double precision" | "interval" | "money"))) => t,
        ("avg", Some("smallint" | "integer" | "bigint" | "numeric")) => "numeric",
        ("avg", Some("real" | "double precision")) => "double precision",
        ("avg", Some("interval")) => "interval",
        ("min" | "max", Some(t)) if t != "unknown" => t,
        ("string_agg", _) => "text",
        ("bool_and" | "bool_or" | "every", _) => "boolean",
        ("bit_and" | "bit_or" | "bit_xor", Some(t)) if t != "unknown" => t,
        ("json_agg" | "json_object_agg", _) => "json",
        ("jsonb_agg" | "jsonb_object_agg", _) => "jsonb",
        ("array_agg", Some(t)) if t != "unknown" && !is_array(t) => return Some(format!("{t}[]")),
        (
            "stddev" | "stddev_pop" | "stddev_samp" | "variance" | "var_pop" | "var_samp",
            Some(t),
        ) => match t {
            "real" | "double precision" => "double precision",
            "smallint" | "integer" | "bigint" | "numeric" => "numeric",
            _ => return None,
        },
        _ => return None,
    };
    Some(t.to_string())
}

fn rounding(t: &Ty) -> Option<String> {
    match t.base()?.as_str() {
        "numeric" => Some("numeric".into()),
        "real" | "double precision" | "smallint" | "integer" | "bigint" => {
            Some("double precision".into())
        }
        _ => None,
    }
}

fn literal(v: &Value) -> Ty {
    match v {
        Value::Number(n, _) => {
            let t = if n.contains(['.', 'e', 'E']) {
                "numeric"
            } else if n.parse::<i32>().is_ok() {
                "integer"
            } else if n.parse::<i64>().is_ok() {
                "bigint"
            } else {
                "numeric"
            };
            Ty::not_null(t)
        }
        Value::Boolean(_) => Ty::not_null("boolean"),
        Value::Null => Ty::new("unknown", Some(true)),
        Value::Placeholder(_) => Ty::unknown(),
        _ => Ty::not_null("unknown"),
    }
}

fn type_name(dt: &DataType) -> String {
    canonical(&dt.to_string())
}

fn rename(cols: &mut Columns, names: &[String]) {
    for (c, n) in cols.iter_mut().zip(names) {
        c.0 = n.clone();
    }
}

fn pad(rels: &mut [Rel]) {
    for r in rels {
        if let Some(cols) = &mut r.cols {
            for (_, t) in cols {
                t.null = Some(true);
            }
        }
    }
}

/// Resolve a column reference in the scope, then in the enclosing scopes.
fn resolve(sc: &Scope, qual: Option<&str>, name: &str) -> Option<Ty> {
    let mut hits: Vec<&Ty> = Vec::new();
    let mut opaque = false;
    for r in &sc.rels {
        if qual.is_some_and(|q| q != r.name) {
            continue;
        }
        match &r.cols {
            Some(cols) => hits.extend(cols.iter().filter(|(n, _)| n == name).map(|(_, t)| t)),
            None => opaque = true,
        }
    }
    match hits.as_slice() {
        [] if opaque => Some(Ty::unknown()),
        [] => sc.parent.and_then(|p| resolve(p, qual, name)),
        [one] => Some((*one).clone()),
        // a column merged by USING or NATURAL
        many => Some(Ty {
            sql: common(&many.iter().map(|t| t.sql.clone()).collect::<Vec<_>>()),
            null: if many.iter().all(|t| t.null == Some(false)) {
                Some(false)
            } else {
                None
            },
        }),
    }
}

/// UNION, INTERSECT and EXCEPT: the common type per column; the left branch names them.
fn combine(
    op: &SetOperator,
    _q: &SetQuantifier,
    l: Option<Columns>,
    r: Option<Columns>,
) -> Option<Columns> {
    let l = l?;
    let Some(r) = r else {
        return Some(l.into_iter().map(|(n, _)| (n, Ty::unknown())).collect());
    };
    if l.len() != r.len() {
        return None;
    }
    Some(
        l.into_iter()
            .zip(r)
            .map(|((n, a), (_, b))| {
                let sql = common(&[a.sql.clone(), b.sql.clone()]);
                let null = match op {
                    SetOperator::Intersect => match (a.null, b.null) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    SetOperator::Except => a.null,
                    _ => strict([a.null, b.null]),
                };
                (n, Ty { sql, null })
            })
            .collect(),
    )
}

fn first_select(body: &SetExpr) -> Option<&Select> {
    match body {
        SetExpr::Select(s) => Some(s),
        SetExpr::Query(q) => first_select(&q.body),
        SetExpr::SetOperation { left, .. } => first_select(left),
        _ => None,
    }
}

/// Why the output column `column` of the top-level SELECT can be NULL, in words, for
/// the macro's error message: an outer join padding a relation, a nullable source
/// column, an aggregate over no rows, CASE without ELSE, ... `None` when no single
/// cause is found (or the query is not a plain SELECT).
pub(crate) fn null_reason(query: &str, catalog: &Catalog, column: &str) -> Option<String> {
    use sqlparser::ast::{Visit, Visitor};
    use std::ops::ControlFlow;

    let q = parse::last_query(query)?;
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    let item = s.projection.iter().find_map(|i| match i {
        SelectItem::ExprWithAlias { expr, alias } if ident_value(alias) == column => Some(expr),
        SelectItem::UnnamedExpr(e) if crate::sql::walk::output_name(e) == column => Some(e),
        _ => None,
    })?;
    let mut inf = Infer::new(query, catalog);
    let empty = Scope {
        rels: vec![],
        parent: None,
    };
    // each relation of FROM with the join that pads it, if any
    let mut rels: Vec<(Rel, Option<&'static str>)> = Vec::new();
    for twj in &s.from {
        let mut group: Vec<(Rel, Option<&'static str>)> = inf
            .factor(&twj.relation, &[], &empty)
            .into_iter()
            .map(|r| (r, None))
            .collect();
        for j in &twj.joins {
            let mut right: Vec<(Rel, Option<&'static str>)> = inf
                .factor(&j.relation, &[], &empty)
                .into_iter()
                .map(|r| (r, None))
                .collect();
            let (l, r) = match &j.join_operator {
                JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => (None, Some("LEFT JOIN")),
                JoinOperator::Right(_) | JoinOperator::RightOuter(_) => (Some("RIGHT JOIN"), None),
                JoinOperator::FullOuter(_) => (Some("FULL JOIN"), Some("FULL JOIN")),
                _ => (None, None),
            };
            for (side, how) in [(&mut group, l), (&mut right, r)] {
                if let Some(how) = how {
                    for g in side.iter_mut() {
                        g.1.get_or_insert(how);
                    }
                }
            }
            group.extend(right);
        }
        rels.extend(group);
    }
    let grouped = matches!(&s.group_by, GroupByExpr::Expressions(e, _) if !e.is_empty());
    let table = rels
        .first()
        .map(|(r, _)| r.name.clone())
        .unwrap_or_default();

    struct V<'r> {
        rels: &'r [(Rel, Option<&'static str>)],
        grouped: bool,
        table: String,
        reason: Option<String>,
    }
    impl V<'_> {
        fn column(&self, qual: Option<&str>, name: &str) -> Option<String> {
            let (rel, how) = self.rels.iter().find(|(r, _)| {
                qual.is_none_or(|q| q == r.name)
                    && r.cols
                        .as_ref()
                        .is_some_and(|c| c.iter().any(|(n, _)| n == name))
            })?;
            let t = rel.cols.as_ref()?.iter().find(|(n, _)| n == name)?;
            let rel = &rel.name;
            match how {
                Some(how) => Some(format!(
                    "the {how} pads `{rel}` with NULL for a row that has no match, so `{rel}.{name}` can be NULL"
                )),
                None if t.1.null == Some(true) => Some(format!(
                    "`{rel}.{name}` can be NULL: its table does not declare it NOT NULL"
                )),
                None => None,
            }
        }
    }
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let reason = match e {
                Expr::Identifier(i) => self.column(None, &ident_value(i)),
                Expr::CompoundIdentifier(ids) if ids.len() >= 2 => {
                    let n = ids.len();
                    self.column(Some(&ident_value(&ids[n - 2])), &ident_value(&ids[n - 1]))
                }
                Expr::Function(f) if f.over.is_none() => {
                    let name = function_name(f);
                    if name == "nullif" {
                        Some("NULLIF gives NULL when its two arguments are equal".to_string())
                    } else if !AGGREGATES.contains(&name.as_str()) || name == "count" {
                        None
                    } else if f.filter.is_some() {
                        Some(format!(
                            "`{name}(...) FILTER (...)` is NULL for a group where no row passes the filter"
                        ))
                    } else if !self.grouped {
                        Some(format!(
                            "`{name}` over no rows is NULL, and without GROUP BY the stream table has one row even when `{}` is empty",
                            self.table
                        ))
                    } else {
                        None
                    }
                }
                Expr::Case {
                    else_result: None, ..
                } => Some("CASE without ELSE is NULL when no WHEN matches".to_string()),
                Expr::Subquery(_) => Some(
                    "a scalar subquery is NULL when it returns no row, or when its value is"
                        .to_string(),
                ),
                Expr::BinaryOp {
                    op: B::LongArrow | B::Arrow,
                    ..
                } => Some("`->` and `->>` give NULL for a missing key".to_string()),
                Expr::Value(v) if matches!(v.value, Value::Null) => {
                    Some("the expression contains NULL".to_string())
                }
                _ => None,
            };
            if reason.is_some() {
                self.reason = reason;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V {
        rels: &rels,
        grouped,
        table,
        reason: None,
    };
    let _ = item.visit(&mut v);
    v.reason
}
