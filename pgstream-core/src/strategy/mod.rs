//! The maintenance strategies, one file per operator, each with its delta rule in
//! its module doc. [`render`] picks the renderer of a compiled stream table: delta
//! rules over the bound block ([`IncrementalRenderer`]: the delta of the join tree, operator by
//! operator, then the rule of the block's shape), or recomputation (`recompute`,
//! `recursive`). The statements they end in come from `render/`.
//!
//! Tree operators (`delta`): `scan`, `filter`, `join`, `outer_join`, `semi_join`,
//! `aggregate_subquery`, `scalar_join` (an inner join with a one-row aggregate leaf
//! that only its condition reads), `function` (set-returning functions in FROM). Shapes (`artifacts`): `project`, `aggregate` (counters),
//! `aggregate_recompute`, `window`, `set_operation`.

mod aggregate;
mod aggregate_recompute;
mod aggregate_subquery;
mod filter;
mod function;
mod join;
mod outer_join;
mod prefilter;
mod project;
mod recompute;
pub(crate) mod recursive;
mod scalar_join;
mod scan;
mod semi_join;
mod set_operation;
mod stage;
mod window;

use crate::catalog::Table;
use crate::contract;

use crate::ir::marker::{self as expr, Marker};
use crate::ir::{
    AggFunc, Artifacts, Block, Body, Compiled, JoinKind, OverStage, RenderContext, SetOpKind,
    Shape, SourceBinding, Strategy, Tree,
};
use crate::render::apply::{diff_statement, storage_ddl, Copies, NewRows};
use crate::render::frontier::frontier_advance;
use crate::render::function::refresh_function;
use crate::render::window::{exact_equality, window_rows_sql, window_sql};
use crate::render::{
    col, numbered, qualified_by, row_hash, row_id_of, sql, JoinSql, Sql, UNREAD, W,
};
use crate::sql::walk::{conjuncts, unnest};
use recompute::recompute_artifacts;
use sqlparser::ast::{BinaryOperator, Expr};

/// What a strategy renders, as fragments: [`render`] hands it out as [`Artifacts`]
/// (whose fields document each statement).
struct Statements {
    storage_ddl: Vec<Sql>,
    full_refresh: Sql,
    differential_refresh: Option<Sql>,
    hidden_columns: Vec<String>,
}

