//! Set-returning functions in FROM (`unnest`, `generate_series`, `jsonb_each`, ...).
//!
//! A function whose arguments name no source column is a constant relation: its rows
//! never change, so its delta is empty (`ΔF = ∅`) and the joins above it apply their
//! rules unchanged (`Δ(L ⋈ F) = ΔL ⋈ F`).
//!
//! A function applied to each row of its input (`FROM o, jsonb_array_elements(o.items)`,
//! `CROSS JOIN LATERAL`, `LEFT JOIN LATERAL ... ON`) is row-local: the rows it gives
//! for one input row depend on that row alone, so
//!
//! ```text
//! Δ(L ⋈lat f) = ΔL ⋈lat f        (and the same for ⟕lat: the padding is per row too)
//! ```
//!
//! each row of `ΔL` keeps its weight on every row the function gives for it (an old
//! image's rows are removed with −1, the new image's added with +1). A NULL or
//! empty array gives no rows, and a `LEFT JOIN LATERAL` then one padded row, exactly
//! as PostgreSQL evaluates it. Every call is rendered as `ROWS FROM (...) WITH
//! ORDINALITY`: the ordinality (the user's or a hidden `__pgs_ord`) is the function
//! leaf's key, so with a keyed input every output row has an identity (input key,
//! ordinality).

use super::IncrementalRenderer;
use crate::ir::{JoinKind, Tree};
use crate::render::{col, sql, JoinSql, Sql, W};
use sqlparser::ast::Expr;

impl IncrementalRenderer<'_> {
    /// The rows of function leaf `i`, its arguments read from the relation `q`
    /// (unused for a constant function), under the uniform column names: a
    /// subquery (to be read through `LATERAL` when it names `q`).
    pub(super) fn function_rel(&self, i: usize, q: &'static str) -> Sql {
        let l = &self.block.leaves[i];
        let f = l.func.as_ref().expect("a function leaf");
        let calls: Vec<Sql> = f
            .calls
            .iter()
            .map(|c| {
                let args: Vec<Sql> = c.args.iter().map(|a| self.expr_over(a, q)).collect();
                let defs = c
                    .coldefs
                    .as_ref()
                    .map(|d| sql!(" AS ({})", d))
                    .unwrap_or_default();
                sql!("{}({}){}", c.name, args.join_sql(", "), defs)
            })
            .collect();
        let n = l.table.columns.len();
        let names: Vec<Sql> = (0..n).map(|k| Sql::ident(&format!("c{}", k))).collect();
        let sel: Vec<Sql> = names
            .iter()
            .enumerate()
            .map(|(k, c)| sql!("f.{} AS {}", c, col(i, k)))
            .collect();
        sql!(
            "(SELECT {} FROM ROWS FROM ({}) WITH ORDINALITY AS f({}))",
            sel.join_sql(", "),
            calls.join_sql(", "),
            names.join_sql(", ")
        )
    }

    /// The delta of a constant function leaf: no rows (typed by the function's).
    pub(super) fn function_delta(&mut self, i: usize) -> String {
        let name = format!("__pgs_d{}", i);
        self.ctes.push((
            name.clone(),
            sql!(
                "SELECT r.*, 0::smallint AS {} FROM {} AS r WHERE false",
                W,
                self.function_rel(i, "r")
            ),
        ));
        name
    }

    /// The current rows of `input` with the function leaf `func` applied to each.
    pub(super) fn lateral_rel(
        &self,
        t: &Tree,
        kind: JoinKind,
        input: &Tree,
        func: usize,
        on: &Expr,
    ) -> Sql {
        let ll = input.leaves();
        sql!(
            "(SELECT {} FROM {} AS l {} LATERAL {} AS r ON {})",
            self.select_list(t, &ll, "l", "r"),
            self.new_rel(input),
            kind.sql(),
            self.function_rel(func, "l"),
            self.on(on, &ll, &[func])
        )
    }

    /// The delta of `input` with the function leaf `func` applied to each row: the
    /// function applied to the input's delta rows, weights carried.
    pub(super) fn lateral_delta(
        &mut self,
        t: &Tree,
        kind: JoinKind,
        input: &Tree,
        func: usize,
        on: &Expr,
    ) -> String {
        let d = self.delta(input);
        let ll = input.leaves();
        let body = sql!(
            "SELECT {0}, l.{1} AS {1} FROM {2} AS l {3} LATERAL {4} AS r ON {5}",
            self.select_list(t, &ll, "l", "r"),
            W,
            Sql::ident(&d),
            kind.sql(),
            self.function_rel(func, "l"),
            self.on(on, &ll, &[func])
        );
        let name = format!("__pgs_dn{}", self.ctes.len());
        self.ctes.push((name.clone(), body));
        name
    }
}
