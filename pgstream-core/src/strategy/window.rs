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
    pub(super) fn window(&mut self) -> Statements {
        let Shape::Window {
            partition,
            distinct_on,
        } = &self.block.shape
        else {
            unreachable!()
        };
        let st = self.storage.clone();
        let pnames = numbered_names("__pgs_p", partition.len());
        let part_x: Vec<Sql> = partition.iter().map(|p| self.expr_over(p, "x")).collect();
        let mut sel: Vec<Sql> = self
            .block
            .items
            .iter()
            .map(|(n, e)| sql!("{} AS {}", self.expr_over(e, "x"), Sql::ident(n)))
            .collect();
        sel.extend(
            part_x
                .iter()
                .zip(&pnames)
                .map(|(e, n)| sql!("{} AS {}", e, n)),
        );
        let base = self.new_rel(&self.block.tree);
        let filter = self.block.filter.as_ref().map(|f| self.expr_over(f, "x"));
        // DISTINCT ON: each (restricted) recomputation keeps the first row per key.
        let order_by: Option<Sql> = distinct_on.as_ref().map(|order| {
            if order.is_empty() {
                Sql::default()
            } else {
                sql!(
                    " ORDER BY {}",
                    order
                        .iter()
                        .map(|(e, opts)| sql!("{}{}", self.expr_over(e, "x"), opts))
                        .collect::<Vec<_>>()
                        .join_sql(", ")
                )
            }
        });
        let inner = |extra: Option<&Sql>| {
            let mut conds: Vec<Sql> = filter.iter().map(|f| sql!("({})", f)).collect();
            conds.extend(extra.cloned());
            let w = if conds.is_empty() {
                Sql::default()
            } else {
                sql!(" WHERE {}", conds.join_sql(" AND "))
            };
            match &order_by {
                None => sql!("SELECT {} FROM {} AS x{}", sel.join_sql(", "), base, w),
                Some(order) => sql!(
                    "(SELECT DISTINCT ON ({}) {} FROM {} AS x{}{})",
                    part_x.join_sql(", "),
                    sel.join_sql(", "),
                    base,
                    w,
                    order
                ),
            }
        };
        let new_rows = NewRows::Copies(Copies::numbered(inner(None), sel.len()));
        let root = self.delta(&self.block.tree);
        let keys = sql!(
            "SELECT DISTINCT {} FROM {} AS x{}",
            if part_x.is_empty() {
                Sql::fixed("1 AS \"__pgs_any\"")
            } else {
                part_x
                    .iter()
                    .zip(&pnames)
                    .map(|(e, n)| sql!("{} AS {}", e, n))
                    .collect::<Vec<_>>()
                    .join_sql(", ")
            },
            Sql::ident(&root),
            self.where_clause("x")
        );
        let (fresh, in_keys) = if partition.is_empty() {
            (
                sql!("SELECT f.* FROM ({}) AS f WHERE (SELECT EXISTS (SELECT 1 FROM \"__pgs_keys\"))", new_rows.rows()),
                Sql::fixed("EXISTS (SELECT 1 FROM \"__pgs_keys\")"),
            )
        } else {
            let (by_in, by_null) = Self::key_predicates(&part_x, &pnames);
            let restricted = sql!(
                "{} UNION ALL {}",
                inner(Some(&by_in)),
                inner(Some(&by_null))
            );
            (numbered(&restricted), Self::touched_keys(&pnames))
        };
        let diff = self.recompute_keys(&keys, &fresh, &in_keys, None, &st);
        let hidden = pnames
            .iter()
            .map(|c| c.as_str().trim_matches('"').to_string())
            .chain(["__pgs_n".to_string(), contract::ROW_ID.to_string()])
            .collect();
        self.maintained(&st, &new_rows, diff, hidden)
    }
}