pub(crate) fn render(c: &Compiled, ctx: &RenderContext) -> Artifacts {
    let st = Sql::qualified(&c.spec.name);
    let mut a = match &c.body {
        Body::Incremental(block) => {
            // Under a top-k, the block is maintained in its stage table.
            let (storage, top_storage) = match &c.over_stage {
                Some(_) => (
                    sql!(
                        "{}.{}",
                        Sql::ident(contract::CATALOG_SCHEMA),
                        Sql::ident(&contract::stage_table(ctx.st_id))
                    ),
                    Some(st.clone()),
                ),
                None => (st.clone(), None),
            };
            let (carried, placeholder) = carried_columns(c, block);
            IncrementalRenderer {
                compiled: c,
                block,
                ctx,
                ctes: Vec::new(),
                agg_keys: Vec::new(),
                in_delta: false,
                storage,
                top: c.over_stage.as_ref(),
                top_storage,
                carried,
                placeholder,
                states: Vec::new(),
            }
            .artifacts()
        }
        Body::Recompute { query_sql, .. } => recompute_artifacts(c, ctx, &st, query_sql),
    };
    // Output columns the compiler proved non-nullable are NOT NULL in the storage
    // table, so that `sqlx::query_as!` over it infers the field types the attribute
    // checks (`i64`, not `Option<i64>`), and a wrong inference fails loudly at the
    // refresh instead of as a decoding error in the application.
    let not_null: Vec<Sql> = c
        .columns
        .iter()
        .filter(|col| col.nullable == Some(false))
        .map(|col| sql!("ALTER COLUMN {} SET NOT NULL", Sql::ident(&col.name)))
        .collect();
    if !not_null.is_empty() {
        a.storage_ddl
            .insert(1, sql!("ALTER TABLE {} {}", st, not_null.join_sql(", ")));
    }
    if let Body::Recompute {
        seminaive: Some(sn),
        ..
    } = &c.body
    {
        // The semi-naive step joins the stored result on these columns.
        for col in &sn.lookup_columns {
            a.storage_ddl
                .push(sql!("CREATE INDEX ON {} ({})", st, Sql::ident(col)));
        }
    }
    let insert_only = match &c.body {
        Body::Recompute {
            seminaive: Some(sn),
            ..
        } => {
            let outputs: Vec<String> = c.columns.iter().map(|c| c.name.clone()).collect();
            Some(
                sn.render(&recursive::Inputs {
                    sources: &c.sources,
                    windows: (0..c.sources.len())
                        .map(|s| window_rows_sql(ctx, s))
                        .collect(),
                    storage: &st,
                    outputs: &outputs,
                    row_hash: &row_hash,
                    advance: frontier_advance(ctx),
                }),
            )
        }
        _ => None,
    };
    let refresh_function = a
        .differential_refresh
        .as_ref()
        .map(|d| refresh_function(ctx, d, insert_only.as_ref()));
    Artifacts {
        storage_ddl: a.storage_ddl.into_iter().map(Sql::into_string).collect(),
        full_refresh: a.full_refresh.into_string(),
        differential_refresh: a.differential_refresh.map(Sql::into_string),
        hidden_columns: a.hidden_columns,
        refresh_function: refresh_function.map(Sql::into_string),
    }
}

/// Renderer of a block maintained by delta rules.
struct IncrementalRenderer<'a> {
    /// The stream table being rendered.
    compiled: &'a Compiled,
    /// Its bound block (for a set operation, the first branch's).
    block: &'a Block,
    /// The object ids of the database.
    ctx: &'a RenderContext,
    /// The CTEs of the differential refresh so far, in order: `(name, body)`.
    ctes: Vec<(String, Sql)>,
    /// Aggregate subquery leaves whose delta recomputes only the groups of some keys:
    /// `(leaf, conditions)`, a key is kept when one of the conditions (over the keys
    /// `"__pgs_t"."__pgs_k<j>"`) holds (`restrict_agg_keys`).
    agg_keys: Vec<(usize, Vec<Sql>)>,
    /// Whether a delta rule is being rendered (`delta`): its terms are part of the
    /// differential statement and may read the CTEs made so far; the full refresh
    /// and the shapes' statements may not.
    in_delta: bool,
    /// The storage table, quoted and qualified (under a top-k, the stage table).
    storage: Sql,
    /// What the stream table holds over the block's stage (`stage`): a top-level
    /// `ORDER BY ... LIMIT`, or the query around the block.
    top: Option<&'a OverStage>,
    /// The storage table of the top-k (quoted and qualified), when there is one.
    top_storage: Option<Sql>,
    /// Per leaf and column, whether the delta terms carry it ([`carried_columns`]).
    carried: Vec<Vec<bool>>,
    /// Per leaf, whether its first column is carried as a NULL placeholder: the
    /// query reads none of its columns (`count(*)` over a table without a primary
    /// key), and a relation needs a column.
    placeholder: Vec<bool>,
    /// The one-row leaves whose parts the differential refresh keeps in a state
    /// table (`aggregate_subquery::inverted`), in the order they were rendered.
    states: Vec<usize>,
}

