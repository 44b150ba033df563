//! Expressions: the compiler keeps sqlparser's `Expr` as its expression tree. Binding
//! replaces every column reference with a marker naming (leaf, column); rendering
//! replaces markers with the qualified column of whatever relation a delta term reads.

use sqlparser::ast::{Expr, Ident, VisitMut, VisitorMut};
use sqlparser::tokenizer::Span;
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

/// Raw SQL text placed into an expression tree (printed verbatim).
pub(crate) fn raw(sql: impl Into<String>) -> Expr {
    Expr::Identifier(Ident {
        value: sql.into(),
        quote_style: None,
        span: Span::empty(),
    })
}

struct Subst<'a>(&'a mut dyn FnMut(Marker) -> Option<Expr>);

impl VisitorMut for Subst<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(m) = as_marker(expr) {
            if let Some(new) = (self.0)(m) {
                *expr = new;
            }
        }
        ControlFlow::Continue(())
    }
}

/// Render an expression, replacing each marker by what `f` returns for it.
pub(crate) fn render_with(e: &Expr, f: &mut dyn FnMut(Marker) -> Option<Expr>) -> String {
    let mut e = e.clone();
    let _ = e.visit(&mut Subst(f));
    e.to_string()
}

/// All column markers in an expression.
pub(crate) fn column_markers(e: &Expr) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut e = e.clone();
    let mut f = |m: Marker| {
        if let Marker::Col { leaf, col } = m {
            out.push((leaf, col));
        }
        None
    };
    let _ = e.visit(&mut Subst(&mut f));
    out
}
