//! Expressions: every column reference becomes a marker (`ir::marker`); volatile
//! functions, aggregates where none is allowed, and constructs without a delta rule
//! are rejected.

use super::*;

impl Binder<'_> {
    /// Bind an expression: resolve columns into markers, reject what deltas cannot
    /// re-evaluate. Aggregates are allowed only where `allow_agg`.
    pub(super) fn bind_expr(&self, e: &Expr, allow_agg: bool) -> Result<Expr> {
        struct B<'b, 'c> {
            binder: &'b Binder<'c>,
            allow_agg: bool,
            in_agg: usize,
            err: Option<Error>,
        }
        impl VisitorMut for B<'_, '_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                let q = self.binder.query;
                let fail = |s: &mut Self, err: Error| {
                    s.err = Some(err);
                    ControlFlow::Break(())
                };
                match e {
                    Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                        match self.binder.resolve(e) {
                            Ok(Some(x)) => *e = x,
                            Ok(None) => {}
                            Err(err) => return fail(self, err),
                        }
                    }
                    e if crate::sql::walk::is_subquery(e) => {
                        return fail(self, unsupported(q, "subqueries in expressions", Some(&*e)));
                    }
                    Expr::Function(f) => {
                        let name = function_name(f);
                        if f.over.is_some() && self.binder.allow_windows.get() && self.in_agg == 0 {
                            if let Some(sqlparser::ast::WindowType::NamedWindow(_)) = &f.over {
                                return fail(
                                    self,
                                    unsupported(
                                        q,
                                        "named windows (write the window inline)",
                                        Some(&*e),
                                    ),
                                );
                            }
                            if VOLATILE.contains(&name.as_str()) {
                                // checked below
                            } else {
                                return ControlFlow::Continue(());
                            }
                        }
                        if f.over.is_some() && !VOLATILE.contains(&name.as_str()) {
                            return fail(
                                self,
                                unsupported(
                                    q,
                                    &format!("the window function `{name}(...) OVER (...)`"),
                                    Some(&*e),
                                ),
                            );
                        }
                        if VOLATILE.contains(&name.as_str()) {
                            let err = Error::Unsupported(
                                Diagnostic::new(format!(
                                    "`{name}` is volatile (its value changes between evaluations), so DIFFERENTIAL mode cannot maintain it"
                                ))
                                .with_span(expr_range(q, &*e))
                                .with_help("use FULL mode (mode = \"full\"), or compute the value when writing the source rows"),
                            );
                            return fail(self, err);
                        }
                        if is_aggregate(f) {
                            if !self.allow_agg {
                                let err = Error::Invalid(
                                    Diagnostic::new(format!(
                                        "aggregate functions are not allowed here (`{name}`)"
                                    ))
                                    .with_span(expr_range(q, &*e)),
                                );
                                return fail(self, err);
                            }
                            if self.in_agg > 0 {
                                let err = Error::Invalid(
                                    Diagnostic::new("aggregate function calls cannot be nested")
                                        .with_span(expr_range(q, &*e)),
                                );
                                return fail(self, err);
                            }
                            self.in_agg += 1;
                        }
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            }
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Expr::Function(f) = e {
                    if is_aggregate(f) && self.in_agg > 0 {
                        self.in_agg -= 1;
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut out = e.clone();
        let mut b = B {
            binder: self,
            allow_agg,
            in_agg: 0,
            err: None,
        };
        let _ = out.visit(&mut b);
        if let Some(err) = b.err {
            return Err(err);
        }
        // anything still looking like an identifier was not resolved
        Ok(out)
    }
}