/// Per leaf of `block` and column of its table, whether the relations of the delta
/// rules carry it: every column of an aggregate subquery or a function leaf, and of
/// a source the columns the query reads (`Compiled::buffer_columns`, its primary key
/// among them). A column the query does not read is named nowhere: not carried as a
/// NULL either, which made TPC-H Q8's statement twice as long (every join level
/// listed every column of the leaves below it) and its planning slower.
/// A leaf none of whose columns is read (`count(*)` over a table without a primary
/// key) carries its first as a NULL placeholder (the second result): a relation needs
/// a column.
fn carried_columns(c: &Compiled, block: &Block) -> (Vec<Vec<bool>>, Vec<bool>) {
    block
        .leaves
        .iter()
        .map(|l| {
            let read = (l.agg.is_none() && l.func.is_none()).then(|| c.buffer_columns(l.source));
            let mut carried: Vec<bool> = l
                .table
                .columns
                .iter()
                .map(|col| read.as_ref().is_none_or(|r| r.contains(&col.name)))
                .collect();
            let placeholder = !carried.contains(&true);
            if let (true, Some(first)) = (placeholder, carried.first_mut()) {
                *first = true;
            }
            (carried, placeholder)
        })
        .unzip()
}

impl IncrementalRenderer<'_> {
    /// The columns of leaf `i` read from the relation `alias`, under the uniform
    /// names. Only the columns the query reads are named: a column it does not read
    /// may be dropped, renamed or retyped without breaking anything (the buffer holds
    /// the columns some consumer reads; this one reads `buffer_columns`).
    fn leaf_columns(&self, i: usize, alias: &'static str) -> Vec<Sql> {
        let l = &self.block.leaves[i];
        l.table
            .columns
            .iter()
            .enumerate()
            .filter(|(j, _)| self.carried[i][*j])
            .map(|(j, c)| {
                if self.placeholder[i] {
                    sql!("{} AS {}", UNREAD, col(i, j))
                } else {
                    sql!("{}.{} AS {}", alias, Sql::ident(&c.name), col(i, j))
                }
            })
            .collect()
    }

    /// The CTE with the window of source `source` (whose table is `table`), created
    /// once per statement.
    fn window_cte(&mut self, source: usize, table: &Table) -> String {
        let win = format!("__pgs_win{}", source);
        if !self.ctes.iter().any(|(n, _)| *n == win) {
            let prefilter = self.window_prefilter(source);
            self.ctes.push((
                win.clone(),
                window_sql(
                    self.ctx,
                    source,
                    Some(table),
                    &self.compiled.buffer_columns(source),
                    prefilter.as_ref(),
                ),
            ));
        }
        win
    }

    /// Columns of a subtree: (leaf, col) pairs in order.
    fn cols(&self, t: &Tree) -> Vec<(usize, usize)> {
        self.cols_of(&t.out_leaves())
    }

    /// A subquery with the current contents of a subtree.
    fn new_rel(&self, t: &Tree) -> Sql {
        match t {
            Tree::Filter { input, pred, .. } => {
                let sel: Vec<Sql> = self
                    .cols(t)
                    .into_iter()
                    .map(|(l, c)| sql!("l.{}", col(l, c)))
                    .collect();
                sql!(
                    "(SELECT {} FROM {} AS l WHERE {})",
                    sel.join_sql(", "),
                    self.new_rel(input),
                    self.expr_over(pred, "l")
                )
            }
            Tree::Leaf(i) if self.block.leaves[*i].func.is_some() => self.function_rel(*i, "l"),
            Tree::Lateral {
                kind,
                input,
                func,
                on,
                ..
            } => self.lateral_rel(t, *kind, input, *func, on),
            Tree::Leaf(i) if self.block.leaves[*i].agg.is_some() => {
                // A one-row leaf's value, once computed for its delta, is read again
                // (TPC-H Q22 scanned customer for its average twice).
                if let Some(value) = self.scalar_new_rel(*i).filter(|_| self.in_delta) {
                    return value;
                }
                let base = &self.compiled.sources[self.block.leaves[*i].source];
                sql!("({})", self.agg_sql(*i, &Sql::qualified(&base.name), None))
            }
            Tree::Leaf(i) => {
                let l = &self.block.leaves[*i];
                sql!(
                    "(SELECT {} FROM {} AS t)",
                    self.leaf_columns(*i, "t").join_sql(", "),
                    Sql::qualified(&l.table.name)
                )
            }
            Tree::Join {
                kind,
                left,
                right,
                on,
                ..
            } => {
                let (ll, rl) = (left.leaves(), right.leaves());
                let sel = self.select_list(t, &ll, "l", "r");
                if matches!(kind, JoinKind::Semi | JoinKind::Anti) {
                    return sql!(
                        "(SELECT {} FROM {} AS l WHERE {}EXISTS (SELECT 1 FROM {} AS r WHERE {}))",
                        sel,
                        self.new_rel(left),
                        if *kind == JoinKind::Anti { "NOT " } else { "" },
                        self.new_rel(right),
                        self.on(on, &ll, &rl)
                    );
                }
                sql!(
                    "(SELECT {} FROM {} AS l {} {} AS r ON {})",
                    sel,
                    self.new_rel(left),
                    kind.sql(),
                    self.new_rel(right),
                    self.on(on, &ll, &rl)
                )
            }
        }
    }

    fn select_list(
        &self,
        t: &Tree,
        left_leaves: &[usize],
        lq: &'static str,
        rq: &'static str,
    ) -> Sql {
        self.cols(t)
            .into_iter()
            .map(|(l, c)| {
                sql!(
                    "{}.{}",
                    if left_leaves.contains(&l) { lq } else { rq },
                    col(l, c)
                )
            })
            .collect::<Vec<_>>()
            .join_sql(", ")
    }

    fn padded_list(&self, t: &Tree, keep: &[usize], q: &'static str) -> Sql {
        self.cols(t)
            .into_iter()
            .map(|(l, c)| {
                let leaf = &self.block.leaves[l];
                if keep.contains(&l) {
                    sql!("{}.{}", q, col(l, c))
                } else if self.placeholder[l] {
                    sql!("{} AS {}", UNREAD, col(l, c))
                } else if leaf.table.columns[c].sql_type.is_empty() {
                    // A function's column of a type not inferred.
                    sql!("NULL AS {}", col(l, c))
                } else {
                    sql!(
                        "NULL::{} AS {}",
                        Sql::type_name(&self.block.leaves[l].table.columns[c].sql_type),
                        col(l, c)
                    )
                }
            })
            .collect::<Vec<_>>()
            .join_sql(", ")
    }

    fn on(&self, on: &Expr, left_leaves: &[usize], _right: &[usize]) -> Sql {
        expr::render_with(on, &mut |m| match m {
            Marker::Col { leaf, col: c } => Some(sql!(
                "{}.{}",
                if left_leaves.contains(&leaf) {
                    "l"
                } else {
                    "r"
                },
                col(leaf, c)
            )),
            _ => None,
        })
    }

    /// The name of a CTE holding the delta of a subtree (creating it): one rule per
    /// operator (`filter`, `scan`, `aggregate_subquery`, `join`).
    fn delta(&mut self, t: &Tree) -> String {
        let outer = std::mem::replace(&mut self.in_delta, true);
        let name = self.operator_delta(t);
        self.in_delta = outer;
        name
    }

    /// [`Self::delta`] by the rule of `t`'s operator.
    fn operator_delta(&mut self, t: &Tree) -> String {
        match t {
            Tree::Filter { input, pred, .. } => self.filter_delta(input, pred),
            Tree::Leaf(i) if self.block.leaves[*i].agg.is_some() => self.agg_delta(*i),
            Tree::Leaf(i) if self.block.leaves[*i].func.is_some() => self.function_delta(*i),
            Tree::Lateral {
                kind,
                input,
                func,
                on,
                ..
            } => self.lateral_delta(t, *kind, input, *func, on),
            Tree::Leaf(i) => self.scan_delta(*i),
            Tree::Join {
                kind: JoinKind::Inner,
                left,
                right,
                on,
                ..
            } if self.scalar_join_leaf(right, on).is_some() => {
                let i = self.scalar_join_leaf(right, on).expect("checked");
                self.scalar_join_delta(t, left, right, i, on)
            }
            Tree::Join {
                kind,
                left,
                right,
                on,
                ..
            } => self.join_delta(t, *kind, left, right, on),
        }
    }

    /// The block's output names, quoted.
    fn output_names(&self) -> Vec<Sql> {
        self.block
            .items
            .iter()
            .map(|(n, _)| Sql::ident(n))
            .collect()
    }

    /// An expression of an aggregate block over the relation `x` as PostgreSQL
    /// evaluates it: its aggregate calls as written, its group keys `groups_x`.
    fn grouped_over_x(&self, e: &Expr, groups_x: &[Sql]) -> Sql {
        let Shape::Aggregate { aggs, .. } = &self.block.shape else {
            unreachable!("an aggregate block")
        };
        expr::render_with(e, &mut |m| match m {
            Marker::Agg(k) => Some(self.expr_over(&aggs[k].call, "x")),
            Marker::Grp(k) => Some(sql!("({})", groups_x[k])),
            Marker::Col { leaf, col: c } => Some(sql!("x.{}", col(leaf, c))),
        })
    }

    /// The items of an aggregate block over the relation `x` (see
    /// [`Self::grouped_over_x`]), named.
    fn grouped_items_over_x(&self, groups_x: &[Sql]) -> Vec<Sql> {
        self.block
            .items
            .iter()
            .map(|(n, e)| sql!("{} AS {}", self.grouped_over_x(e, groups_x), Sql::ident(n)))
            .collect()
    }

    /// The carried columns of `leaves` ([`carried_columns`]): (leaf, col) pairs in
    /// order.
    fn cols_of(&self, leaves: &[usize]) -> Vec<(usize, usize)> {
        leaves
            .iter()
            .flat_map(|&l| {
                (0..self.carried[l].len())
                    .filter(move |&c| self.carried[l][c])
                    .map(move |c| (l, c))
            })
            .collect()
    }

    /// The SQL of a bound expression over the relation `alias` (whose columns have
    /// the uniform names `__pgs_c<leaf>_<col>`).
    fn expr_over(&self, e: &Expr, alias: &'static str) -> Sql {
        expr::render_with(e, &mut |m| match m {
            Marker::Col { leaf, col: c } => Some(sql!("{}.{}", alias, col(leaf, c))),
            _ => None,
        })
    }

    fn where_clause(&self, q: &'static str) -> Sql {
        self.block
            .filter
            .as_ref()
            .map(|f| sql!(" WHERE {}", self.expr_over(f, q)))
            .unwrap_or_default()
    }

    fn artifacts(mut self) -> Statements {
        match &self.block.shape {
            Shape::Project => self.project(),
            Shape::Window { .. } => self.window(),
            Shape::SetOp { .. } => self.setop(),
            Shape::Aggregate {
                recompute: true, ..
            } => self.aggregate_recompute(),
            Shape::Aggregate { .. } => self.aggregate(),
        }
    }

    /// Whether output column `i` is grouped by its text in the net change per row:
    /// its type has no equality GROUP BY can use (`json`, `point`, ...), or it is not
    /// known. Columns past the outputs (hidden keys) are grouped by value.
    fn by_text(&self, i: usize) -> bool {
        match self.compiled.columns.get(i) {
            None => false,
            Some(c) => c.sql_type.as_deref().is_none_or(|t| {
                let t = t.to_ascii_lowercase();
                let base = t.split(['(', '[']).next().unwrap_or("").trim();
                UNGROUPABLE.contains(&base)
            }),
        }
    }

    /// The select list and the GROUP BY list of the net change per row over the
    /// columns `cols` (quoted; the outputs first): a column grouped by its text
    /// ([`Self::by_text`]) takes the value of any row of its group (they print alike).
    /// An output column whose equality is not identity is grouped by its value and
    /// its text, so an update that equality does not see (`7.1` to `7.10`, `0` to
    /// `-0`, `bob` to `Bob` under a case-insensitive collation) is a change.
    fn net_grouping(&self, cols: &[Sql]) -> (Sql, Sql) {
        let (sel, by): (Vec<Sql>, Vec<Sql>) = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let exact = i < self.compiled.columns.len()
                    && self.compiled.columns[i]
                        .sql_type
                        .as_deref()
                        .is_some_and(exact_equality);
                if self.by_text(i) {
                    (
                        sql!("(pg_catalog.array_agg({0}))[1] AS {0}", c),
                        sql!("{}::pg_catalog.text", c),
                    )
                } else if exact || i >= self.compiled.columns.len() {
                    // The keys of the leaves (after the outputs): equal keys are
                    // one row, whatever they print.
                    (c.clone(), c.clone())
                } else {
                    (
                        c.clone(),
                        sql!("{0}, ({0}::pg_catalog.text COLLATE \"C\")", c),
                    )
                }
            })
            .unzip();
        (sel.join_sql(", "), by.join_sql(", "))
    }

    fn key_exprs(&self, q: &'static str) -> Vec<Sql> {
        let mut keys = Vec::new();
        // In leaf order, not join order: pushdown may reorder the joins.
        let mut out = self.block.tree.out_leaves();
        out.sort_unstable();
        for i in out {
            let l = &self.block.leaves[i];
            for k in &l.table.primary_key {
                let c = l.table.column_index(k).expect("primary key column");
                keys.push(sql!("{}.{}", q, col(i, c)));
            }
        }
        keys
    }

    fn finish(&self, body_ctes: Vec<Sql>, tail: &Sql) -> Sql {
        let mut all: Vec<Sql> = self
            .ctes
            .iter()
            .map(|(n, b)| {
                sql!(
                    "{} AS {}({})",
                    Sql::ident(n),
                    if n.starts_with("__pgs_win") || n.starts_with("__pgs_s") {
                        "MATERIALIZED "
                    } else {
                        ""
                    },
                    b
                )
            })
            .collect();
        all.extend(body_ctes);
        sql!("WITH {}\n{}", all.join_sql(",\n"), tail)
    }

    /// The current rows (visible columns) and the delta (visible columns and weight)
    /// of a projection block whose tree delta is the CTE `root`.
    /// The output columns are named `names` (a set operation's branches all take the
    /// first branch's names).
    fn branch_selects(&self, b: &Block, root: &str, names: &[String]) -> (Sql, Sql) {
        let vis_x: Vec<Sql> = b
            .items
            .iter()
            .zip(names)
            .map(|((_, e), n)| sql!("{} AS {}", self.expr_over(e, "x"), Sql::ident(n)))
            .collect();
        let w = b
            .filter
            .as_ref()
            .map(|f| sql!(" WHERE {}", self.expr_over(f, "x")))
            .unwrap_or_default();
        (
            sql!(
                "SELECT {} FROM {} AS x{}",
                vis_x.join_sql(", "),
                self.new_rel(&b.tree),
                w
            ),
            sql!(
                "SELECT {}, x.{} FROM {} AS x{}",
                vis_x.join_sql(", "),
                W,
                Sql::ident(root),
                w
            ),
        )
    }

    /// The two predicates that keep only the rows whose keys (`exprs`, named `names`
    /// in `__pgs_keys`) the changes touched: keys without NULLs by `IN` (which can
    /// use indexes), keys with a NULL by a NULL-safe match, skipped unless such a key
    /// exists.
    fn key_predicates(exprs: &[Sql], names: &[Sql]) -> (Sql, Sql) {
        // Each key expression in parentheses: `a IS NULL` must not bind to what follows.
        let exprs: Vec<Sql> = exprs.iter().map(|e| sql!("({})", e)).collect();
        let tuple = if exprs.len() == 1 {
            exprs[0].clone()
        } else {
            sql!("({})", exprs.join_sql(", "))
        };
        let k_cols = qualified_by("k", names);
        let all_set = names
            .iter()
            .map(|g| sql!("k.{} IS NOT NULL", g))
            .collect::<Vec<_>>()
            .join_sql(" AND ");
        let any_null = names
            .iter()
            .map(|g| sql!("k.{} IS NULL", g))
            .collect::<Vec<_>>()
            .join_sql(" OR ");
        let nd = exprs
            .iter()
            .zip(names)
            .map(|(e, g)| sql!("k.{} IS NOT DISTINCT FROM {}", g, e))
            .collect::<Vec<_>>()
            .join_sql(" AND ");
        (
            sql!("{} IN (SELECT {} FROM \"__pgs_keys\" AS k WHERE {})", tuple, k_cols.join_sql(", "), all_set),
            sql!("(SELECT EXISTS (SELECT 1 FROM \"__pgs_keys\" AS k WHERE {0})) AND EXISTS (SELECT 1 FROM \"__pgs_keys\" AS k WHERE ({0}) AND {1})", any_null, nd),
        )
    }

    /// `EXISTS` over `__pgs_keys`: the stored row's keys (columns `names` of `st`)
    /// are among those the changes touched.
    fn touched_keys(names: &[Sql]) -> Sql {
        sql!(
            "EXISTS (SELECT 1 FROM \"__pgs_keys\" AS k WHERE {})",
            names
                .iter()
                .map(|g| sql!("st.{0} IS NOT DISTINCT FROM k.{0}", g))
                .collect::<Vec<_>>()
                .join_sql(" AND ")
        )
    }

    /// The artifacts of a strategy: the storage table and the full refresh both come
    /// from `new_rows` (the query's rows with the storage table's columns), the
    /// differential refresh is the strategy's own statement.
    fn maintained(
        &self,
        st: &Sql,
        new_rows: &NewRows,
        diff: Sql,
        hidden_columns: Vec<String>,
    ) -> Statements {
        let (state_ddl, state_resets) = self.scalar_states();
        let mut ddl = storage_ddl(st, new_rows.rows());
        ddl.extend(state_ddl);
        let stage = Statements {
            storage_ddl: ddl,
            full_refresh: diff_statement(st, self.ctx, &state_resets, new_rows, None),
            differential_refresh: Some(diff),
            hidden_columns,
        };
        self.top_artifacts(stage, new_rows, &state_resets)
    }

    /// The statement shared by the recompute strategies: collect the keys the changes
    /// touch, recompute the rows of those keys (`fresh`, with the storage table's
    /// columns), delete the stored rows of those keys (`in_keys`, over `st`) that are
    /// not among them, insert the missing ones. Under a stage, `untouched` (over `st`)
    /// keeps the stage's rows of other keys, when it is not `NOT (in_keys)`.
    fn recompute_keys(
        &mut self,
        keys: &Sql,
        fresh: &Sql,
        in_keys: &Sql,
        untouched: Option<&Sql>,
        st: &Sql,
    ) -> Sql {
        let same = "n.\"__pgs_row_id\" = st.\"__pgs_row_id\" AND n::text = st::text";
        let mut body = vec![
            sql!("\"__pgs_keys\" AS MATERIALIZED ({})", keys),
            sql!("\"__pgs_fresh\" AS MATERIALIZED ({})", fresh),
            sql!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
            sql!("\"__pgs_del\" AS (DELETE FROM {} AS st WHERE {} AND NOT EXISTS (SELECT 1 FROM \"__pgs_fresh\" AS n WHERE {}) RETURNING 1)", st, in_keys, same),
            sql!("\"__pgs_ins\" AS (INSERT INTO {0} SELECT n.* FROM \"__pgs_fresh\" AS n WHERE NOT EXISTS (SELECT 1 FROM {0} AS st WHERE {1}) RETURNING 1)", st, same),
        ];
        // Under a top-k: the stage after this refresh is its rows of other keys and
        // the recomputed ones.
        let untouched = untouched
            .cloned()
            .unwrap_or_else(|| sql!("NOT ({})", in_keys));
        let kept = sql!(
            "SELECT {} FROM {} AS st WHERE {}",
            self.stage_columns("st"),
            st,
            untouched
        );
        let new = sql!(
            "SELECT {} FROM \"__pgs_fresh\" AS n",
            self.stage_columns("n")
        );
        let tail = self.top_tail(
            &mut body,
            &kept,
            &new,
            &Sql::fixed("SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\""),
        );
        self.finish(body, &tail)
    }
}

