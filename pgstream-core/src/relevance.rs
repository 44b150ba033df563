//! Which changes of a source can change a stream table at all.
//!
//! After predicate pushdown, a condition over one table of the query filters that
//! table's leaf: the operators above it read only the rows that satisfy it, in every
//! state of the other tables. A change whose old and new images both fail the
//! condition changes none of those rows, so it changes nothing in the result: every
//! delta term it enters is empty. When every occurrence of a source in the query is
//! such a filtered leaf, the disjunction of their filters is a [`ChangeFilter`]: a
//! change that fails it can be skipped without a refresh (the scheduler advances the
//! stream table's frontier past it, as a refresh with an empty delta would).
//!
//! Tenant-style stream tables (`... WHERE tenant_id = 42`) over one shared source are
//! the case this serves: a change of tenant 7 needs no refresh of tenant 42's stream
//! table. The filter is a template: the literals compared with a column are arguments
//! (`b."tenant_id" = (f."change_args"[1])::integer` with arguments `["42"]`), so a
//! thousand tenants' stream tables share one template, and the scheduler finds the
//! stream tables a window of changes touches with one join of the buffer with the
//! frontiers per template, not one probe per stream table.
//!
//! Only conditions whose value cannot depend on the session are used: column
//! references of numeric, text, boolean or uuid types, literals, comparisons,
//! `AND`/`OR`/`NOT`, arithmetic, `IS [NOT] NULL`, `[NOT] IN (literals)`,
//! `[NOT] BETWEEN` and `[NOT] [I]LIKE` with a literal pattern. A conjunct with
//! anything else (a function call, a cast, a timestamp column) is left out: the filter
//! becomes weaker, never wrong. A source read through an aggregate-subquery leaf, a
//! recursive query, or anywhere without a filter on its leaf has no change filter.

use crate::ir::marker::{as_marker, Marker};
use crate::ir::{Block, Body, Compiled, Leaf, Shape, Tree};
use crate::sql::fragment::{sql, Sql};
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use std::collections::HashMap;

/// The buffer row's alias in a [`ChangeFilter`] template.
pub const BUFFER_ALIAS: &str = "b";
/// The frontier row's alias in a [`ChangeFilter`] template; its `change_args` column
/// holds the arguments.
pub const FRONTIER_ALIAS: &str = "f";
const BUFFER: Sql = Sql::fixed(BUFFER_ALIAS);
const FRONTIER: Sql = Sql::fixed(FRONTIER_ALIAS);

/// A condition on a buffered change (its image's columns, as `b."column"`) that every
/// change able to alter the stream table satisfies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFilter {
    /// SQL over `b` (the buffer row) and `f."change_args"` (the arguments, text).
    pub template: String,
    /// The literals, as text, in the order of their `change_args` subscripts.
    pub args: Vec<String>,
}

impl Compiled {
    /// The change filter of source `source` (an index into [`Compiled::sources`]), or
    /// `None` when any change of it may alter the result.
    pub fn change_filter(&self, source: usize) -> Option<ChangeFilter> {
        let Body::Incremental(b) = &self.body else {
            return None;
        };
        let mut blocks: Vec<&Block> = vec![b];
        if let Shape::SetOp { branches, .. } = &b.shape {
            blocks.extend(branches.iter());
        }
        let mut r = Renderer::default();
        let mut disjuncts: Vec<Sql> = Vec::new();
        for block in blocks {
            let mut chains = HashMap::new();
            leaf_chains(&block.tree, &mut Vec::new(), &mut chains);
            for (i, leaf) in block.leaves.iter().enumerate() {
                if !leaf.reads(source) {
                    continue;
                }
                if leaf.agg.is_some() {
                    return None;
                }
                let preds = chains.get(&i)?;
                let accepted: Vec<Sql> = preds
                    .iter()
                    .flat_map(crate::pushdown::conjuncts)
                    .filter_map(|c| r.conjunct(&c, i, leaf))
                    .collect();
                if accepted.is_empty() {
                    return None;
                }
                let d = Sql::join(accepted, " AND ");
                if !disjuncts.contains(&d) {
                    disjuncts.push(d);
                }
            }
        }
        if disjuncts.is_empty() {
            return None;
        }
        let template = if disjuncts.len() == 1 {
            disjuncts.remove(0)
        } else {
            Sql::join(disjuncts.into_iter().map(|d| sql!("({})", d)), " OR ")
        };
        Some(ChangeFilter {
            template: template.into_string(),
            args: r.args,
        })
    }
}

/// For each leaf, the filters stacked directly on it (no join in between).
fn leaf_chains<'a>(t: &'a Tree, above: &mut Vec<&'a Expr>, out: &mut HashMap<usize, Vec<Expr>>) {
    match t {
        Tree::Leaf(i) => {
            out.insert(*i, above.iter().map(|e| (*e).clone()).collect());
        }
        Tree::Filter { input, pred, .. } => {
            above.push(pred);
            leaf_chains(input, above, out);
            above.pop();
        }
        Tree::Join { left, right, .. } => {
            leaf_chains(left, &mut Vec::new(), out);
            leaf_chains(right, &mut Vec::new(), out);
        }
        Tree::Lateral { input, .. } => leaf_chains(input, &mut Vec::new(), out),
    }
}

