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
