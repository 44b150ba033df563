//! Expressions: the compiler keeps sqlparser's `Expr` as its expression tree. Binding
//! replaces every column reference with a marker naming (leaf, column); rendering
//! replaces markers with the qualified column of whatever relation a delta term reads.

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Spanned, VisitMut,
    VisitorMut,
};
use sqlparser::tokenizer::Span;
use std::ops::{ControlFlow, Range};

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

/// Lower-case last part of a function's name.
pub(crate) fn function_name(f: &Function) -> String {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_lowercase())
        .unwrap_or_default()
}

/// Built-in aggregate functions of PostgreSQL.
pub(crate) const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "string_agg",
    "array_agg",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "bit_xor",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "rank",
    "xmlagg",
    "range_agg",
    "range_intersect_agg",
    "any_value",
];

/// Functions PostgreSQL marks VOLATILE (or that read the clock), which a delta cannot
/// re-evaluate consistently.
pub(crate) const VOLATILE: &[&str] = &[
    "random",
    "random_normal",
    "setseed",
    "now",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "current_timestamp",
    "localtimestamp",
    "current_time",
    "localtime",
    "current_date",
    "nextval",
    "currval",
    "lastval",
    "setval",
    "gen_random_uuid",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "txid_current",
    "pg_current_xact_id",
    "pg_sleep",
    "pg_backend_pid",
    "inet_client_addr",
];

pub(crate) fn is_aggregate(f: &Function) -> bool {
    f.over.is_none() && AGGREGATES.contains(&function_name(f).as_str())
}

/// The single argument of an aggregate call: `None` for `count(*)`.
pub(crate) fn single_arg(f: &Function) -> Result<Option<&Expr>, ()> {
    match &f.args {
        FunctionArguments::List(list) => match list.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => Ok(None),
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Ok(Some(e)),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

/// Convert sqlparser's line/column span into a byte range of `text`.
pub(crate) fn span_range(text: &str, span: Span) -> Option<Range<usize>> {
    if span == Span::empty() || span.start.line == 0 {
        return None;
    }
    let start = offset(text, span.start.line, span.start.column)?;
    let end = offset(text, span.end.line, span.end.column)
        .unwrap_or(start)
        .max(start);
    Some(start..end)
}

fn offset(text: &str, line: u64, column: u64) -> Option<usize> {
    let mut cur_line = 1u64;
    let mut line_start = 0usize;
    if line > 1 {
        for (i, ch) in text.char_indices() {
            if ch == '\n' {
                cur_line += 1;
                if cur_line == line {
                    line_start = i + 1;
                    break;
                }
            }
        }
        if cur_line != line {
            return None;
        }
    }
    let rest = &text[line_start..];
    let mut col = 1u64;
    for (i, _) in rest.char_indices() {
        if col == column {
            return Some(line_start + i);
        }
        col += 1;
    }
    if col == column {
        Some(text.len().min(line_start + rest.len()))
    } else {
        None
    }
}

/// The span of an expression as a byte range of the query.
pub(crate) fn expr_range(text: &str, e: &impl Spanned) -> Option<Range<usize>> {
    span_range(text, e.span())
}
