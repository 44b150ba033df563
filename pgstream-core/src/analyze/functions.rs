//! The functions a query calls (recorded for the runtime's volatility check) and
//! the rejection of volatile functions where a recomputation would re-evaluate them.

use crate::error::{Diagnostic, Error, Result};
use crate::sql::ident::ident_value;
use crate::sql::parse::expr_range;
use crate::sql::walk::{function_name, VOLATILE};
use sqlparser::ast::{Expr, Query, TableFactor, Visit, Visitor};
use std::ops::ControlFlow;
/// Every function the query calls, as `(schema, name)`.
pub(crate) fn called_functions(q: &Query) -> Vec<(Option<String>, String)> {
    struct V(Vec<(Option<String>, String)>);
    impl Visitor for V {
        type Break = ();
        fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
            // A function in FROM (`generate_series(...)`, `unnest(...)`).
            if let Some(Ok(item)) = super::srf::item(f) {
                for c in item.calls {
                    let entry = (c.schema, c.name);
                    if !self.0.contains(&entry) {
                        self.0.push(entry);
                    }
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                let parts: Vec<String> = f
                    .name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident())
                    .map(ident_value)
                    .collect();
                let entry = match parts.as_slice() {
                    [n] => (None, n.clone()),
                    [.., s, n] => (Some(s.clone()), n.clone()),
                    [] => return ControlFlow::Continue(()),
                };
                if !self.0.contains(&entry) {
                    self.0.push(entry);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(Vec::new());
    let _ = q.visit(&mut v);
    v.0
}

/// Recomputation re-evaluates the whole query, so a volatile function would make
/// every refresh rewrite rows that did not change: rejected in DIFFERENTIAL mode.
pub(crate) fn reject_volatile(text: &str, q: &Query) -> Result<()> {
    struct V<'a>(&'a str, Option<Error>);
    impl Visitor for V<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                let name = function_name(f);
                if VOLATILE.contains(&name.as_str()) {
                    self.1 = Some(Error::Unsupported(
                        Diagnostic::new(format!(
                            "`{name}` is volatile (its value changes between evaluations), so DIFFERENTIAL mode cannot maintain it"
                        ))
                        .with_span(expr_range(self.0, e))
                        .with_help("use FULL mode (mode = \"full\"), or compute the value when writing the source rows"),
                    ));
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(text, None);
    let _ = q.visit(&mut v);
    v.1.map_or(Ok(()), Err)
}