/// One side of a join, as the delta rules read it.
#[derive(Clone, Copy)]
struct Side<'s> {
    /// Every leaf under it.
    leaves: &'s [usize],
    /// The leaves whose columns it outputs.
    out: &'s [usize],
    /// Its current contents (a subquery).
    new: &'s Sql,
    /// Its delta (a CTE name, quoted).
    delta: &'s Sql,
}

/// `"<prefix>0"`, `"<prefix>1"`, ...: the names of `n` hidden columns.
fn numbered_names(prefix: &str, n: usize) -> Vec<Sql> {
    (0..n)
        .map(|k| Sql::ident(&format!("{prefix}{k}")))
        .collect()
}

/// ` GROUP BY exprs`, or nothing when there is none (an aggregate over the whole
/// input).
fn group_by(exprs: &[Sql]) -> Sql {
    if exprs.is_empty() {
        Sql::default()
    } else {
        sql!(" GROUP BY {}", exprs.join_sql(", "))
    }
}

/// `expr AS name` for each expression and its name.
fn aliased(exprs: &[Sql], names: &[Sql]) -> Vec<Sql> {
    exprs
        .iter()
        .zip(names)
        .map(|(e, n)| sql!("{} AS {}", e, n))
        .collect()
}

/// The stored row `st` is the row `q` of the change: its row id is `row_id` and,
/// NULL-safely, its columns `keys` are `q`'s.
fn same_row(row_id: &Sql, q: &'static str, keys: &[Sql]) -> Sql {
    std::iter::once(sql!("st.\"__pgs_row_id\" = {}", row_id))
        .chain(
            keys.iter()
                .map(|k| sql!("st.{0} IS NOT DISTINCT FROM {1}.{0}", k, q)),
        )
        .collect::<Vec<_>>()
        .join_sql(" AND ")
}

