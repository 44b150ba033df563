//! The expression rules of the type walker: operators, casts, `CASE`, function and
//! aggregate calls, subqueries, column references.

use super::infer::*;
use super::types::*;
use crate::error::Diagnostic;
use crate::sql::ident::ident_value;
use crate::sql::limits;
use crate::sql::parse::expr_range;
use crate::sql::walk::{function_name, AGGREGATES};
use sqlparser::ast::{
    BinaryOperator as B, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    SelectItem, SetExpr, UnaryOperator,
};

impl Infer<'_> {
    /// Report `t` when the query compares its values and PostgreSQL cannot: no
    /// equality operator (`json`, `xml`, `point`); and, where the comparison is for
    /// grouping (GROUP BY, DISTINCT, UNION or a USING join), one that grouping cannot
    /// use (no default btree or hash operator class: the other geometric types,
    /// `jsonpath`).
    pub(super) fn incomparable(
        &mut self,
        t: &Ty,
        grouping: bool,
        why: &str,
        span: Option<std::ops::Range<usize>>,
        what: &str,
    ) {
        let Some(b) = t.base() else { return };
        let elem = b.trim_end_matches("[]");
        if grouping && NOT_GROUPABLE.contains(&elem) {
            return self.report(
                Diagnostic::new(format!(
                    "{why}, but PostgreSQL cannot group values of type `{b}`: it has no equality operator for grouping (no default btree or hash operator class)"
                ))
                .with_span(span)
                .with_help(format!("cast it to text: `{what}::text`")),
            );
        }
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

    pub(super) fn expr(&mut self, e: &Expr, sc: &Scope, ctes: &Ctes, ctx: Ctx) -> Ty {
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
            Expr::TypedString(ts) => Ty::not_null(&type_name(&ts.data_type)),
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
                            self.incomparable(
                                t,
                                false,
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
                    self.incomparable(
                        t,
                        false,
                        &format!("`{e}` compares two values"),
                        expr_range(self.text, e),
                        &side.to_string(),
                    );
                }
                Ty::not_null("boolean")
            }
            Expr::In {
                expr,
                target: sqlparser::ast::InTarget::List(list),
                ..
            } => {
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
            Expr::In {
                expr,
                target: sqlparser::ast::InTarget::Subquery(subquery),
                ..
            } => {
                let t = self.expr(expr, sc, ctes, ctx);
                self.query(
                    subquery,
                    Outer {
                        ctes,
                        parent: Some(sc),
                    },
                );
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
                self.query(
                    subquery,
                    Outer {
                        ctes,
                        parent: Some(sc),
                    },
                );
                Ty::not_null("boolean")
            }
            Expr::Subquery(q) => {
                let cols = self.query(
                    q,
                    Outer {
                        ctes,
                        parent: Some(sc),
                    },
                );
                let first = cols.and_then(|c| c.into_iter().next()).map(|(_, t)| t);
                // An aggregate without GROUP BY or HAVING returns exactly one row:
                // its value is NULL only when the aggregate's is (`count` never).
                let one_row = limits::limit(q).is_none()
                    && !limits::has_offset(q)
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
                ..
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

    pub(super) fn column(&mut self, sc: &Scope, qual: Option<&str>, name: &str, ctx: Ctx) -> Ty {
        let mut t = resolve(sc, qual, name).unwrap_or_default();
        if ctx.grouping_sets && !ctx.in_agg {
            t.null = Some(true);
        }
        t
    }

    pub(super) fn function(
        &mut self,
        f: &sqlparser::ast::Function,
        sc: &Scope,
        ctes: &Ctes,
        ctx: Ctx,
    ) -> Ty {
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
                self.query(
                    q,
                    Outer {
                        ctes,
                        parent: Some(sc),
                    },
                );
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