/// Column types whose comparisons with literals mean the same in every session (no
/// time zone, date style or search path involved).
fn session_independent(sql_type: &str) -> bool {
    let base = sql_type
        .split('(')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        base.as_str(),
        "smallint"
            | "integer"
            | "bigint"
            | "numeric"
            | "real"
            | "double precision"
            | "text"
            | "character varying"
            | "character"
            | "boolean"
            | "uuid"
    )
}

#[derive(Default)]
struct Renderer {
    args: Vec<String>,
}

impl Renderer {
    /// One conjunct over leaf `i`, or `None` when it is not usable.
    fn conjunct(&mut self, e: &Expr, i: usize, leaf: &Leaf) -> Option<Sql> {
        let saved = self.args.len();
        let out = self.expr(e, i, leaf);
        if out.is_none() {
            self.args.truncate(saved);
        }
        out
    }

    /// The column of leaf `i` that `e` is, with its SQL type.
    fn column<'l>(e: &Expr, i: usize, leaf: &'l Leaf) -> Option<(&'l str, &'l str)> {
        match as_marker(strip(e))? {
            Marker::Col { leaf: l, col } if l == i => {
                let c = leaf.table.columns.get(col)?;
                session_independent(&c.sql_type).then_some((c.name.as_str(), c.sql_type.as_str()))
            }
            _ => None,
        }
    }

    /// A literal as an argument cast to `sql_type`.
    fn arg(&mut self, e: &Expr, sql_type: &str) -> Option<Sql> {
        let text = match strip(e) {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => n.clone(),
                Value::SingleQuotedString(s) => s.clone(),
                _ => return None,
            },
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match strip(expr) {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => format!("-{n}"),
                    _ => return None,
                },
                _ => return None,
            },
            _ => return None,
        };
        self.args.push(text);
        Some(sql!(
            "({}.\"change_args\"[{}])::{}",
            FRONTIER,
            self.args.len(),
            Sql::type_name(sql_type)
        ))
    }

    fn expr(&mut self, e: &Expr, i: usize, leaf: &Leaf) -> Option<Sql> {
        use BinaryOperator as B;
        if let Some((name, _)) = Self::column(e, i, leaf) {
            return Some(buffer_column(name));
        }
        Some(match e {
            Expr::Nested(x) => sql!("({})", self.expr(x, i, leaf)?),
            Expr::Value(v) => match &v.value {
                Value::Number(..)
                | Value::SingleQuotedString(_)
                | Value::Boolean(_)
                | Value::Null => Sql::ast(v),
                _ => return None,
            },
            Expr::BinaryOp { left, op, right } => {
                let comparison = matches!(op, B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq);
                if comparison {
                    // column op literal, literal op column: the literal is an argument.
                    if let Some((name, ty)) = Self::column(left, i, leaf) {
                        if let Some(a) = self.arg(right, ty) {
                            return Some(sql!("{} {} {}", buffer_column(name), Sql::ast(op), a));
                        }
                    }
                    if let Some((name, ty)) = Self::column(right, i, leaf) {
                        if let Some(a) = self.arg(left, ty) {
                            return Some(sql!("{} {} {}", a, Sql::ast(op), buffer_column(name)));
                        }
                    }
                }
                let allowed = comparison
                    || matches!(
                        op,
                        B::And | B::Or | B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo
                    );
                if !allowed {
                    return None;
                }
                sql!(
                    "({} {} {})",
                    self.expr(left, i, leaf)?,
                    Sql::ast(op),
                    self.expr(right, i, leaf)?
                )
            }
            Expr::UnaryOp { op, expr } => match op {
                UnaryOperator::Not => sql!("(NOT {})", self.expr(expr, i, leaf)?),
                UnaryOperator::Minus => sql!("(- {})", self.expr(expr, i, leaf)?),
                _ => return None,
            },
            Expr::IsNull(x) => sql!("({} IS NULL)", self.expr(x, i, leaf)?),
            Expr::IsNotNull(x) => sql!("({} IS NOT NULL)", self.expr(x, i, leaf)?),
            Expr::In {
                expr: x,
                target: sqlparser::ast::InTarget::List(list),
                negated,
                ..
            } => {
                let (name, ty) = Self::column(x, i, leaf)?;
                let items = list
                    .iter()
                    .map(|l| self.arg(l, ty))
                    .collect::<Option<Vec<_>>>()?;
                sql!(
                    "({} {}IN ({}))",
                    buffer_column(name),
                    not(*negated),
                    Sql::join(items, ", ")
                )
            }
            Expr::Between {
                expr: x,
                negated,
                low,
                high,
            } => {
                let (name, ty) = Self::column(x, i, leaf)?;
                let (lo, hi) = (self.arg(low, ty)?, self.arg(high, ty)?);
                sql!(
                    "({} {}BETWEEN {} AND {})",
                    buffer_column(name),
                    not(*negated),
                    lo,
                    hi
                )
            }
            Expr::Like {
                negated,
                any: false,
                expr: x,
                pattern,
                escape_char: None,
            }
            | Expr::ILike {
                negated,
                any: false,
                expr: x,
                pattern,
                escape_char: None,
            } => {
                let (name, ty) = Self::column(x, i, leaf)?;
                let p = self.arg(pattern, ty)?;
                let op = if matches!(e, Expr::ILike { .. }) {
                    "ILIKE"
                } else {
                    "LIKE"
                };
                sql!("({} {}{} {})", buffer_column(name), not(*negated), op, p)
            }
            _ => return None,
        })
    }
}

