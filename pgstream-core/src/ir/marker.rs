//! Expressions: the compiler keeps sqlparser's `Expr` as its expression tree. Binding
//! replaces every column reference with a marker naming (leaf, column); rendering
//! replaces markers with the qualified column of whatever relation a delta term reads.

use super::Leaf;
use crate::sql::fragment::Sql;
use sqlparser::ast::{Expr, Ident, Visit, VisitMut, Visitor, VisitorMut};
use std::ops::ControlFlow;

const REF: &str = "\u{1}ref";
const AGG: &str = "\u{1}agg";
const GRP: &str = "\u{1}grp";

/// What a marker stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    /// Column `col` of leaf relation `leaf`.
    Col { leaf: usize, col: usize },
    /// The `k`-th aggregate call of an aggregate block.
    Agg(usize),
    /// The `k`-th group key of an aggregate block.
    Grp(usize),
}

pub(crate) fn marker(m: Marker) -> Expr {
    let parts = match m {
        Marker::Col { leaf, col } => vec![REF.to_string(), leaf.to_string(), col.to_string()],
        Marker::Agg(k) => vec![AGG.to_string(), k.to_string()],
        Marker::Grp(k) => vec![GRP.to_string(), k.to_string()],
    };
    Expr::CompoundIdentifier(parts.into_iter().map(Ident::new).collect())
}

pub(crate) fn as_marker(e: &Expr) -> Option<Marker> {
    let Expr::CompoundIdentifier(parts) = e else {
        return None;
    };
    let num = |i: usize| parts.get(i).and_then(|p| p.value.parse::<usize>().ok());
    match parts.first().map(|p| p.value.as_str()) {
        Some(REF) => Some(Marker::Col {
            leaf: num(1)?,
            col: num(2)?,
        }),
        Some(AGG) => Some(Marker::Agg(num(1)?)),
        Some(GRP) => Some(Marker::Grp(num(1)?)),
        _ => None,
    }
}

/// Render an expression, replacing each marker by the fragment `f` returns for it.
pub(crate) fn render_with(e: &Expr, f: &mut dyn FnMut(Marker) -> Option<Sql>) -> Sql {
    Sql::expr_replacing(e, &mut |x| as_marker(x).and_then(&mut *f))
}

/// A bound expression as a person reads it, for explain and messages: each column
/// marker as `alias.column`, unquoted like the query's own text (`?` for a column the
/// leaf does not have). Not SQL to run: the names are not quoted.
pub(crate) fn shown(e: &Expr, leaves: &[Leaf]) -> Sql {
    struct Names<'a>(&'a [Leaf]);
    impl VisitorMut for Names<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Some(Marker::Col { leaf, col }) = as_marker(e) {
                let l = &self.0[leaf];
                let name = l.table.columns.get(col).map_or("?", |c| c.name.as_str());
                *e = Expr::CompoundIdentifier(vec![Ident::new(&l.alias), Ident::new(name)]);
            }
            ControlFlow::Continue(())
        }
    }
    let mut e = e.clone();
    let _ = VisitMut::visit(&mut e, &mut Names(leaves));
    Sql::expr(&e)
}

/// All column markers in an expression.
pub(crate) fn column_markers(e: &Expr) -> Vec<(usize, usize)> {
    struct Cols(Vec<(usize, usize)>);
    impl Visitor for Cols {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Some(Marker::Col { leaf, col }) = as_marker(e) {
                self.0.push((leaf, col));
            }
            ControlFlow::Continue(())
        }
    }
    let mut cols = Cols(Vec::new());
    let _ = e.visit(&mut cols);
    cols.0
}

/// Whether `e` reads only columns of leaf `leaf` and cannot raise an error whatever
/// values they hold: comparisons, `BETWEEN`, `IN` lists, `LIKE`, `IS [NOT] NULL` and
/// the like over the columns and constants, combined with `AND`, `OR` and `NOT`
/// (constants may be computed: `DATE '1994-01-01' + INTERVAL '1' YEAR`). Such a
/// predicate may run on row images that never coexist in one state of the table (a
/// window's images before they are netted) without failing where the query would not.
pub(crate) fn total_over_leaf(e: &Expr, leaf: usize) -> bool {
    use sqlparser::ast::{BinaryOperator as B, UnaryOperator as U};
    let total = |x: &Expr| total_over_leaf(x, leaf);
    match e {
        Expr::Nested(x) => total(x),
        Expr::UnaryOp { op: U::Not, expr } => total(expr),
        Expr::BinaryOp { left, op, right } => match op {
            B::And | B::Or => total(left) && total(right),
            B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq => {
                operand(left, leaf) && operand(right, leaf)
            }
            _ => false,
        },
        Expr::Between {
            expr, low, high, ..
        } => operand(expr, leaf) && operand(low, leaf) && operand(high, leaf),
        Expr::In {
            expr,
            target: sqlparser::ast::InTarget::List(list),
            ..
        } => operand(expr, leaf) && list.iter().all(|x| operand(x, leaf)),
        Expr::IsNull(x)
        | Expr::IsNotNull(x)
        | Expr::IsTrue(x)
        | Expr::IsFalse(x)
        | Expr::IsNotTrue(x)
        | Expr::IsNotFalse(x)
        | Expr::IsUnknown(x)
        | Expr::IsNotUnknown(x) => operand(x, leaf),
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
            operand(a, leaf) && operand(b, leaf)
        }
        Expr::Like {
            expr,
            pattern,
            escape_char: None,
            any: false,
            ..
        }
        | Expr::ILike {
            expr,
            pattern,
            escape_char: None,
            any: false,
            ..
        } => operand(expr, leaf) && constant(pattern),
        _ => false,
    }
}

/// A column of `leaf` as it is, or a constant: what a comparison may read without
/// failing.
fn operand(e: &Expr, leaf: usize) -> bool {
    match as_marker(e) {
        Some(Marker::Col { leaf: l, .. }) => l == leaf,
        Some(_) => false,
        None => match e {
            Expr::Nested(x) => operand(x, leaf),
            _ => constant(e),
        },
    }
}

/// An expression of literals alone (with arithmetic, casts and intervals over them):
/// the same value, or the same error, for every row.
fn constant(e: &Expr) -> bool {
    use sqlparser::ast::{BinaryOperator as B, UnaryOperator as U};
    match e {
        Expr::Value(_) | Expr::TypedString { .. } => true,
        Expr::Interval(i) => constant(&i.value),
        Expr::Nested(x) => constant(x),
        Expr::UnaryOp {
            op: U::Minus | U::Plus,
            expr,
        } => constant(expr),
        Expr::BinaryOp { left, op, right } => {
            matches!(
                op,
                B::Plus | B::Minus | B::Multiply | B::Divide | B::StringConcat
            ) && constant(left)
                && constant(right)
        }
        Expr::Cast { expr, .. } => constant(expr),
        _ => false,
    }
}
