//! What a stream table holds over a *stage*: a block kept in a table of its own
//! (`contract::stage_table`) by its delta rules, which the stream table reads.
//!
//! `ORDER BY ... LIMIT n` at the top of an aggregate query, over a stage. The
//! aggregate block without its order and count is the *stage*: a table of its own
//! (`contract::stage_table`), holding every group, kept by the aggregate's delta rules
//! (`aggregate`, `aggregate_recompute`) as if it were the stream table. The same for
//! a projection whose rows are identified by their leaves' keys (`project`: the
//! stage holds every row; a change touches the rows of its keys). The stream
//! table holds the first `n` rows of the stage, numbered among equal rows like a
//! recomputed result (`__pgs_n`), and each refresh recomputes them from the stage's
//! state after the refresh and applies only the difference:
//!
//! ```text
//! stage' = stage − (groups the changes touched) + (their new rows)
//! top'   = first n rows of stage' in the ORDER BY order
//! ```
//!
//! In one statement the stage's writes are not visible to the rest of it, so
//! `stage'` is read as the stage's rows before the statement without the groups the
//! changes touched, plus the new rows of those groups (which the aggregate rule
//! computes anyway). With an index on the stage's `ORDER BY` columns the first `n`
//! rows are read from the index: the cost is the aggregate's delta plus `O(n)`, not
//! the query.
//!
//! The query around an aggregate relation (`ir::OuterQuery`, `plan/outer.rs`) is the
//! same with another top: the query, whose occurrences of the relation read the CTE
//! `__pgs_stage`, evaluated with that CTE bound to `stage'`:
//!
//! ```text
//! result' = Q(stage', other relations' current rows)
//! ```

use super::*;
use crate::ir::OuterQuery;
use crate::render::apply::{apply_ctes, head_ctes, Copies, NewRows};