/// Types that have `=` but no equality GROUP BY can use (or none at all).
const UNGROUPABLE: &[&str] = &[
    "json", "xml", "point", "box", "lseg", "line", "path", "polygon", "circle", "jsonpath",
];

/// Whether an expression contains a subquery.
fn has_subquery(e: &Expr) -> bool {
    use sqlparser::ast::Visit;
    struct Finder(bool);
    impl sqlparser::ast::Visitor for Finder {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
            if crate::sql::walk::is_subquery(e) {
                self.0 = true;
                return std::ops::ControlFlow::Break(());
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut f = Finder(false);
    let _ = e.visit(&mut f);
    f.0
}

impl Compiled {
    /// Render the SQL artifacts with the database's object ids.
    pub fn render(&self, ctx: &RenderContext) -> Artifacts {
        render(self, ctx)
    }

    /// A render context with placeholder ids (stream table 0; source oids taken from
    /// the catalog when known, else 0, 1, ...), for `explain` and snapshot tests.
    pub fn placeholder_context(&self) -> RenderContext {
        RenderContext {
            st_id: 0,
            sources: self
                .sources
                .iter()
                .enumerate()
                .map(|(i, t)| SourceBinding {
                    oid: t.oid.unwrap_or(i as u32),
                })
                .collect(),
        }
    }
}
