//! The model every pass shares: the bound operator tree ([`Block`]: leaves, a join
//! [`Tree`], a filter, output items and a [`Shape`]), the compiled stream table
//! ([`Compiled`]: output columns, sources, [`Strategy`] and what the renderer works
//! from) and what rendering produces ([`Artifacts`]). Column references inside
//! bound expressions are markers ([`marker`]).

pub(crate) mod marker;

pub use crate::analyze::OutputColumn;
use crate::catalog::Table;
use crate::spec::{QualifiedName, StreamTableSpec};
use crate::sql::fragment::Sql;
use marker as expr;
use sqlparser::ast::Expr;

/// One occurrence of a source table in the FROM clause.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    /// Index into `Compiled::sources`.
    pub source: usize,
    /// The alias the query uses (the table name when it has none).
    pub alias: String,
    /// The table. For an aggregate subquery, its output columns, the group keys as
    /// the primary key.
    pub table: Table,
    /// An aggregate subquery in FROM (`(SELECT g, agg(x) FROM t GROUP BY g) AS s`)
    /// maintained as one relation: its delta recomputes the groups the changes of
    /// `t` (the source) touch.
    pub agg: Option<AggLeaf>,
    /// A set-returning function in FROM (`unnest(o.tags) AS t(tag)`): `source` is
    /// [`FUNCTION_SOURCE`] and `table` its output columns, the ordinality last (the
    /// primary key). With arguments over other leaves it is the right side of a
    /// [`Tree::Lateral`]; without, a constant relation.
    pub func: Option<FuncLeaf>,
}

impl Leaf {
    /// Whether the leaf reads source `source`: its own, or a table its aggregate
    /// subquery joins ([`AggLeaf::joined`]).
    pub fn reads(&self, source: usize) -> bool {
        self.source == source
            || self
                .agg
                .as_ref()
                .is_some_and(|a| a.joined.iter().any(|j| j.source == source))
    }
}

/// The `source` of a function leaf: it reads no source table.
pub(crate) const FUNCTION_SOURCE: usize = usize::MAX;

/// A set-returning function in FROM, kept as a leaf: `ROWS FROM (calls) WITH
/// ORDINALITY`, its columns named after the leaf's table columns.
#[derive(Debug, Clone)]
pub(crate) struct FuncLeaf {
    /// The calls, zipped as `ROWS FROM` does (`unnest(a, b)` is two calls).
    pub calls: Vec<FuncCall>,
    /// The FROM item as written, for explain.
    pub text: String,
}

/// One function call of a [`FuncLeaf`].
#[derive(Debug, Clone)]
pub(crate) struct FuncCall {
    /// The function, schema-qualified and quoted (`pg_catalog."unnest"`).
    pub name: Sql,
    /// The bound arguments (markers of the leaves to the left of it).
    pub args: Vec<Expr>,
    /// The column definition list of a function returning `record`
    /// (`"a" integer, "b" text`).
    pub coldefs: Option<Sql>,
}

impl FuncLeaf {
    /// Every column marker of its arguments.
    pub fn markers(&self) -> Vec<(usize, usize)> {
        self.calls
            .iter()
            .flat_map(|c| c.args.iter().flat_map(expr::column_markers))
            .collect()
    }
}

/// An aggregate subquery over one table, kept as a leaf: `SELECT items FROM source
/// AS alias [WHERE filter] GROUP BY groups [HAVING having]`, all as SQL text over the
/// table's columns; or over several, `FROM source AS alias, joined...` with the
/// group keys over the first.
#[derive(Debug, Clone)]
pub(crate) struct AggLeaf {
    /// The alias of the table inside the subquery.
    pub alias: String,
    /// The output expressions, in order (their names are the leaf table's columns).
    pub items: Vec<Sql>,
    /// Its WHERE, GROUP BY and HAVING.
    pub filter: Option<Sql>,
    pub groups: Vec<Sql>,
    pub having: Option<Sql>,
    /// The output columns that are the group keys (one per GROUP BY expression).
    pub key_cols: Vec<usize>,
    /// The subquery as written, for explain.
    pub text: String,
    /// The columns of the table it reads (indices, the primary key included).
    pub used: Vec<usize>,
    /// Without `GROUP BY` and `HAVING`, when every item is `count(*)`, or `count`,
    /// `sum` or `avg` of a column whose sums are exact and of one scale (an integer,
    /// or `numeric(p, s)`), each item's inverse: its old value follows from its new
    /// one and the window's images (`aggregate_subquery`), without reading the old
    /// state.
    pub inverse: Option<Vec<Inverse>>,
    /// The tables the subquery joins beside its first (`FROM partsupp, supplier,
    /// nation WHERE ...`, the conditions in its `WHERE`), whose group keys are all
    /// over the first (the leaf's `source`). Each is read in the leaf's new and old
    /// state; its window's images touch the groups of the rows they join. Empty for
    /// an aggregate over one table.
    pub joined: Vec<JoinedTable>,
}