/// `b."column"`: a column of the buffered change.
fn buffer_column(name: &str) -> Sql {
    sql!("{}.{}", BUFFER, Sql::ident(name))
}

/// `NOT ` when `negated`.
fn not(negated: bool) -> &'static str {
    if negated {
        "NOT "
    } else {
        ""
    }
}

fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(x) => strip(x),
        _ => e,
    }
}

#[cfg(test)]
mod tests {

    const DDL: &str = "CREATE TABLE tenants (id integer PRIMARY KEY, plan text NOT NULL);
        CREATE TABLE orders (id bigint PRIMARY KEY, tenant_id integer NOT NULL, status text NOT NULL,
                             amount numeric(12,2) NOT NULL);";

    fn filter(sql: &str, source: usize) -> Option<(String, Vec<String>)> {
        let c = crate::testing::compile_differential(sql, DDL);
        c.change_filter(source).map(|f| (f.template, f.args))
    }

    #[test]
    fn tenant_equality_is_an_argument() {
        let (t, a) = filter(
            "SELECT id, amount FROM orders WHERE tenant_id = 42 AND amount > 10",
            0,
        )
        .unwrap();
        assert_eq!(
            t,
            "b.\"tenant_id\" = (f.\"change_args\"[1])::integer AND b.\"amount\" > (f.\"change_args\"[2])::numeric(12,2)"
        );
        assert_eq!(a, vec!["42", "10"]);
    }

    #[test]
    fn joins_filter_each_side_and_unfiltered_sides_have_none() {
        let sql = "SELECT o.id, t.plan FROM orders o JOIN tenants t ON t.id = o.tenant_id WHERE o.tenant_id = 7";
        let (t, a) = filter(sql, 0).unwrap();
        assert_eq!(t, "b.\"tenant_id\" = (f.\"change_args\"[1])::integer");
        assert_eq!(a, vec!["7"]);
        // tenants has no condition of its own (the join condition links two tables).
        assert_eq!(filter(sql, 1), None);
    }

    #[test]
    fn unusable_conditions_leave_no_filter() {
        // A function call, a condition above an outer join's nullable side, none.
        assert_eq!(
            filter("SELECT id FROM orders WHERE abs(amount) > 3", 0),
            None
        );
        assert_eq!(filter("SELECT id FROM orders", 0), None);
        assert_eq!(
            filter(
                "SELECT t.id, o.id AS oid FROM tenants t LEFT JOIN orders o ON o.tenant_id = t.id WHERE o.amount > 5",
                1
            ),
            None
        );
    }

    #[test]
    fn self_join_needs_both_occurrences_filtered() {
        let both =
            "SELECT a.id, b.id AS other FROM orders a JOIN orders b ON a.tenant_id = b.tenant_id \
                    WHERE a.status = 'open' AND b.status = 'paid'";
        let (t, a) = filter(both, 0).unwrap();
        assert_eq!(
            t,
            "(b.\"status\" = (f.\"change_args\"[1])::text) OR (b.\"status\" = (f.\"change_args\"[2])::text)"
        );
        assert_eq!(a, vec!["open", "paid"]);
        let one =
            "SELECT a.id, b.id AS other FROM orders a JOIN orders b ON a.tenant_id = b.tenant_id \
                   WHERE a.status = 'open'";
        assert_eq!(filter(one, 0), None);
    }

    #[test]
    fn in_lists_between_like_and_grouping() {
        let (t, a) = filter(
            "SELECT status, count(*) AS n FROM orders WHERE tenant_id IN (1, 2) AND amount BETWEEN 1 AND 5 \
             AND status LIKE 'o%' GROUP BY status",
            0,
        )
        .unwrap();
        assert_eq!(
            t,
            "(b.\"tenant_id\" IN ((f.\"change_args\"[1])::integer, (f.\"change_args\"[2])::integer)) AND \
             (b.\"amount\" BETWEEN (f.\"change_args\"[3])::numeric(12,2) AND (f.\"change_args\"[4])::numeric(12,2)) AND \
             (b.\"status\" LIKE (f.\"change_args\"[5])::text)"
        );
        assert_eq!(a, vec!["1", "2", "1", "5", "o%"]);
    }
}
