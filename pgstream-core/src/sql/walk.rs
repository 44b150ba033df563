//! Helpers over sqlparser's AST that know nothing about stream tables: function
//! names, the built-in aggregates and volatile functions, CTE names, the name
//! PostgreSQL gives an output column, and the AND-ed parts of a condition.

use crate::sql::ident::ident_value;
use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Query,
    SelectItem, SetExpr, Visit, VisitMut, Visitor, VisitorMut,
};
use std::collections::HashSet;
use std::ops::ControlFlow;

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

/// Names of the CTEs a query defines, at any depth.
pub(crate) fn cte_names(q: &Query) -> HashSet<String> {
    struct V(HashSet<String>);
    impl Visitor for V {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if let Some(w) = &q.with {
                for c in &w.cte_tables {
                    self.0.insert(ident_value(&c.alias.name));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(HashSet::new());
    let _ = q.visit(&mut v);
    v.0
}

/// Does a bound expression contain an aggregate call?
pub(crate) fn contains_aggregate(e: &Expr) -> bool {
    struct F(bool);
    impl VisitorMut for F {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                if is_aggregate(f) {
                    self.0 = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut e = e.clone();
    let mut f = F(false);
    let _ = VisitMut::visit(&mut e, &mut f);
    f.0
}

/// The name PostgreSQL gives an unaliased output column.
pub(crate) fn output_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => ident_value(i),
        Expr::CompoundIdentifier(ids) => ids.last().map(ident_value).unwrap_or_default(),
        Expr::Function(f) => function_name(f),
        Expr::Cast { expr, .. } => match expr.as_ref() {
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::Function(_)
            | Expr::Cast { .. } => output_name(expr),
            _ => {
                if let Expr::Cast { data_type, .. } = e {
                    data_type
                        .to_string()
                        .to_lowercase()
                        .split('(')
                        .next()
                        .unwrap_or("?column?")
                        .to_string()
                } else {
                    "?column?".into()
                }
            }
        },
        Expr::Nested(inner) => output_name(inner),
        Expr::Case { .. } => "case".into(),
        // PostgreSQL names a scalar subquery after its output column
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => match s.projection.first() {
                Some(SelectItem::ExprWithAlias { alias, .. }) => ident_value(alias),
                Some(SelectItem::UnnamedExpr(e)) => output_name(e),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        _ => "?column?".into(),
    }
}

/// The AND-ed parts of a join condition, with the parentheses around any part (and
/// around nested conjunctions) dropped.
pub(crate) fn conjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// An expression without the parentheses around it.
pub(crate) fn unnest(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => unnest(inner),
        other => other,
    }
}

/// `AS name` for a relation, without column aliases.
pub(crate) fn table_alias(name: sqlparser::ast::Ident) -> sqlparser::ast::TableAlias {
    sqlparser::ast::TableAlias {
        explicit: true,
        name,
        columns: Vec::new(),
        at: None,
    }
}

/// The call `name(args, ...)` of a plain function (no DISTINCT, FILTER or OVER).
pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    use sqlparser::ast::{FunctionArgumentList, ObjectName, ObjectNamePart};
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(
            sqlparser::ast::Ident::new(name),
        )]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// The integer literal `0`.
pub(crate) fn zero() -> Expr {
    Expr::Value(sqlparser::ast::Value::Number("0".into(), false).into())
}

/// The parts of a set operation `left op [ALL | DISTINCT] right`, if `e` is one.
pub(crate) fn set_operation(
    e: &SetExpr,
) -> Option<(
    sqlparser::ast::SetOperator,
    sqlparser::ast::SetQuantifier,
    &SetExpr,
    &SetExpr,
)> {
    match e {
        SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } => Some((*op, *set_quantifier, left, right)),
        _ => None,
    }
}

/// The condition of an inner or outer join (`JOIN`, `LEFT JOIN`, `RIGHT JOIN`,
/// `FULL JOIN`, with or without `INNER`/`OUTER`); `None` for other join operators.
pub(crate) fn join_constraint(
    op: &sqlparser::ast::JoinOperator,
) -> Option<&sqlparser::ast::JoinConstraint> {
    use sqlparser::ast::JoinOperator as J;
    match op {
        J::Join(c) | J::Inner(c) | J::Left(c) | J::LeftOuter(c) => Some(c),
        J::Right(c) | J::RightOuter(c) | J::FullOuter(c) => Some(c),
        _ => None,
    }
}

/// `left op right`.
pub(crate) fn binary(left: Expr, op: BinaryOperator, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }
}

/// The conjunction of `parts` (`None` when there are none).
pub(crate) fn and_all(parts: impl IntoIterator<Item = Expr>) -> Option<Expr> {
    parts
        .into_iter()
        .reduce(|a, b| binary(a, BinaryOperator::And, b))
}

/// Whether `e` itself is a subquery: scalar, `EXISTS` or `IN (SELECT ...)`.
pub(crate) fn is_subquery(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Subquery(_)
            | Expr::Exists { .. }
            | Expr::In {
                target: sqlparser::ast::InTarget::Subquery(_),
                ..
            }
    )
}

/// The relation `name AS "alias"` of a FROM clause.
pub(crate) fn table_factor(
    name: sqlparser::ast::ObjectName,
    alias: &str,
) -> sqlparser::ast::TableFactor {
    sqlparser::ast::TableFactor::Table {
        name,
        alias: Some(table_alias(sqlparser::ast::Ident::with_quote('"', alias))),
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_directives: vec![],
        inheritance: None,
    }
}