/// A table an aggregate leaf's subquery joins beside its first ([`AggLeaf::joined`]).
#[derive(Debug, Clone)]
pub(crate) struct JoinedTable {
    /// Index into `Compiled::sources`.
    pub source: usize,
    /// Its alias inside the subquery.
    pub alias: String,
    /// The columns of the table the subquery reads (indices, the primary key
    /// included).
    pub used: Vec<usize>,
}

/// How an item of a one-row aggregate leaf ([`AggLeaf::inverse`]) is undone.
#[derive(Debug, Clone)]
pub(crate) enum Inverse {
    /// `count(*)`, or `count(x)` with its argument.
    Count(Option<Sql>),
    /// `sum(x)`.
    Sum(Sql),
    /// `avg(x)`: its sum over its count, both as numeric.
    Avg(Sql),
}

/// Kinds of join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    /// `EXISTS` / `IN (subquery)`: left rows with a match, once each.
    Semi,
    /// `NOT EXISTS` / `NOT IN (subquery)`: left rows without a match.
    Anti,
}

impl JoinKind {
    pub fn sql(self) -> &'static str {
        match self {
            JoinKind::Inner => "JOIN",
            JoinKind::Left => "LEFT JOIN",
            JoinKind::Right => "RIGHT JOIN",
            JoinKind::Full => "FULL JOIN",
            JoinKind::Semi => "SEMI JOIN",
            JoinKind::Anti => "ANTI JOIN",
        }
    }
}

/// The FROM clause as a tree.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Tree {
    Leaf(usize),
    /// The WHERE of an inlined subquery or CTE, applied inside the join tree.
    Filter {
        input: Box<Tree>,
        pred: Expr,
        /// `pred` as explain shows it (`marker::shown`).
        text: Sql,
    },
    Join {
        kind: JoinKind,
        left: Box<Tree>,
        right: Box<Tree>,
        on: Expr,
        /// The condition as explain shows it: the query's own text, or
        /// `marker::shown` of `on` once pushdown changed it.
        on_text: Sql,
    },
    /// A set-returning function (leaf `func`) applied to each row of `input`
    /// (`FROM o, jsonb_array_elements(o.items)`, `CROSS JOIN LATERAL`, `LEFT JOIN
    /// LATERAL ... ON`): `kind` is `Inner` or `Left`.
    Lateral {
        kind: JoinKind,
        input: Box<Tree>,
        func: usize,
        on: Expr,
        /// The condition as explain shows it: the query's own text, or
        /// `marker::shown` of `on` once pushdown changed it.
        on_text: Sql,
    },
}

impl Tree {
    /// Leaves whose columns this subtree outputs (a semi or anti join outputs only
    /// its left side).
    pub fn out_leaves(&self) -> Vec<usize> {
        match self {
            Tree::Leaf(i) => vec![*i],
            Tree::Filter { input, .. } => input.out_leaves(),
            Tree::Join {
                kind: JoinKind::Semi | JoinKind::Anti,
                left,
                ..
            } => left.out_leaves(),
            Tree::Join { left, right, .. } => [left.out_leaves(), right.out_leaves()].concat(),
            Tree::Lateral { input, func, .. } => [input.out_leaves(), vec![*func]].concat(),
        }
    }

    /// Column markers of the join conditions and filters inside this subtree.
    pub fn condition_markers(&self, out: &mut Vec<(usize, usize)>) {
        match self {
            Tree::Leaf(_) => {}
            Tree::Filter { input, pred, .. } => {
                out.extend(expr::column_markers(pred));
                input.condition_markers(out);
            }
            Tree::Join {
                left, right, on, ..
            } => {
                out.extend(expr::column_markers(on));
                left.condition_markers(out);
                right.condition_markers(out);
            }
            Tree::Lateral { input, on, .. } => {
                out.extend(expr::column_markers(on));
                input.condition_markers(out);
            }
        }
    }

