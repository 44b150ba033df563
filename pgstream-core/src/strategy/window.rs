//! Window functions and `DISTINCT ON`: the partitions the changes touch are
//! recomputed whole and the difference is applied (`recompute_keys`). The WHERE
//! applies before the windows, so restricting the input to those partitions is
//! exact. Without PARTITION BY the whole result is recomputed when anything
//! changed. Rows are identified by their content and an ordinal among equal rows.

use super::*;

impl IncrementalRenderer<'_> {
    /// Window functions: the partitions the changes touch are recomputed whole (the
    /// WHERE applies before the windows, so restricting the input to those
    /// partitions is exact) and the difference is applied. Rows are identified by
    /// their content and an ordinal among equal rows.
    pub(super) fn window(&mut self) -> Artifacts {
        let Shape::Window {
            partition,
            distinct_on,
        } = &self.block.shape
        else {
            unreachable!()
        };
        let st = self.storage.clone();
        let pnames: Vec<String> = (0..partition.len())
            .map(|k| qi(&format!("__pgs_p{k}")))
            .collect();
        let part_x: Vec<String> = partition.iter().map(|p| self.expr_over(p, "x")).collect();
        let mut sel: Vec<String> = self
            .block
            .items
            .iter()
            .map(|(n, e)| format!("{} AS {}", self.expr_over(e, "x"), qi(n)))
            .collect();
        sel.extend(
            part_x
                .iter()
                .zip(&pnames)
                .map(|(e, n)| format!("{e} AS {n}")),
        );
        let base = self.new_rel(&self.block.tree);
        let filter = self.block.filter.as_ref().map(|f| self.expr_over(f, "x"));
        // DISTINCT ON: each (restricted) recomputation keeps the first row per key.
        let order_by: Option<String> = distinct_on.as_ref().map(|order| {
            if order.is_empty() {
                String::new()
            } else {
                format!(
                    " ORDER BY {}",
                    order
                        .iter()
                        .map(|(e, opts)| format!("{}{opts}", self.expr_over(e, "x")))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        });
        let inner = |extra: Option<&str>| {
            let mut conds: Vec<String> = filter.iter().map(|f| format!("({f})")).collect();
            conds.extend(extra.map(|e| e.to_string()));
            let w = if conds.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conds.join(" AND "))
            };
            match &order_by {
                None => format!("SELECT {} FROM {base} AS x{w}", sel.join(", ")),
                Some(order) => format!(
                    "(SELECT DISTINCT ON ({}) {} FROM {base} AS x{w}{order})",
                    part_x.join(", "),
                    sel.join(", ")
                ),
            }
        };
        let new_rows = numbered(&inner(None));
        let root = self.delta(&self.block.tree);
        let keys = format!(
            "SELECT DISTINCT {} FROM {} AS x{}",
            if part_x.is_empty() {
                "1 AS \"__pgs_any\"".to_string()
            } else {
                part_x
                    .iter()
                    .zip(&pnames)
                    .map(|(e, n)| format!("{e} AS {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            qi(&root),
            self.where_clause("x")
        );
        let (fresh, in_keys) = if partition.is_empty() {
            (
                format!("SELECT f.* FROM ({new_rows}) AS f WHERE (SELECT EXISTS (SELECT 1 FROM \"__pgs_keys\"))"),
                "EXISTS (SELECT 1 FROM \"__pgs_keys\")".to_string(),
            )
        } else {
            let (by_in, by_null) = Self::key_predicates(&part_x, &pnames);
            let restricted = format!(
                "{} UNION ALL {}",
                inner(Some(&by_in)),
                inner(Some(&by_null))
            );
            (numbered(&restricted), Self::touched_keys(&pnames))
        };
        let diff = self.recompute_keys(&keys, &fresh, &in_keys, &st);
        let hidden = pnames
            .iter()
            .map(|c| c.trim_matches('"').to_string())
            .chain(["__pgs_n".to_string(), contract::ROW_ID.to_string()])
            .collect();
        self.maintained(&st, &new_rows, diff, hidden)
    }
}