impl IncrementalRenderer<'_> {
    /// What the stream table holds over the stage whose rows are `rows` (a relation
    /// with the stage's visible columns, among others), copies numbered among equal
    /// rows: the first `n` rows in the `ORDER BY` order, or the outer query evaluated
    /// over them.
    fn top_rows(&self, rows: &Sql) -> NewRows {
        let top = match self.top.expect("a stage") {
            OverStage::TopK(top) => top,
            OverStage::Query(outer) => {
                return NewRows::Copies(Copies::numbered(
                    sql!(
                        "WITH {} AS MATERIALIZED ({}) SELECT q.* FROM ({}) AS q",
                        Sql::ident(OuterQuery::STAGE),
                        rows,
                        outer.sql
                    ),
                    self.compiled.columns.len(),
                ))
            }
        };
        let vis: Vec<Sql> = self
            .block
            .items
            .iter()
            .map(|(n, _)| sql!("a.{}", Sql::ident(n)))
            .collect();
        let order = self.order_list(top, "a.");
        let width = vis.len();
        NewRows::Copies(Copies::numbered(
            sql!(
                "SELECT {} FROM ({}) AS a ORDER BY {} LIMIT {}",
                vis.join_sql(", "),
                rows,
                order,
                top.limit
            ),
            width,
        ))
    }

    /// The top-k's `ORDER BY` list over the stage's columns, each qualified by
    /// `prefix` (`"a."`, or nothing for the index), with its options.
    fn order_list(&self, top: &crate::ir::TopK, prefix: &'static str) -> Sql {
        top.order
            .iter()
            .map(|(i, opts)| {
                sql!(
                    "{}{}{}",
                    Sql::fixed(prefix),
                    Sql::ident(&self.block.items[*i].0),
                    opts
                )
            })
            .collect::<Vec<_>>()
            .join_sql(", ")
    }

    /// The differential refresh's end when a top-k sits on the stage: the stage's
    /// rows after this refresh, visible columns, are `kept` (a `SELECT` over the stage
    /// as `st`: its rows the changes did not touch) and `new` (the new rows of those
    /// they did); they give the new first rows, applied to the top storage table; the
    /// statement returns how many rows of the top storage table changed. Without a
    /// top-k, `tail` as it is.
    ///
    /// Under a top-k the kept rows are limited to the first `n` on their own, so that
    /// they are read through the index on the order: the planner sorted the whole
    /// stage when the limit was only above the `UNION ALL` (1,000,000 rows for a top
    /// 50 over a projection, 300 ms).
    pub(super) fn top_tail(&self, body: &mut Vec<Sql>, kept: &Sql, new: &Sql, tail: &Sql) -> Sql {
        let Some(top_st) = &self.top_storage else {
            return tail.clone();
        };
        let after = match self.top.expect("a stage") {
            OverStage::TopK(top) => sql!(
                "({} ORDER BY {} LIMIT {}) UNION ALL ({})",
                kept,
                self.order_list(top, "st."),
                top.limit,
                new
            ),
            OverStage::Query(_) => sql!("{} UNION ALL {}", kept, new),
        };
        body.extend(apply_ctes(top_st, "top_", &self.top_rows(&after), None));
        Sql::fixed("SELECT (SELECT count(*) FROM \"__pgs_top_del\") + (SELECT count(*) FROM \"__pgs_top_ins\") AS \"rows_changed\"")
    }

    /// Whether the stream table holds the query around the block's stage (which reads
    /// every row of the stage, where a top-k reads its first rows).
    pub(super) fn around_stage(&self) -> bool {
        matches!(self.top, Some(OverStage::Query(_)))
    }

    /// The visible output columns of the stage table as a select list over `q`.
    pub(super) fn stage_columns(&self, q: &'static str) -> Sql {
        self.block
            .items
            .iter()
            .map(|(n, _)| sql!("{}.{}", q, Sql::ident(n)))
            .collect::<Vec<_>>()
            .join_sql(", ")
    }

    /// The artifacts when a top-k sits on the stage (`stage` holds the stage's):
    /// the top storage table is created first (from the stage's rows, so that the
    /// runtime's `NOT NULL` columns apply to it), then the stage with an index on the
    /// `ORDER BY` columns; the full refresh recomputes the stage and takes the top
    /// rows from its new rows, in one statement.
    /// `resets` are the leading CTEs of the stage's full refresh (the one-row leaves'
    /// states, `scalar_states`), which this full refresh runs too.
    pub(super) fn top_artifacts(
        &self,
        stage: Statements,
        new_rows: &NewRows,
        resets: &[(String, Sql)],
    ) -> Statements {
        let (Some(over), Some(top_st)) = (self.top, &self.top_storage) else {
            return stage;
        };
        // A stage holds an aggregate's rows, keyed: the full refresh below reads the
        // CTE `__pgs_new` that applying keyed rows leaves.
        debug_assert!(matches!(new_rows, NewRows::Keyed(_)));
        let stage_st = &self.storage;
        let mut ddl = storage_ddl(top_st, self.top_rows(new_rows.rows()).rows());
        ddl.extend(stage.storage_ddl);
        let top = match over {
            OverStage::TopK(top) => Some(top),
            OverStage::Query(_) => None,
        };
        let indexable = top.is_some_and(|top| {
            top.order.iter().all(|(i, _)| {
                self.compiled
                    .columns
                    .get(*i)
                    .and_then(|c| c.sql_type.as_deref())
                    .is_some_and(|_| !self.by_text(*i))
            })
        });
        if let (true, Some(top)) = (indexable, top) {
            ddl.push(sql!(
                "CREATE INDEX ON {} ({})",
                stage_st,
                self.order_list(top, "")
            ));
        }
        let mut ctes = head_ctes(resets, self.ctx);
        ctes.extend(apply_ctes(stage_st, "", new_rows, None));
        ctes.extend(apply_ctes(
            top_st,
            "top_",
            &self.top_rows(&Sql::fixed("SELECT * FROM \"__pgs_new\"")),
            None,
        ));
        let full = sql!("WITH {}\nSELECT (SELECT count(*) FROM \"__pgs_top_del\") + (SELECT count(*) FROM \"__pgs_top_ins\") AS \"rows_changed\"", ctes.join_sql(",\n"));
        Statements {
            storage_ddl: ddl,
            full_refresh: full,
            differential_refresh: stage.differential_refresh,
            hidden_columns: vec!["__pgs_n".into(), contract::ROW_ID.into()],
        }
    }
}