    /// Leaves of this subtree, left to right.
    pub fn leaves(&self) -> Vec<usize> {
        match self {
            Tree::Leaf(i) => vec![*i],
            Tree::Filter { input, .. } => input.leaves(),
            Tree::Join { left, right, .. } => [left.leaves(), right.leaves()].concat(),
            Tree::Lateral { input, func, .. } => [input.leaves(), vec![*func]].concat(),
        }
    }
}

/// Aggregate functions with a counter strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggFunc {
    CountStar,
    Count,
    Sum,
    Avg,
    /// Any other aggregate (MIN, MAX, string_agg, count(DISTINCT ...), FILTER, ...):
    /// maintained by recomputing the affected groups.
    Other,
}

/// One aggregate call of an aggregate block.
#[derive(Debug, Clone)]
pub(crate) struct AggCall {
    pub func: AggFunc,
    /// The bound argument (`None` for `count(*)`).
    pub arg: Option<Expr>,
    /// The bound call as a whole (used by the full-refresh query).
    pub call: Expr,
    /// The call as the user wrote it.
    pub text: String,
}

/// Projection or aggregation on top of the join tree.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Shape {
    Project,
    /// Window functions: recompute the partitions (keys, bound) the changes touch;
    /// no keys means the whole result.
    Window {
        partition: Vec<Expr>,
        /// `SELECT DISTINCT ON (partition) ... ORDER BY ...`: one row per partition,
        /// the first in this order (bound expressions, each with its `ASC`/`DESC`
        /// and `NULLS` options as SQL text). The items hold no window function then.
        distinct_on: Option<Vec<(Expr, Sql)>>,
    },
    /// UNION [ALL], INTERSECT [ALL], EXCEPT [ALL] of projection blocks (the block's
    /// own tree, filter and items are those of the first branch).
    SetOp {
        op: SetOpKind,
        all: bool,
        branches: Vec<Block>,
    },
    Aggregate {
        groups: Vec<Expr>,
        /// The group keys as explain shows them.
        group_texts: Vec<Sql>,
        aggs: Vec<AggCall>,
        /// HAVING, over group and aggregate markers.
        having: Option<Expr>,
        /// Recompute the affected groups instead of maintaining counters (some
        /// aggregate has no counter rule, or there is a HAVING clause).
        recompute: bool,
    },
}

/// Set operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetOpKind {
    Union,
    Intersect,
    Except,
}

impl SetOpKind {
    pub fn sql(self) -> &'static str {
        match self {
            SetOpKind::Union => "UNION",
            SetOpKind::Intersect => "INTERSECT",
            SetOpKind::Except => "EXCEPT",
        }
    }
}

/// A bound SELECT block.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub leaves: Vec<Leaf>,
    pub tree: Tree,
    pub filter: Option<Expr>,
    /// The WHERE as explain shows it (the query's own text, or `marker::shown`).
    pub filter_text: Option<Sql>,
    /// Output columns: name and bound expression (markers for aggregates/groups in
    /// an aggregate block).
    pub items: Vec<(String, Expr)>,
    pub shape: Shape,
}

impl Block {
    /// Whether the rows of a projection are identified by the primary keys of its
    /// leaves (`strategy::project`): every leaf whose columns it outputs has a primary
    /// key or is an aggregate leaf (a one-row one is keyed by nothing), and one has a
    /// key at least. Otherwise its result is a bag (`project_bag`).
    pub(crate) fn keyed_rows(&self) -> bool {
        let out = self.tree.out_leaves();
        out.iter().all(|&i| {
            let l = &self.leaves[i];
            !l.table.primary_key.is_empty() || l.agg.is_some()
        }) && out
            .iter()
            .any(|&i| !self.leaves[i].table.primary_key.is_empty())
    }
}

/// How the stream table as a whole is maintained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Delta rules per operator: work follows the changes.
    Incremental,
    /// Recompute the query when its sources changed, and apply only the difference.
    RecomputeDiff {
        /// Why no delta rule applies (e.g. `WITH RECURSIVE`).
        reason: String,
    },
    /// FULL mode: recompute on every refresh and apply only the difference.
    Full,
}

