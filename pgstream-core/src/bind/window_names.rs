//! Named windows: `SELECT rank() OVER w ... WINDOW w AS (PARTITION BY g ORDER BY x)`
//! is the same query with each window written inline, which is what the window
//! strategy binds. PostgreSQL's rules for a window built on another
//! (`OVER (w ORDER BY ...)`, `WINDOW w2 AS (w1 ...)`): it copies the other's
//! `PARTITION BY` and may not add one; it copies its `ORDER BY` unless it has its
//! own, which it may have only when the other has none; the other may have no frame
//! clause. `OVER w` without parentheses copies the window whole.

use super::*;
use sqlparser::ast::{NamedWindowExpr, WindowSpec, WindowType};

impl Binder<'_> {
    /// `s` with every window name resolved into its specification and the `WINDOW`
    /// clause removed; `s` itself when it has no `WINDOW` clause. A name that is not
    /// defined, or a definition that breaks the rules above, is an invalid query.
    pub(super) fn inline_named_windows(&self, s: &Select) -> Result<Option<Select>> {
        if s.named_window.is_empty() {
            return Ok(None);
        }
        let invalid = |message: String| {
            Error::Invalid(
                Diagnostic::new(message).with_span(span_range(self.query, s.select_token.0.span)),
            )
        };
        // Definitions in order; each may build on an earlier one.
        let mut defined: Vec<(String, WindowSpec)> = Vec::new();
        for def in &s.named_window {
            let name = ident_value(&def.0);
            if defined.iter().any(|(n, _)| *n == name) {
                return Err(invalid(format!("window `{name}` is already defined")));
            }
            let spec = match &def.1 {
                NamedWindowExpr::NamedWindow(other) => {
                    lookup(&defined, other).map_err(invalid)?.clone()
                }
                NamedWindowExpr::WindowSpec(spec) => resolve(&defined, spec).map_err(invalid)?,
            };
            defined.push((name, spec));
        }
        struct Inline<'d> {
            defined: &'d [(String, WindowSpec)],
            err: Option<String>,
        }
        impl VisitorMut for Inline<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                let Expr::Function(f) = e else {
                    return ControlFlow::Continue(());
                };
                let inlined = match &f.over {
                    Some(WindowType::NamedWindow(name)) => lookup(self.defined, name).cloned(),
                    Some(WindowType::WindowSpec(spec)) if spec.window_name.is_some() => {
                        resolve(self.defined, spec)
                    }
                    _ => return ControlFlow::Continue(()),
                };
                match inlined {
                    Ok(spec) => {
                        f.over = Some(WindowType::WindowSpec(spec));
                        ControlFlow::Continue(())
                    }
                    Err(m) => {
                        self.err = Some(m);
                        ControlFlow::Break(())
                    }
                }
            }
        }
        let mut out = s.clone();
        out.named_window = Vec::new();
        let mut inline = Inline {
            defined: &defined,
            err: None,
        };
        let _ = out.projection.visit(&mut inline);
        if inline.err.is_none() {
            // ORDER BY of the query is not part of the SELECT; windows elsewhere in
            // the select (WHERE, GROUP BY) are errors the binder reports.
            let _ = out.having.visit(&mut inline);
        }
        match inline.err {
            Some(m) => Err(invalid(m)),
            None => Ok(Some(out)),
        }
    }
}

/// The window defined under `name`.
fn lookup<'d>(
    defined: &'d [(String, WindowSpec)],
    name: &Ident,
) -> std::result::Result<&'d WindowSpec, String> {
    let n = ident_value(name);
    defined
        .iter()
        .rev()
        .find(|(d, _)| *d == n)
        .map(|(_, spec)| spec)
        .ok_or_else(|| format!("window `{n}` does not exist"))
}

/// `spec` with the window it names (if any) copied in, by PostgreSQL's rules.
fn resolve(
    defined: &[(String, WindowSpec)],
    spec: &WindowSpec,
) -> std::result::Result<WindowSpec, String> {
    let Some(base_name) = &spec.window_name else {
        return Ok(spec.clone());
    };
    let base = lookup(defined, base_name)?;
    let n = ident_value(base_name);
    if !spec.partition_by.is_empty() {
        return Err(format!(
            "cannot override the PARTITION BY clause of window `{n}`"
        ));
    }
    if !spec.order_by.is_empty() && !base.order_by.is_empty() {
        return Err(format!(
            "cannot override the ORDER BY clause of window `{n}`"
        ));
    }
    if base.window_frame.is_some() {
        return Err(format!(
            "cannot copy window `{n}` because it has a frame clause"
        ));
    }
    Ok(WindowSpec {
        window_name: None,
        partition_by: base.partition_by.clone(),
        order_by: if spec.order_by.is_empty() {
            base.order_by.clone()
        } else {
            spec.order_by.clone()
        },
        window_frame: spec.window_frame.clone(),
    })
}