/// `ORDER BY ... LIMIT n` at the top of an aggregate query, or of a projection with
/// keyed rows (`Block::keyed_rows`), maintained over a stage: the block without its
/// `ORDER BY` and `LIMIT` is kept in a stage table
/// (`contract::stage_table`) by its own delta rules, and the stream table holds the
/// first `n` rows of the stage in that order, recomputed from the stage's state
/// after each refresh (an index on the stage's `ORDER BY` columns reads `n` rows).
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    /// The `ORDER BY` items: an output column (index into the block's items) and
    /// its options as SQL (` DESC NULLS LAST`, or empty).
    pub order: Vec<(usize, Sql)>,
    /// The `LIMIT` count.
    pub limit: u64,
    /// `ORDER BY ... LIMIT n` as written, for explain.
    pub text: String,
}

/// What a stream table over a stage holds (see [`Compiled::over_stage`]).
#[derive(Debug, Clone)]
pub(crate) enum OverStage {
    /// The first `n` rows of the stage.
    TopK(TopK),
    /// The query around the stage.
    Query(OuterQuery),
}

/// The query around an aggregate relation it reads (a subquery in FROM, a CTE or a
/// view with `GROUP BY`: TPC-H Q13's counts per customer, Q15's revenue per
/// supplier), when the query as a whole has no delta rule. The relation is the
/// block, kept in the stage table by its delta rules; the stream table holds the
/// query evaluated over the stage's state after the refresh (and the current rows of
/// the other relations it reads), recomputed on every refresh with changes, and
/// only the difference applied. Its cost is that of the query over the stage's rows
/// (one per group), not over the relation's sources.
#[derive(Debug, Clone)]
pub(crate) struct OuterQuery {
    /// The query, its tables qualified, where every occurrence of the relation's
    /// body reads the visible columns of the CTE [`OuterQuery::STAGE`].
    pub sql: Sql,
    /// The relation as written, for explain.
    pub text: String,
}

impl OuterQuery {
    /// The name of the CTE the outer query reads the stage's rows from.
    pub const STAGE: &'static str = "__pgs_stage";
}

/// What the renderer works from.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Body {
    /// A bound block maintained by delta rules.
    Incremental(Block),
    /// The user's query with every table reference schema-qualified and quoted.
    Recompute {
        query_sql: Sql,
        /// A recursive query that insert-only windows extend semi-naively.
        seminaive: Option<crate::analyze::recursive::SemiNaive>,
    },
}

/// A compiled stream table.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// What was compiled.
    pub spec: StreamTableSpec,
    /// Output columns, in order.
    pub columns: Vec<OutputColumn>,
    /// The distinct source tables, in order of first appearance.
    pub sources: Vec<Table>,
    /// The strategy of the root.
    pub strategy: Strategy,
    /// The functions the query calls (`(schema, name)`, lower case; the schema when
    /// written), for the runtime to check their volatility in the live database.
    pub functions: Vec<(Option<String>, String)>,
    /// The defining query as compiled: the views it reads expanded in place into
    /// their bodies as subqueries (`(body) AS alias`); the query itself when it reads
    /// no view.
    pub expanded_query: String,
    /// The views the query reads, expanded into `expanded_query`: those it names and
    /// those their bodies read, each once, in order of first appearance. The runtime
    /// records their definitions at creation: a stream table maintains the bodies as
    /// they were then, so a later redefinition is drift (`pgstream._drift`).
    pub views: Vec<QualifiedName>,
    pub(crate) body: Body,
    /// What the stream table holds when the block (`Body::Incremental`) is kept in a
    /// stage table: the first rows of a top-level `ORDER BY ... LIMIT`, or the query
    /// around an aggregate relation.
    pub(crate) over_stage: Option<OverStage>,
}

impl Compiled {
    /// Whether the refresh reads columns of the sources that the delta rules do not
    /// read (`buffer_columns` does not name them): the query around a stage reads
    /// its other relations whole ([`OuterQuery`]). The columns a stream table uses
    /// are then found by the general probe, not from the buffer columns.
    pub fn reads_beyond_buffers(&self) -> bool {
        matches!(self.over_stage, Some(OverStage::Query(_)))
    }

    /// The columns of source `source` (an index into [`Compiled::sources`]) that the
    /// differential refresh reads from its change buffer, in the table's column order:
    /// every column the query uses, and the primary key (the net effect per key is
    /// computed on it). A buffer holds the union of what its consumers need: the
    /// capture copies only those columns. Columns it does not read are NULL in the
    /// deltas.
    pub fn buffer_columns(&self, source: usize) -> Vec<String> {
        let Some(table) = self.sources.get(source) else {
            return Vec::new();
        };
        let mut used = vec![false; table.columns.len()];
        for (i, c) in table.columns.iter().enumerate() {
            used[i] = table.primary_key.contains(&c.name);
        }
        if let Body::Recompute {
            seminaive: Some(sn),
            ..
        } = &self.body
        {
            // The inserted rows of the windows are joined like the tables.
            return sn
                .read_columns(table)
                .into_iter()
                .map(str::to_string)
                .collect();
        }
        if let Body::Incremental(b) = &self.body {
            // An aggregate subquery's delta recomputes its groups from the window
            // rows: the columns it reads.
            let mut branches = vec![b];
            if let Shape::SetOp { branches: bs, .. } = &b.shape {
                branches.extend(bs.iter());
            }
            for br in branches {
                for l in &br.leaves {
                    let Some(a) = &l.agg else { continue };
                    let reads = (l.source == source).then_some(&a.used).into_iter().chain(
                        a.joined
                            .iter()
                            .filter(|j| j.source == source)
                            .map(|j| &j.used),
                    );
                    for cols in reads {
                        for &c in cols {
                            if let Some(u) = used.get_mut(c) {
                                *u = true;
                            }
                        }
                    }
                }
            }
            let mut marks = Vec::new();
            block_markers(b, &mut marks);
            for (leaf, col) in marks {
                if let Some(l) = b.leaves.get(leaf) {
                    if l.source == source && l.agg.is_none() {
                        if let Some(u) = used.get_mut(col) {
                            *u = true;
                        }
                    }
                }
            }
        }
        table
            .columns
            .iter()
            .zip(used)
            .filter(|(_, u)| *u)
            .map(|(c, _)| c.name.clone())
            .collect()
    }
}

/// Every column marker (leaf, column) in a block: its join tree, filter, output
/// items, and the expressions of its shape (set-operation branches included).
pub(crate) fn block_markers(b: &Block, out: &mut Vec<(usize, usize)>) {
    b.tree.condition_markers(out);
    for l in &b.leaves {
        if let Some(f) = &l.func {
            out.extend(f.markers());
        }
    }
    if let Some(f) = &b.filter {
        out.extend(expr::column_markers(f));
    }
    for (_, e) in &b.items {
        out.extend(expr::column_markers(e));
    }
    match &b.shape {
        Shape::Project => {}
        Shape::Window {
            partition,
            distinct_on,
        } => {
            for e in partition {
                out.extend(expr::column_markers(e));
            }
            for (e, _) in distinct_on.iter().flatten() {
                out.extend(expr::column_markers(e));
            }
        }
        Shape::SetOp { branches, .. } => {
            for br in branches {
                block_markers(br, out);
            }
        }
        Shape::Aggregate {
            groups,
            aggs,
            having,
            ..
        } => {
            for e in groups.iter().chain(having) {
                out.extend(expr::column_markers(e));
            }
            for a in aggs {
                if let Some(e) = &a.arg {
                    out.extend(expr::column_markers(e));
                }
                out.extend(expr::column_markers(&a.call));
            }
        }
    }
}

/// Object ids that only the database knows, supplied by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderContext {
    /// The stream table's id in `pgstream.pgs_stream_tables`.
    pub st_id: i64,
    /// One binding per entry of [`Compiled::sources`], in the same order.
    pub sources: Vec<SourceBinding>,
}

/// Where a source table's changes are buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceBinding {
    /// The source table's OID; its buffer is `pgstream_changes.changes_<oid>`.
    pub oid: u32,
}

/// The SQL that creates and maintains one stream table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifacts {
    /// Statements that create the (empty) storage table and its indexes.
    pub storage_ddl: Vec<String>,
    /// One statement, returning one `bigint` (rows changed): recompute the query,
    /// apply the difference to the storage table, and set every frontier of this
    /// stream table to the statement's snapshot.
    pub full_refresh: String,
    /// One statement, returning one `bigint` (rows changed): apply the changes in the
    /// window of each source and advance the frontiers. `None` in FULL mode.
    pub differential_refresh: Option<String>,
    /// The hidden columns of the storage table (all start with `__pgs_`).
    pub hidden_columns: Vec<String>,
    /// `CREATE FUNCTION` of the stream table's refresh function (see
    /// [`crate::contract::refresh_function`]): the window count and the differential refresh
    /// as static SQL, planned once per session. `None` in FULL mode.
    pub refresh_function: Option<String>,
}
