//! Rendering: the only place in the core that writes SQL text.
//!
//! Every relation a delta term reads exposes the columns of its leaves under
//! uniform names, `__pgs_c<leaf>_<col>`, so any bound expression can be rendered
//! against any of them. Deltas are Z-sets: each row carries a weight `__pgs_w`
//! (+1 or −1). All refresh statements are a single SQL statement (data-modifying
//! CTEs) that returns the number of storage rows changed and advances the frontiers:
//! whatever the caller's isolation level, one statement sees one snapshot.

use crate::catalog::Table;
use crate::contract;
use crate::ir::marker::{self as expr, raw, Marker};
use crate::ir::{
    AggFunc, Artifacts, Block, Body, Compiled, JoinKind, RenderContext, SetOpKind, Shape, Strategy,
    Tree,
};
use crate::sql::ident::{quote_ident as qi, quote_qualified};
use crate::sql::walk::{conjuncts, unnest};
use sqlparser::ast::{BinaryOperator, Expr};

const W: &str = "\"__pgs_w\"";

fn col(leaf: usize, col: usize) -> String {
    qi(&format!("__pgs_c{leaf}_{col}"))
}

/// The select item of a source column under the uniform name `alias`: `q.column` when
/// the query reads it (it is in `needed`), else [`UNREAD`], so that the statement
/// does not name a column the query does not use.
fn unread_null(q: &str, c: &crate::catalog::Column, needed: &[String], alias: String) -> String {
    if needed.contains(&c.name) {
        format!("{q}.{} AS {alias}", qi(&c.name))
    } else {
        format!("{UNREAD} AS {alias}")
    }
}

/// What stands for a column the query does not read: its type is not named either,
/// so that nothing depends on it.
const UNREAD: &str = "NULL::pg_catalog.text";

/// Test only: make row ids collide (see [`crate::testing`]).
pub(crate) static WEAK_ROW_HASH: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The hash a row id is made of: `hashtextextended(text, seed)`, or, when the test
/// switch is on, the same reduced to three values, so that different rows share ids
/// and the key and content checks that follow every id match must keep them apart.
fn row_hash(text: &str, seed: &str) -> String {
    if WEAK_ROW_HASH.load(std::sync::atomic::Ordering::Relaxed) {
        format!("(pg_catalog.hashtextextended({text}, {seed}) % 3)")
    } else {
        format!("pg_catalog.hashtextextended({text}, {seed})")
    }
}

/// Rows of `inner` numbered among equal rows (`__pgs_n`), with a row id from the
/// whole row's text and that number: the identity of rows that have no key.
fn numbered(inner: &str) -> String {
    format!(
        "SELECT q2.*, {} AS \"__pgs_row_id\" FROM (SELECT q.*, row_number() OVER (PARTITION BY ROW(q.*)::text) AS \"__pgs_n\" FROM ({inner}) AS q) AS q2",
        row_hash("ROW(q2.*)::text", "q2.\"__pgs_n\"")
    )
}

fn row_id_of(exprs: &[String]) -> String {
    if exprs.is_empty() {
        "0::bigint".to_string()
    } else {
        row_hash(&format!("ROW({})::text", exprs.join(", ")), "0")
    }
}

pub(crate) fn render(c: &Compiled, ctx: &RenderContext) -> Artifacts {
    let st = quote_qualified(&c.spec.name);
    let mut a = match &c.body {
        Body::Incremental(block) => Inc {
            c,
            b: block,
            ctx,
            ctes: Vec::new(),
            st: st.clone(),
        }
        .artifacts(),
        Body::Recompute { query_sql, .. } => recompute_artifacts(c, ctx, &st, query_sql),
    };
    // Output columns the compiler proved non-nullable are NOT NULL in the storage
    // table, so that `sqlx::query_as!` over it infers the field types the attribute
    // checks (`i64`, not `Option<i64>`), and a wrong inference fails loudly at the
    // refresh instead of as a decoding error in the application.
    let not_null: Vec<String> = c
        .columns
        .iter()
        .filter(|col| col.nullable == Some(false))
        .map(|col| format!("ALTER COLUMN {} SET NOT NULL", qi(&col.name)))
        .collect();
    if !not_null.is_empty() {
        a.storage_ddl
            .insert(1, format!("ALTER TABLE {st} {}", not_null.join(", ")));
    }
    if let Body::Recompute {
        seminaive: Some(sn),
        ..
    } = &c.body
    {
        // The semi-naive step joins the stored result on these columns.
        for col in &sn.lookup_columns {
            a.storage_ddl
                .push(format!("CREATE INDEX ON {st} ({})", qi(col)));
        }
    }
    let insert_only = match &c.body {
        Body::Recompute {
            seminaive: Some(sn),
            ..
        } => {
            let outputs: Vec<String> = c.columns.iter().map(|c| c.name.clone()).collect();
            Some(
                sn.render(&crate::seminaive::Inputs {
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
    a.refresh_function = a
        .differential_refresh
        .as_deref()
        .map(|d| refresh_function(ctx, d, insert_only.as_deref()));
    a
}

/// The stream table's refresh function (see [`contract::refresh_function`]).
/// JIT compilation is off: the estimates of refresh statements (many CTEs, recursive
/// ones) cross `jit_above_cost` while they run in milliseconds, and compiling them
/// took seconds (measured: a semi-naive refresh of one row, 2.4 s with JIT, 18 ms
/// without).
/// `variable_conflict use_column`: a column of the user's query named like one of
/// the function's variables stays a column (the variables are `pgs_`-prefixed).
fn refresh_function(ctx: &RenderContext, differential: &str, insert_only: Option<&str>) -> String {
    let count = (0..ctx.sources.len())
        .map(|s| {
            format!(
                "(SELECT count(*) FROM (SELECT 1 FROM ({}) AS w LIMIT $1) AS w)",
                window_rows_sql(ctx, s)
            )
        })
        .collect::<Vec<_>>()
        .join("\n        + ");
    let trims = (0..ctx.sources.len())
        .map(|s| trim_sql(ctx.sources[s].oid))
        .collect::<Vec<_>>()
        .join("\n");
    let body = format!(
        "
#variable_conflict use_column
BEGIN
    -- Generated by pgstream: the differential refresh of stream table {id} as a
    -- static statement, planned once per session.
    pgs_window_rows := {count};
    IF pgs_window_rows = 0 OR pgs_window_rows >= $1 THEN
        RETURN;
    END IF;
{apply}
    -- Trim the buffers: static statements too (see pgstream._trim_buffer).
{trims}
    pgs_trimmed := true;
END
",
        id = ctx.st_id,
        apply = match insert_only {
            None => format!("{differential}\n    INTO pgs_rows_changed;"),
            Some(ins) => {
                let no_deletes = (0..ctx.sources.len())
                    .map(|s| {
                        format!(
                            "NOT EXISTS (SELECT 1 FROM ({}) AS w WHERE w.{W} < 0)",
                            window_rows_sql(ctx, s)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n       AND ");
                format!(
                    "    -- Only inserts: derive the new rows semi-naively and append them.\n    \
                     IF {no_deletes} THEN\n{ins}\n    INTO pgs_rows_changed;\n        \
                     pgs_strategy := 'DIFFERENTIAL (insert-only, semi-naive)';\n    \
                     ELSE\n{differential}\n    INTO pgs_rows_changed;\n    END IF;"
                )
            }
        }
    );
    let mut tag = "$pgs$".to_string();
    let mut i = 0;
    while body.contains(&tag) {
        i += 1;
        tag = format!("$pgs{i}$");
    }
    format!(
        "CREATE FUNCTION {}.{}(bigint, OUT pgs_rows_changed bigint, OUT pgs_window_rows bigint, OUT pgs_strategy text, OUT pgs_trimmed boolean) \
         LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp SET jit = off AS {tag}{body}{tag}",
        qi(contract::CATALOG_SCHEMA),
        qi(&contract::refresh_function(ctx.st_id)),
    )
}

/// Delete the buffer rows of one source that every consumer's frontier covers: the
/// static form of `pgstream._trim_buffer` (which documents the rule), run by the
/// refresh function after a differential refresh. It first waits for a creation
/// that is adding a consumer of the source (that holds the source's row in
/// `pgs_sources` FOR UPDATE until it commits); the DELETE then sees its frontier.
fn trim_sql(oid: u32) -> String {
    format!(
        "    PERFORM 1 FROM {cat}.\"pgs_sources\" AS s WHERE s.\"source_oid\" = {oid} FOR SHARE;
    DELETE FROM {chg}.{buf} AS b WHERE NOT EXISTS (SELECT 1 FROM {cat}.{fr} AS f WHERE f.\"source_oid\" = {oid} \
AND (f.\"frontier\" IS NULL OR NOT pg_catalog.pg_visible_in_snapshot(b.{xid}, f.\"frontier\") \
OR (b.{xid} = f.\"own_xid\" AND b.{cid} > COALESCE(f.\"own_change\", -1))));",
        cat = qi(contract::CATALOG_SCHEMA),
        chg = qi(contract::CHANGES_SCHEMA),
        buf = qi(&contract::buffer_table(oid)),
        fr = qi(contract::FRONTIERS_TABLE),
        xid = qi(contract::XID),
        cid = qi(contract::CHANGE_ID),
    )
}

/// Advance every frontier of the stream table to the statement's snapshot. A
/// transaction that wrote source rows before this refresh sees them and applies them
/// here, but its snapshot counts its own xid as uncommitted, so the next window would
/// hold them again: the refresh records its xid and, per source, the highest change
/// id of its own rows it consumed (all of them that it can see), which windows skip.
/// A refresh whose transaction had no xid when it started has no such rows: the
/// caller then sets `pgstream.no_own_rows` to `on`, and the scans of the buffers for
/// them are skipped (their subqueries are init plans, run only when reached).
fn frontier_advance(ctx: &RenderContext) -> String {
    let own = "pg_catalog.pg_current_xact_id_if_assigned()";
    let per_source: Vec<String> = ctx
        .sources
        .iter()
        .map(|b| {
            format!(
                "WHEN {} THEN (SELECT max(c.{}) FROM {}.{} AS c WHERE c.{} = {own})",
                b.oid,
                qi(contract::CHANGE_ID),
                qi(contract::CHANGES_SCHEMA),
                qi(&contract::buffer_table(b.oid)),
                qi(contract::XID)
            )
        })
        .collect();
    format!(
        "UPDATE {}.{} AS f SET \"frontier\" = pg_catalog.pg_current_snapshot(), \"own_xid\" = {own}, \"own_change\" = CASE WHEN pg_catalog.current_setting('pgstream.no_own_rows', true) = 'on' THEN NULL ELSE CASE f.\"source_oid\" {} END END WHERE f.\"st_id\" = {} RETURNING 1",
        qi(contract::CATALOG_SCHEMA),
        qi(contract::FRONTIERS_TABLE),
        per_source.join(" "),
        ctx.st_id
    )
}

/// The buffer rows of one source in this refresh's window: for the last refresh's own
/// transaction, its rows after the change id that refresh consumed (its snapshot may
/// or may not count its own xid as seen: PostgreSQL 18 does, 15 does not); for every
/// other transaction, the rows not visible in the last frontier.
/// `xid >= xmin(frontier)` excludes nothing (older xids are visible in it); it lets an
/// index on the xid serve the scan where a buffer has one (created before catalog v5).
/// For a source with a primary key the window is reduced to its net effect per key:
/// the Z-set sum of all its images (old ones −1, new ones +1), consolidated per
/// image of the buffer columns this consumer reads (`buffer_columns`, the key among
/// them). The images of one key form a chain from the state before the window to
/// the state after it, so the sum telescopes to "−(image before) +(image after)"
/// whatever order the images were captured in: at most one old and one new image
/// per key, and a row updated many times weighs like one update in every join term.
/// The capture order is not the order of the modifications when statements nest (an
/// RI action, a trigger writing its own table, a writable CTE): their statement
/// triggers fire in another order, and the command ids are no total order either.
/// Images are compared column by column: directly for types whose equality is
/// identity ([`exact_equality`]), by their text under the "C" collation for the
/// others, so types without equality (json, point, xml) work and `1.0` is told
/// apart from `1.00`. The row kept for a consolidated image is one whose weight is
/// the net weight. The test is one boolean column (`__pgs_keep`), not two equalities
/// in the outer filter: the planner estimates a filter on a boolean without
/// statistics at half the rows, but two equalities on window results at 1/40,000 of
/// them, and a window of thousands of rows estimated at one row led it to nested
/// loops that scanned a whole source once per changed row (TPC-H Q14 at scale 0.1:
/// 24 s for 406 changed parts, 0.1 s with the boolean).
fn window_sql(
    ctx: &RenderContext,
    source: usize,
    table: Option<&Table>,
    buffer_columns: &[String],
) -> String {
    let raw = window_rows_sql(ctx, source);
    let Some(table) = table.filter(|t| !t.primary_key.is_empty()) else {
        return raw;
    };
    let mut image: Vec<String> = table
        .primary_key
        .iter()
        .map(|k| format!("w.{}", qi(k)))
        .collect();
    image.extend(
        table
            .columns
            .iter()
            .filter(|c| buffer_columns.contains(&c.name) && !table.primary_key.contains(&c.name))
            .map(|c| {
                if exact_equality(&c.sql_type) {
                    format!("w.{}", qi(&c.name))
                } else {
                    format!("(w.{}::text COLLATE \"C\")", qi(&c.name))
                }
            }),
    );
    let image = image.join(", ");
    format!(
        "SELECT n.* FROM (SELECT w.*, (row_number() OVER (PARTITION BY {image}, w.{W}) = 1 \
         AND w.{W} = sum(w.{W}) OVER (PARTITION BY {image})) AS \"__pgs_keep\" FROM ({raw}) AS w) AS n \
         WHERE n.\"__pgs_keep\""
    )
}

/// Whether two values of type `sql_type` (as `format_type` prints it) that are
/// equal by the type's default equality are the same value: integers, booleans,
/// dates, timestamps, uuids, bytea. Not numeric (`1.0 = 1.00`), floats (`-0 = 0`),
/// text (a nondeterministic collation), nor types without equality.
fn exact_equality(sql_type: &str) -> bool {
    matches!(
        sql_type,
        "smallint"
            | "integer"
            | "bigint"
            | "int"
            | "int2"
            | "int4"
            | "int8"
            | "boolean"
            | "bool"
            | "date"
            | "uuid"
            | "oid"
            | "bytea"
            | "timestamp without time zone"
            | "timestamp with time zone"
            | "timestamp"
            | "timestamptz"
    )
}

/// Every buffer row of one source in this refresh's window (see [`window_sql`]),
/// before the reduction to the net effect.
fn window_rows_sql(ctx: &RenderContext, source: usize) -> String {
    let oid = ctx.sources[source].oid;
    format!(
        "SELECT b.* FROM {}.{} AS b, (SELECT f.\"frontier\", f.\"own_xid\", f.\"own_change\" FROM {}.{} AS f WHERE f.\"st_id\" = {} AND f.\"source_oid\" = {}) AS f \
         WHERE b.{xid} >= pg_catalog.pg_snapshot_xmin(f.\"frontier\") \
         AND CASE WHEN b.{xid} = f.\"own_xid\" THEN b.{cid} > COALESCE(f.\"own_change\", -1) \
         ELSE NOT pg_catalog.pg_visible_in_snapshot(b.{xid}, f.\"frontier\") END",
        qi(contract::CHANGES_SCHEMA),
        qi(&contract::buffer_table(oid)),
        qi(contract::CATALOG_SCHEMA),
        qi(contract::FRONTIERS_TABLE),
        ctx.st_id,
        oid,
        xid = qi(contract::XID),
        cid = qi(contract::CHANGE_ID),
    )
}

/// The statement that recomputes `new_rows` (which yields exactly the storage
/// table's columns, `__pgs_row_id` among them) and applies the difference: storage
/// rows equal to a new row (same row id, same text of the whole row) are kept, the
/// others deleted, the missing ones inserted.
fn diff_statement(
    st: &str,
    ctx: &RenderContext,
    leading_ctes: &[(String, String)],
    new_rows: &str,
    gate: Option<&str>,
) -> String {
    let mut ctes: Vec<String> = leading_ctes
        .iter()
        .map(|(n, b)| format!("{} AS MATERIALIZED ({b})", qi(n)))
        .collect();
    let gate_where = gate.map(|g| format!(" WHERE {g}")).unwrap_or_default();
    let gate_and = gate.map(|g| format!("{g} AND ")).unwrap_or_default();
    ctes.push(format!("\"__pgs_adv\" AS ({})", frontier_advance(ctx)));
    ctes.push(format!(
        "\"__pgs_new\" AS MATERIALIZED (SELECT nr.* FROM ({new_rows}) AS nr{gate_where})"
    ));
    // Each row's text (what tells rows apart, whatever their types) is computed once
    // per side and kept: the stored rows' with their ctid, by which the DELETE then
    // fetches the rows that have no equal among the new ones.
    ctes.push(format!(
        "\"__pgs_old\" AS MATERIALIZED (SELECT st.ctid AS \"__pgs_tid\", st.\"__pgs_row_id\" AS \"__pgs_id\", st::text AS \"__pgs_txt\" FROM {st} AS st{gate_where})"
    ));
    ctes.push(
        "\"__pgs_newt\" AS MATERIALIZED (SELECT n.\"__pgs_row_id\" AS \"__pgs_id\", n::text AS \"__pgs_txt\" FROM \"__pgs_new\" AS n)".to_string(),
    );
    ctes.push(format!(
        "\"__pgs_del\" AS (DELETE FROM {st} AS st WHERE {gate_and}st.ctid = ANY (ARRAY(SELECT o.\"__pgs_tid\" FROM \"__pgs_old\" AS o \
         WHERE NOT EXISTS (SELECT 1 FROM \"__pgs_newt\" AS n WHERE n.\"__pgs_id\" = o.\"__pgs_id\" AND n.\"__pgs_txt\" = o.\"__pgs_txt\"))) RETURNING 1)"
    ));
    ctes.push(format!(
        "\"__pgs_ins\" AS (INSERT INTO {st} SELECT n.* FROM \"__pgs_new\" AS n WHERE NOT EXISTS (SELECT 1 FROM \"__pgs_old\" AS o \
         WHERE o.\"__pgs_id\" = n.\"__pgs_row_id\" AND o.\"__pgs_txt\" = n::text) RETURNING 1)"
    ));
    format!(
        "WITH {}\nSELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"",
        ctes.join(",\n")
    )
}

fn storage_ddl(st: &str, new_rows: &str) -> Vec<String> {
    vec![
        format!("CREATE TABLE {st} AS SELECT nr.* FROM ({new_rows}) AS nr WITH NO DATA"),
        format!("CREATE INDEX ON {st} (\"__pgs_row_id\")"),
    ]
}

fn recompute_artifacts(c: &Compiled, ctx: &RenderContext, st: &str, query_sql: &str) -> Artifacts {
    // The compiled output columns, by position (a column alias list) and named as
    // compiled: a `*` the compiler could not expand (over a subquery, or a join with
    // `USING`) then still gives the compiled columns after a column is added to a
    // source. (Output names are distinct: `plan::compile` refuses duplicates.)
    let names: Vec<String> = c.columns.iter().map(|c| qi(&c.name)).collect();
    let query_sql = format!(
        "SELECT {} FROM ({query_sql}) AS \"__pgs_q\"({})",
        names
            .iter()
            .map(|n| format!("\"__pgs_q\".{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        names.join(", ")
    );
    // Duplicate rows are told apart by their ordinal among equal rows.
    let new_rows = numbered(&query_sql);
    let full = diff_statement(st, ctx, &[], &new_rows, None);
    let differential = match c.strategy {
        Strategy::RecomputeDiff { .. } => {
            let wins: Vec<(String, String)> = (0..c.sources.len())
                .map(|s| (format!("__pgs_win{s}"), window_sql(ctx, s, None, &[])))
                .collect();
            let gate = format!(
                "(SELECT {})",
                wins.iter()
                    .map(|(n, _)| format!("EXISTS (SELECT 1 FROM {})", qi(n)))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            );
            Some(diff_statement(st, ctx, &wins, &new_rows, Some(&gate)))
        }
        _ => None,
    };
    Artifacts {
        storage_ddl: storage_ddl(st, &new_rows),
        full_refresh: full,
        differential_refresh: differential,
        hidden_columns: vec!["__pgs_n".into(), contract::ROW_ID.into()],
        refresh_function: None,
    }
}

/// Renderer of a block maintained by delta rules.
struct Inc<'a> {
    c: &'a Compiled,
    b: &'a Block,
    ctx: &'a RenderContext,
    ctes: Vec<(String, String)>,
    st: String,
}

impl Inc<'_> {
    /// Columns of a subtree: (leaf, col) pairs in order.
    fn cols(&self, t: &Tree) -> Vec<(usize, usize)> {
        t.out_leaves()
            .into_iter()
            .flat_map(|l| (0..self.b.leaves[l].table.columns.len()).map(move |c| (l, c)))
            .collect()
    }

    /// A subquery with the current contents of a subtree.
    fn new_rel(&self, t: &Tree) -> String {
        match t {
            Tree::Filter { input, pred, .. } => {
                let sel: Vec<String> = self
                    .cols(t)
                    .into_iter()
                    .map(|(l, c)| format!("l.{}", col(l, c)))
                    .collect();
                format!(
                    "(SELECT {} FROM {} AS l WHERE {})",
                    sel.join(", "),
                    self.new_rel(input),
                    self.x(pred, "l")
                )
            }
            Tree::Leaf(i) if self.b.leaves[*i].agg.is_some() => {
                let base = &self.c.sources[self.b.leaves[*i].source];
                format!("({})", self.agg_sql(*i, &quote_qualified(&base.name), None))
            }
            Tree::Leaf(i) => {
                let l = &self.b.leaves[*i];
                // Only the columns the query reads are named: a column it does not
                // read may be dropped, renamed or retyped without breaking anything.
                let needed = self.c.buffer_columns(l.source);
                let cols: Vec<String> = l
                    .table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(j, c)| unread_null("t", c, &needed, col(*i, j)))
                    .collect();
                format!(
                    "(SELECT {} FROM {} AS t)",
                    cols.join(", "),
                    quote_qualified(&l.table.name)
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
                    return format!(
                        "(SELECT {sel} FROM {} AS l WHERE {}EXISTS (SELECT 1 FROM {} AS r WHERE {}))",
                        self.new_rel(left),
                        if *kind == JoinKind::Anti { "NOT " } else { "" },
                        self.new_rel(right),
                        self.on(on, &ll, &rl)
                    );
                }
                format!(
                    "(SELECT {sel} FROM {} AS l {} {} AS r ON {})",
                    self.new_rel(left),
                    kind.sql(),
                    self.new_rel(right),
                    self.on(on, &ll, &rl)
                )
            }
        }
    }

    fn select_list(&self, t: &Tree, left_leaves: &[usize], lq: &str, rq: &str) -> String {
        self.cols(t)
            .into_iter()
            .map(|(l, c)| {
                format!(
                    "{}.{}",
                    if left_leaves.contains(&l) { lq } else { rq },
                    col(l, c)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn padded_list(&self, t: &Tree, keep: &[usize], q: &str) -> String {
        self.cols(t)
            .into_iter()
            .map(|(l, c)| {
                let leaf = &self.b.leaves[l];
                if keep.contains(&l) {
                    format!("{q}.{}", col(l, c))
                } else if leaf.agg.is_none()
                    && !self
                        .c
                        .buffer_columns(leaf.source)
                        .contains(&leaf.table.columns[c].name)
                {
                    format!("{UNREAD} AS {}", col(l, c))
                } else {
                    format!(
                        "NULL::{} AS {}",
                        self.b.leaves[l].table.columns[c].sql_type,
                        col(l, c)
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn on(&self, on: &Expr, left_leaves: &[usize], _right: &[usize]) -> String {
        expr::render_with(on, &mut |m| match m {
            Marker::Col { leaf, col: c } => Some(raw(format!(
                "{}.{}",
                if left_leaves.contains(&leaf) {
                    "l"
                } else {
                    "r"
                },
                col(leaf, c)
            ))),
            _ => None,
        })
    }

    /// The name of a CTE holding the delta of a subtree (creating it).
    fn delta(&mut self, t: &Tree) -> String {
        match t {
            Tree::Filter { input, pred, .. } => {
                let d = self.delta(input);
                let name = format!("__pgs_dn{}", self.ctes.len());
                let body = format!(
                    "SELECT l.* FROM {} AS l WHERE {}",
                    qi(&d),
                    self.x(pred, "l")
                );
                self.ctes.push((name.clone(), body));
                name
            }
            Tree::Leaf(i) if self.b.leaves[*i].agg.is_some() => self.agg_delta(*i),
            Tree::Leaf(i) => {
                let l = &self.b.leaves[*i];
                let win = format!("__pgs_win{}", l.source);
                if !self.ctes.iter().any(|(n, _)| *n == win) {
                    self.ctes.push((
                        win.clone(),
                        window_sql(
                            self.ctx,
                            l.source,
                            Some(&l.table),
                            &self.c.buffer_columns(l.source),
                        ),
                    ));
                }
                // The buffer holds the columns some consumer reads; this one reads
                // `buffer_columns`, the others are never looked at.
                let needed = self.c.buffer_columns(l.source);
                let cols: Vec<String> = l
                    .table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(j, c)| unread_null("b", c, &needed, col(*i, j)))
                    .collect();
                let name = format!("__pgs_d{i}");
                self.ctes.push((
                    name.clone(),
                    format!("SELECT {}, b.{W} FROM {} AS b", cols.join(", "), qi(&win)),
                ));
                name
            }
            Tree::Join {
                kind,
                left,
                right,
                on,
                ..
            } => {
                let dl = self.delta(left);
                let dr = self.delta(right);
                let (ll, rl) = (left.leaves(), right.leaves());
                let (nl, nr) = (self.new_rel(left), self.new_rel(right));
                let sel = self.select_list(t, &ll, "l", "r");
                let on_lr = self.on(on, &ll, &rl);
                let (dl, dr) = (qi(&dl), qi(&dr));
                let (lo, ro) = (left.out_leaves(), right.out_leaves());
                if matches!(kind, JoinKind::Semi | JoinKind::Anti) {
                    // Anti: the dangling rows of the left side. Semi: ΔL − Δ(anti).
                    let semi = *kind == JoinKind::Semi;
                    let mut terms = Vec::new();
                    if semi {
                        terms.push(format!("SELECT {sel}, l.{W} AS {W} FROM {dl} AS l"));
                    }
                    let (ls, rs) = (side(&ll, &lo, &nl, &dl), side(&rl, &ro, &nr, &dr));
                    terms.extend(self.dangling(t, on, ls, rs, true, semi));
                    let name = format!("__pgs_dn{}", self.ctes.len());
                    self.ctes.push((name.clone(), terms.join("\nUNION ALL ")));
                    return name;
                }
                // An aggregate subquery joined on its group keys is read for the
                // keys of the other side's delta only.
                let t1 = match self.agg_lookup(right, on, &ll, "l") {
                    Some(lat) => {
                        format!(
                            "SELECT {sel}, l.{W} AS {W} FROM {dl} AS l JOIN {lat} AS r ON {on_lr}"
                        )
                    }
                    None => {
                        format!(
                            "SELECT {sel}, l.{W} AS {W} FROM {dl} AS l JOIN {nr} AS r ON {on_lr}"
                        )
                    }
                };
                let t2 = match self.agg_lookup(left, on, &rl, "r") {
                    Some(lat) => {
                        format!(
                            "SELECT {sel}, r.{W} AS {W} FROM {dr} AS r JOIN {lat} AS l ON {on_lr}"
                        )
                    }
                    None => {
                        format!(
                            "SELECT {sel}, r.{W} AS {W} FROM {nl} AS l JOIN {dr} AS r ON {on_lr}"
                        )
                    }
                };
                let mut terms = vec![
                    t1,
                    t2,
                    format!("SELECT {sel}, -(l.{W} * r.{W}) AS {W} FROM {dl} AS l JOIN {dr} AS r ON {on_lr}"),
                ];
                let (ls, rs) = (side(&ll, &lo, &nl, &dl), side(&rl, &ro, &nr, &dr));
                if matches!(kind, JoinKind::Left | JoinKind::Full) {
                    terms.extend(self.dangling(t, on, ls, rs, true, false));
                }
                if matches!(kind, JoinKind::Right | JoinKind::Full) {
                    terms.extend(self.dangling(t, on, rs, ls, false, false));
                }
                let name = format!("__pgs_dn{}", self.ctes.len());
                self.ctes.push((name.clone(), terms.join("\nUNION ALL ")));
                name
            }
        }
    }

    /// Delta of the dangling (NULL-padded) rows of the preserved side `p` of an outer
    /// join against the other side `o`:
    /// `ΔP ▷ O_new  +  Σ_{a ∈ P_old matching ΔO} P_old(a)·([cnt_new(a)=0] − [cnt_old(a)=0])`
    /// where `cnt_old = cnt_new − Σ weights of matching ΔO rows` and `P_old = P_new − ΔP`.
    ///
    /// Only whether `cnt_new` is 0 and whether it equals the sum `d` of the matching
    /// ΔO weights matter, so the count stops at `max(d, 0) + 1` matches: its cost
    /// follows the changes, not the fan-out of the join. When the join condition is
    /// made of equalities between columns of `o` and expressions over `p` (the usual
    /// foreign-key join), ΔO is summed per join key first and joined to the rows of
    /// `P_old` with that key (an index lookup), instead of summing ΔO for every row of
    /// `P_old`.
    fn dangling(
        &self,
        t: &Tree,
        on: &Expr,
        p: Side<'_>,
        o: Side<'_>,
        p_is_left: bool,
        negate: bool,
    ) -> Vec<String> {
        let (pq, oq) = if p_is_left { ("l", "r") } else { ("r", "l") };
        let on_lr = if p_is_left {
            self.on(on, p.leaves, o.leaves)
        } else {
            self.on(on, o.leaves, p.leaves)
        };
        let sign = if negate { "-" } else { "" };
        let padded = self.padded_list(t, p.leaves, pq);
        let (no, d_o, np, dp) = (o.new, o.delta, p.new, p.delta);
        // An aggregate subquery on the other side, joined on its group keys, is read
        // for the keys of the preserved side's row only (when the other side is that
        // subquery alone: not under a filter).
        let lookup = match o.leaves {
            [i] if self.b.leaves[*i].agg.is_some() && no == self.new_rel(&Tree::Leaf(*i)) => {
                self.agg_lookup(&Tree::Leaf(*i), on, p.leaves, pq)
            }
            _ => None,
        };
        let no = lookup.as_deref().unwrap_or(no);
        let pcols: Vec<String> = self
            .cols_of(p.out)
            .into_iter()
            .map(|(l, c)| col(l, c))
            .collect();
        let pcols_list = pcols.join(", ");
        let unmatched = format!("SELECT {padded}, {sign}{pq}.{W} AS {W} FROM {dp} AS {pq} WHERE NOT EXISTS (SELECT 1 FROM {no} AS {oq} WHERE {on_lr})");
        let capped_count = |d: &str| {
            format!(
                "CROSS JOIN LATERAL (SELECT count(*) AS n FROM (SELECT 1 FROM {no} AS {oq} WHERE {on_lr} LIMIT GREATEST({d}, 0)::bigint + 1) AS m) AS c"
            )
        };
        let flip =
            |d: &str| format!("{sign}{pq}.{W} * ((c.n = 0)::int - (c.n - {d} = 0)::int) AS {W}");
        let changed = |d: &str| format!("(c.n = 0) <> (c.n - {d} = 0)");
        if let Some(keyed) = self.keyed_condition(on, p.leaves, o.leaves) {
            // ΔO summed per key; P_old = P_new − ΔP as two terms, so that each joins
            // the (small) keyed sums through the indexes of its own relation.
            let keys: Vec<String> = keyed.keys.iter().map(|&(l, c)| col(l, c)).collect();
            let key_list = keys
                .iter()
                .map(|k| format!("{oq}.{k}"))
                .collect::<Vec<_>>()
                .join(", ");
            let filter = if keyed.o_only.is_empty() {
                String::new()
            } else {
                let conds: Vec<String> = keyed.o_only.iter().map(|e| self.x(e, oq)).collect();
                format!(" WHERE {}", conds.join(" AND "))
            };
            let dg = format!(
                "(SELECT {key_list}, COALESCE(sum({oq}.{W}), 0) AS \"__pgs_dn\" FROM {d_o} AS {oq}{filter} GROUP BY {key_list}) AS dg"
            );
            let join_on = keyed
                .p_side
                .iter()
                .map(|e| {
                    expr::render_with(e, &mut |m| match m {
                        Marker::Col { leaf, col: c } => Some(raw(format!(
                            "{}.{}",
                            if o.leaves.contains(&leaf) { "dg" } else { pq },
                            col(leaf, c)
                        ))),
                        _ => None,
                    })
                })
                .collect::<Vec<_>>()
                .join(" AND ");
            let d = "dg.\"__pgs_dn\"";
            let term = |rel: &str| {
                format!(
                    "SELECT {padded}, {} FROM {dg} JOIN {rel} AS {pq} ON {join_on} {} WHERE {}",
                    flip(d),
                    capped_count(d),
                    changed(d)
                )
            };
            return vec![
                unmatched,
                term(&format!("(SELECT {pcols_list}, 1 AS {W} FROM {np} AS p0)")),
                term(&format!("(SELECT {pcols_list}, -{W} AS {W} FROM {dp})")),
            ];
        }
        let p_old = format!(
            "(SELECT {pcols_list}, 1 AS {W} FROM {np} AS p0 UNION ALL SELECT {pcols_list}, -{W} FROM {dp})"
        );
        vec![
            unmatched,
            format!(
                "SELECT {padded}, {} FROM {p_old} AS {pq} \
                 CROSS JOIN LATERAL (SELECT COALESCE(sum({oq}.{W}), 0) AS n FROM {d_o} AS {oq} WHERE {on_lr}) AS d \
                 {} \
                 WHERE EXISTS (SELECT 1 FROM {d_o} AS {oq} WHERE {on_lr}) AND {}",
                flip("d.n"),
                capped_count("d.n"),
                changed("d.n")
            ),
        ]
    }

    /// Split a join condition for [`Self::dangling`]: `Some` when it is a conjunction
    /// of equalities `o.column = expression over p` (at least one), conditions on `p`
    /// alone, and conditions on `o` alone, and the key columns can be grouped.
    fn keyed_condition(&self, on: &Expr, p: &[usize], o: &[usize]) -> Option<KeyedCondition> {
        let mut parts = Vec::new();
        conjuncts(on, &mut parts);
        let mut k = KeyedCondition {
            keys: Vec::new(),
            p_side: Vec::new(),
            o_only: Vec::new(),
        };
        for e in parts {
            let cols = expr::column_markers(e);
            if has_subquery(e) {
                return None;
            }
            if cols.iter().all(|(l, _)| p.contains(l)) {
                k.p_side.push(e.clone());
                continue;
            }
            if cols.iter().all(|(l, _)| o.contains(l)) {
                k.o_only.push(e.clone());
                continue;
            }
            let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = e
            else {
                return None;
            };
            let (l, r) = (unnest(left), unnest(right));
            let key = |side: &Expr, other: &Expr| match expr::as_marker(side) {
                Some(Marker::Col { leaf, col }) if o.contains(&leaf) => expr::column_markers(other)
                    .iter()
                    .all(|(x, _)| p.contains(x))
                    .then_some((leaf, col)),
                _ => None,
            };
            let kc = key(l, r).or_else(|| key(r, l))?;
            let ty = self.b.leaves[kc.0].table.columns[kc.1]
                .sql_type
                .to_ascii_lowercase();
            let base = ty.split(['(', '[']).next().unwrap_or("").trim();
            if UNGROUPABLE.contains(&base) {
                return None;
            }
            if !k.keys.contains(&kc) {
                k.keys.push(kc);
            }
            k.p_side.push(e.clone());
        }
        (!k.keys.is_empty()).then_some(k)
    }

    /// The aggregate subquery of leaf `i` over `from` (a relation with its table's
    /// columns), its rows restricted by `cond` (SQL over the table's alias) before
    /// grouping, its outputs named `__pgs_c<i>_<j>`. A group is all the rows with its
    /// key values, so restricting the rows by the key values yields exactly the
    /// groups with those values.
    fn agg_sql(&self, i: usize, from: &str, cond: Option<&str>) -> String {
        let a = self.b.leaves[i].agg.as_ref().expect("aggregate leaf");
        let items: Vec<String> = a
            .items
            .iter()
            .enumerate()
            .map(|(j, e)| format!("{e} AS {}", col(i, j)))
            .collect();
        let conds: Vec<String> = a
            .filter
            .iter()
            .map(|f| f.as_str())
            .chain(cond)
            .map(|c| format!("({c})"))
            .collect();
        format!(
            "SELECT {} FROM {from} AS {}{} GROUP BY {}{}",
            items.join(", "),
            qi(&a.alias),
            if conds.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conds.join(" AND "))
            },
            a.groups.join(", "),
            a.having
                .as_ref()
                .map(|h| format!(" HAVING {h}"))
                .unwrap_or_default()
        )
    }

    /// The delta of an aggregate subquery (leaf `i`): the groups whose keys the window
    /// rows of its table carry (old and new images) are recomputed over the table's
    /// new state (+1) and its old state (−1, the new state less the window's new
    /// images plus its old images); groups whose row did not change cancel.
    fn agg_delta(&mut self, i: usize) -> String {
        let name = format!("__pgs_d{i}");
        if self.ctes.iter().any(|(n, _)| *n == name) {
            return name;
        }
        let l = &self.b.leaves[i];
        let a = l.agg.as_ref().expect("aggregate leaf");
        let base = &self.c.sources[l.source];
        let win = format!("__pgs_win{}", l.source);
        if !self.ctes.iter().any(|(n, _)| *n == win) {
            self.ctes.push((
                win.clone(),
                window_sql(
                    self.ctx,
                    l.source,
                    Some(base),
                    &self.c.buffer_columns(l.source),
                ),
            ));
        }
        let alias = qi(&a.alias);
        let kn: Vec<String> = (0..a.groups.len())
            .map(|k| qi(&format!("__pgs_k{k}")))
            .collect();
        let keys = format!("__pgs_sk{i}");
        self.ctes.push((
            keys.clone(),
            format!(
                "SELECT DISTINCT {} FROM {} AS {alias}",
                a.groups
                    .iter()
                    .zip(&kn)
                    .map(|(g, n)| format!("({g}) AS {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                qi(&win)
            ),
        ));
        // The groups with those keys: by `IN` when no key is NULL (an index serves
        // it), NULL-safely otherwise. The keys' alias is reserved, so an alias inside
        // the subquery cannot hide it.
        let gs: Vec<String> = a.groups.iter().map(|g| format!("({g})")).collect();
        let kk = |n: &String| format!("\"__pgs_kk\".{n}");
        let by_in = format!(
            "({}) IN (SELECT {} FROM {} AS \"__pgs_kk\" WHERE {})",
            gs.join(", "),
            kn.iter().map(kk).collect::<Vec<_>>().join(", "),
            qi(&keys),
            kn.iter()
                .map(|n| format!("{} IS NOT NULL", kk(n)))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        let any_null = kn
            .iter()
            .map(|n| format!("{} IS NULL", kk(n)))
            .collect::<Vec<_>>()
            .join(" OR ");
        let by_null = format!(
            "(SELECT EXISTS (SELECT 1 FROM {k} AS \"__pgs_kk\" WHERE {any_null})) AND EXISTS (SELECT 1 FROM {k} AS \"__pgs_kk\" WHERE ({any_null}) AND {})",
            kn.iter()
                .zip(&gs)
                .map(|(n, g)| format!("{} IS NOT DISTINCT FROM {g}", kk(n)))
                .collect::<Vec<_>>()
                .join(" AND "),
            k = qi(&keys)
        );
        let qual = quote_qualified(&base.name);
        // The columns the subquery reads (and the primary key).
        let used: Vec<&str> = a
            .used
            .iter()
            .filter_map(|&c| base.columns.get(c))
            .map(|c| c.name.as_str())
            .collect();
        // The old state of the table, its rows restricted by `cond` in each part (a
        // restriction above the UNION would not reach the table's index).
        let old = |cond: &str| {
            let t = used
                .iter()
                .map(|c| format!("{alias}.{}", qi(c)))
                .collect::<Vec<_>>()
                .join(", ");
            let w = qi(&win);
            if base.primary_key.is_empty() {
                format!(
                    "(SELECT {t} FROM {qual} AS {alias} WHERE {cond} \
                     UNION ALL SELECT {t} FROM {w} AS {alias} WHERE {alias}.{W} < 0 AND {cond} \
                     EXCEPT ALL SELECT {t} FROM {w} AS {alias} WHERE {alias}.{W} > 0 AND {cond})"
                )
            } else {
                let same = base
                    .primary_key
                    .iter()
                    .map(|k| format!("\"__pgs_b\".{k} = {alias}.{k}", k = qi(k)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!(
                    "(SELECT {t} FROM {qual} AS {alias} WHERE {cond} AND NOT EXISTS \
                     (SELECT 1 FROM {w} AS \"__pgs_b\" WHERE {same} AND \"__pgs_b\".{W} > 0) \
                     UNION ALL SELECT {t} FROM {w} AS {alias} WHERE {alias}.{W} < 0 AND {cond})"
                )
            }
        };
        let new_body = format!(
            "({}) UNION ALL ({})",
            self.agg_sql(i, &qual, Some(&by_in)),
            self.agg_sql(i, &qual, Some(&by_null))
        );
        let old_body = format!(
            "({}) UNION ALL ({})",
            self.agg_sql(i, &old(&format!("({by_in})")), None),
            self.agg_sql(i, &old(&format!("({by_null})")), None)
        );
        let (sn, so) = (format!("__pgs_sn{i}"), format!("__pgs_so{i}"));
        self.ctes.push((sn.clone(), new_body));
        self.ctes.push((so.clone(), old_body));
        self.ctes.push((
            name.clone(),
            format!(
                "SELECT n.*, 1::smallint AS {W} FROM {sn} AS n WHERE NOT EXISTS (SELECT 1 FROM {so} AS o WHERE o::text = n::text) \
                 UNION ALL SELECT o.*, (-1)::smallint AS {W} FROM {so} AS o WHERE NOT EXISTS (SELECT 1 FROM {sn} AS n WHERE n::text = o::text)",
                sn = qi(&sn),
                so = qi(&so)
            ),
        ));
        name
    }

    /// When `t` is an aggregate subquery leaf and `on` compares each of its group key
    /// columns by equality with an expression over `other` (leaves of the other
    /// side), the subquery restricted to the keys of the other side's row `q`, as a
    /// `LATERAL` relation: a delta term then reads only the groups its rows join.
    fn agg_lookup(&self, t: &Tree, on: &Expr, other: &[usize], q: &str) -> Option<String> {
        let Tree::Leaf(i) = t else { return None };
        let a = self.b.leaves[*i].agg.as_ref()?;
        let mut parts = Vec::new();
        conjuncts(on, &mut parts);
        let mut found: Vec<Option<String>> = vec![None; a.key_cols.len()];
        for e in parts {
            let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = unnest(e)
            else {
                continue;
            };
            for (side, rest) in [(left, right), (right, left)] {
                let Some(Marker::Col { leaf, col: c }) = expr::as_marker(unnest(side)) else {
                    continue;
                };
                let Some(k) = a.key_cols.iter().position(|&kc| kc == c) else {
                    continue;
                };
                if leaf == *i
                    && !has_subquery(rest)
                    && expr::column_markers(rest)
                        .iter()
                        .all(|(x, _)| other.contains(x))
                {
                    found[k] = Some(self.x(rest, q));
                }
            }
        }
        let found: Vec<String> = found.into_iter().collect::<Option<Vec<_>>>()?;
        // The other side's key values are taken in a scope of their own, so that an
        // alias inside the subquery cannot hide the other side's alias `q`.
        let key_list = found
            .iter()
            .enumerate()
            .map(|(k, x)| format!("({x}) AS \"__pgs_k{k}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let conds = a
            .groups
            .iter()
            .enumerate()
            .map(|(k, g)| format!("({g}) = \"__pgs_key\".\"__pgs_k{k}\""))
            .collect::<Vec<_>>()
            .join(" AND ");
        let base = &self.c.sources[self.b.leaves[*i].source];
        Some(format!(
            "LATERAL (SELECT \"__pgs_s\".* FROM (SELECT {key_list}) AS \"__pgs_key\" CROSS JOIN LATERAL ({}) AS \"__pgs_s\")",
            self.agg_sql(*i, &quote_qualified(&base.name), Some(&conds))
        ))
    }

    fn cols_of(&self, leaves: &[usize]) -> Vec<(usize, usize)> {
        leaves
            .iter()
            .flat_map(|&l| (0..self.b.leaves[l].table.columns.len()).map(move |c| (l, c)))
            .collect()
    }

    /// Render a bound expression against relation alias `q` (uniform column names).
    fn x(&self, e: &Expr, q: &str) -> String {
        expr::render_with(e, &mut |m| match m {
            Marker::Col { leaf, col: c } => Some(raw(format!("{q}.{}", col(leaf, c)))),
            _ => None,
        })
    }

    fn where_clause(&self, q: &str) -> String {
        self.b
            .filter
            .as_ref()
            .map(|f| format!(" WHERE {}", self.x(f, q)))
            .unwrap_or_default()
    }

    fn artifacts(mut self) -> Artifacts {
        match &self.b.shape {
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
        match self.c.columns.get(i) {
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
    fn net_grouping(&self, cols: &[String]) -> (String, String) {
        let (sel, by): (Vec<String>, Vec<String>) = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if self.by_text(i) {
                    (
                        format!("(pg_catalog.array_agg({c}))[1] AS {c}"),
                        format!("{c}::pg_catalog.text"),
                    )
                } else {
                    (c.clone(), c.clone())
                }
            })
            .unzip();
        (sel.join(", "), by.join(", "))
    }

    fn key_exprs(&self, q: &str) -> Vec<String> {
        let mut keys = Vec::new();
        // In leaf order, not join order: pushdown may reorder the joins.
        let mut out = self.b.tree.out_leaves();
        out.sort_unstable();
        for i in out {
            let l = &self.b.leaves[i];
            for k in &l.table.primary_key {
                let c = l.table.column_index(k).expect("primary key column");
                keys.push(format!("{q}.{}", col(i, c)));
            }
        }
        keys
    }

    fn finish(&self, body_ctes: Vec<String>, tail: &str) -> String {
        let mut all: Vec<String> = self
            .ctes
            .iter()
            .map(|(n, b)| {
                format!(
                    "{} AS {}({b})",
                    qi(n),
                    if n.starts_with("__pgs_win") || n.starts_with("__pgs_s") {
                        "MATERIALIZED "
                    } else {
                        ""
                    }
                )
            })
            .collect();
        all.extend(body_ctes);
        format!("WITH {}\n{tail}", all.join(",\n"))
    }

    /// A query without GROUP BY over a source without a primary key is a bag: each
    /// copy of a row is a storage row, numbered `__pgs_n` = 1..c among equal rows, and
    /// all copies share the row id (a hash of the row's text). The window's net change
    /// per distinct row removes the highest-numbered copies or appends new ones.
    fn project_bag(&mut self) -> Artifacts {
        let b = self.b;
        let root = self.delta(&b.tree);
        let names: Vec<String> = b.items.iter().map(|(n, _)| n.clone()).collect();
        let (new_vis, delta_vis) = self.branch_selects(b, &root, &names);
        self.bag(&new_vis, &delta_vis)
    }

    /// The current rows (visible columns) and the delta (visible columns and weight)
    /// of a projection block whose tree delta is the CTE `root`.
    /// The output columns are named `names` (a set operation's branches all take the
    /// first branch's names).
    fn branch_selects(&self, b: &Block, root: &str, names: &[String]) -> (String, String) {
        let vis_x: Vec<String> = b
            .items
            .iter()
            .zip(names)
            .map(|((_, e), n)| format!("{} AS {}", self.x(e, "x"), qi(n)))
            .collect();
        let w = b
            .filter
            .as_ref()
            .map(|f| format!(" WHERE {}", self.x(f, "x")))
            .unwrap_or_default();
        (
            format!(
                "SELECT {} FROM {} AS x{w}",
                vis_x.join(", "),
                self.new_rel(&b.tree)
            ),
            format!(
                "SELECT {}, x.{W} FROM {} AS x{w}",
                vis_x.join(", "),
                qi(root)
            ),
        )
    }

    /// Bag maintenance from the current rows and the delta (see `project_bag`).
    fn bag(&mut self, new_vis: &str, delta_vis: &str) -> Artifacts {
        let st = self.st.clone();
        let names: Vec<String> = self.b.items.iter().map(|(n, _)| qi(n)).collect();
        let text_of = |q: &str| {
            format!(
                "ROW({})::text",
                names
                    .iter()
                    .map(|n| format!("{q}.{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let new_rows = format!(
            "SELECT q2.*, {} AS \"__pgs_row_id\" FROM (SELECT q.*, row_number() OVER (PARTITION BY {}) AS \"__pgs_n\" FROM ({new_vis}) AS q) AS q2",
            row_hash(&text_of("q2"), "0"),
            text_of("q"),
        );
        let cols = names.join(", ");
        let (net_sel, net_by) = self.net_grouping(&names);
        let same_value = format!(
            "st.\"__pgs_row_id\" = s.\"__pgs_rid\" AND {} = s.\"__pgs_t\"",
            text_of("st")
        );
        let body = vec![
            format!("\"__pgs_delta\" AS ({delta_vis})"),
            format!(
                "\"__pgs_net\" AS (SELECT d.*, {} AS \"__pgs_t\" FROM (SELECT {}, sum({W}) AS {W} FROM \"__pgs_delta\" GROUP BY {} HAVING sum({W}) <> 0) AS d)",
                text_of("d"),
                net_sel,
                net_by
            ),
            format!(
                "\"__pgs_src\" AS MATERIALIZED (SELECT s0.*, (SELECT count(*) FROM {st} AS st WHERE {}) AS \"__pgs_c\" FROM (SELECT n.*, {} AS \"__pgs_rid\" FROM \"__pgs_net\" AS n) AS s0)",
                same_value.replace("s.", "s0."),
                row_hash("n.\"__pgs_t\"", "0")
            ),
            format!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
            format!(
                "\"__pgs_del\" AS (DELETE FROM {st} AS st USING \"__pgs_src\" AS s WHERE s.{W} < 0 AND {same_value} AND st.\"__pgs_n\" > s.\"__pgs_c\" + s.{W} RETURNING 1)"
            ),
            format!(
                "\"__pgs_ins\" AS (INSERT INTO {st} ({cols}, \"__pgs_n\", \"__pgs_row_id\") SELECT {}, s.\"__pgs_c\" + g.i, s.\"__pgs_rid\" FROM \"__pgs_src\" AS s CROSS JOIN LATERAL pg_catalog.generate_series(1, s.{W}::bigint) AS g(i) WHERE s.{W} > 0 RETURNING 1)",
                names.iter().map(|n| format!("s.{n}")).collect::<Vec<_>>().join(", ")
            ),
        ];
        let diff = self.finish(
            body,
            "SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"",
        );
        self.maintained(
            &st,
            &new_rows,
            diff,
            vec!["__pgs_n".into(), contract::ROW_ID.into()],
        )
    }

    fn project(&mut self) -> Artifacts {
        if self
            .b
            .tree
            .out_leaves()
            .iter()
            .any(|&i| self.b.leaves[i].table.primary_key.is_empty())
        {
            return self.project_bag();
        }
        let st = self.st.clone();
        let names: Vec<String> = self.b.items.iter().map(|(n, _)| qi(n)).collect();
        let keys_x = self.key_exprs("x");
        let knames: Vec<String> = (0..keys_x.len())
            .map(|k| qi(&format!("__pgs_k{k}")))
            .collect();
        let hidden: Vec<String> = (0..keys_x.len())
            .map(|k| format!("__pgs_k{k}"))
            .chain([contract::ROW_ID.to_string()])
            .collect();
        // full
        let vis_x: Vec<String> = self
            .b
            .items
            .iter()
            .map(|(n, e)| format!("{} AS {}", self.x(e, "x"), qi(n)))
            .collect();
        let key_sel: Vec<String> = keys_x
            .iter()
            .zip(&knames)
            .map(|(e, n)| format!("{e} AS {n}"))
            .collect();
        let new_rows = format!(
            "SELECT {}, {}, {} AS \"__pgs_row_id\" FROM {} AS x{}",
            vis_x.join(", "),
            key_sel.join(", "),
            row_id_of(&keys_x),
            self.new_rel(&self.b.tree),
            self.where_clause("x")
        );
        // differential
        let root = self.delta(&self.b.tree);
        let all_cols: Vec<String> = names.iter().chain(&knames).cloned().collect();
        let (net_sel, net_by) = self.net_grouping(&all_cols);
        let kn_s: Vec<String> = knames.iter().map(|k| format!("s.{k}")).collect();
        let matchp: Vec<String> =
            std::iter::once("st.\"__pgs_row_id\" = s.\"__pgs_row_id\"".to_string())
                .chain(
                    knames
                        .iter()
                        .map(|k| format!("st.{k} IS NOT DISTINCT FROM s.{k}")),
                )
                .collect();
        let matchp = matchp.join(" AND ");
        let body = vec![
            format!(
                "\"__pgs_delta\" AS (SELECT {}, {}, x.{W} FROM {} AS x{})",
                vis_x.join(", "),
                key_sel.join(", "),
                qi(&root),
                self.where_clause("x")
            ),
            format!(
                "\"__pgs_net\" AS (SELECT {}, sum({W}) AS {W} FROM \"__pgs_delta\" GROUP BY {} HAVING sum({W}) <> 0)",
                net_sel,
                net_by
            ),
            format!(
                "\"__pgs_src\" AS MATERIALIZED (SELECT DISTINCT ON ({k}) s.*, {rid} AS \"__pgs_row_id\" FROM \"__pgs_net\" AS s ORDER BY {k}, s.{W} DESC)",
                k = kn_s.join(", "),
                rid = row_id_of(&kn_s)
            ),
            format!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
            format!("\"__pgs_del\" AS (DELETE FROM {st} AS st USING \"__pgs_src\" AS s WHERE s.{W} < 0 AND {matchp} RETURNING 1)"),
            format!(
                "\"__pgs_upd\" AS (UPDATE {st} AS st SET {} FROM \"__pgs_src\" AS s WHERE s.{W} > 0 AND {matchp} RETURNING 1)",
                names.iter().map(|n| format!("{n} = s.{n}")).collect::<Vec<_>>().join(", ")
            ),
            format!(
                "\"__pgs_ins\" AS (INSERT INTO {st} ({cols}, \"__pgs_row_id\") SELECT {scols}, s.\"__pgs_row_id\" FROM \"__pgs_src\" AS s WHERE s.{W} > 0 AND NOT EXISTS (SELECT 1 FROM {st} AS st WHERE {matchp}) RETURNING 1)",
                cols = all_cols.join(", "),
                scols = all_cols.iter().map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")
            ),
        ];
        let diff = self.finish(
            body,
            "SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_upd\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"",
        );
        self.maintained(&st, &new_rows, diff, hidden)
    }

    /// Aggregates without counter rules (MIN, MAX, string_agg, FILTER, DISTINCT
    /// aggregates, HAVING, ...): the group keys that the window touches are collected
    /// from the delta (old and new images), those groups alone are recomputed from the
    /// current sources, and the difference is applied. Cost: the changes plus the rows
    /// of the affected groups.
    fn aggregate_recompute(&mut self) -> Artifacts {
        let Shape::Aggregate {
            groups,
            aggs,
            having,
            ..
        } = &self.b.shape
        else {
            unreachable!()
        };
        let st = self.st.clone();
        let gnames: Vec<String> = (0..groups.len())
            .map(|k| qi(&format!("__pgs_g{k}")))
            .collect();
        let groups_x: Vec<String> = groups.iter().map(|g| self.x(g, "x")).collect();
        let full = |e: &Expr| {
            expr::render_with(e, &mut |m| match m {
                Marker::Agg(k) => Some(raw(self.x(&aggs[k].call, "x"))),
                Marker::Grp(k) => Some(raw(format!("({})", groups_x[k]))),
                Marker::Col { leaf, col: c } => Some(raw(format!("x.{}", col(leaf, c)))),
            })
        };
        let vis: Vec<String> = self
            .b
            .items
            .iter()
            .map(|(n, e)| format!("{} AS {}", full(e), qi(n)))
            .collect();
        let gsel: Vec<String> = groups_x
            .iter()
            .zip(&gnames)
            .map(|(e, n)| format!("{e} AS {n}"))
            .collect();
        let group_by = if groups.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", groups_x.join(", "))
        };
        let having_sql = having
            .as_ref()
            .map(|h| format!(" HAVING {}", full(h)))
            .unwrap_or_default();
        let select_list = format!(
            "{}{}{}, {} AS \"__pgs_row_id\"",
            vis.join(", "),
            if gsel.is_empty() { "" } else { ", " },
            gsel.join(", "),
            row_id_of(&groups_x)
        );
        let base = self.new_rel(&self.b.tree);
        let filter = self.b.filter.as_ref().map(|f| self.x(f, "x"));
        let new_rows = format!(
            "SELECT {select_list} FROM {base} AS x{}{group_by}{having_sql}",
            filter
                .as_ref()
                .map(|f| format!(" WHERE {f}"))
                .unwrap_or_default()
        );
        // Differential: affected keys, then those groups recomputed.
        let root = self.delta(&self.b.tree);
        let and_filter = filter
            .as_ref()
            .map(|f| format!(" AND ({f})"))
            .unwrap_or_default();
        let keys = format!(
            "SELECT DISTINCT {} FROM {} AS x{}",
            if gsel.is_empty() {
                "1 AS \"__pgs_any\"".to_string()
            } else {
                gsel.join(", ")
            },
            qi(&root),
            self.where_clause("x")
        );
        let fresh = if groups.is_empty() {
            // a global aggregate: recompute its one row when anything changed
            // (the gate sits outside: an aggregate over no rows still yields a row)
            format!(
                "SELECT f.* FROM ({new_rows}) AS f WHERE (SELECT EXISTS (SELECT 1 FROM \"__pgs_keys\"))"
            )
        } else {
            let (by_in, by_null) = Self::key_predicates(&groups_x, &gnames);
            format!(
                "SELECT {select_list} FROM {base} AS x WHERE {by_in}{and_filter}{group_by}{having_sql} \
                 UNION ALL SELECT {select_list} FROM {base} AS x WHERE {by_null}{and_filter}{group_by}{having_sql}"
            )
        };
        let in_keys = if groups.is_empty() {
            "EXISTS (SELECT 1 FROM \"__pgs_keys\")".to_string()
        } else {
            Self::touched_keys(&gnames)
        };
        let diff = self.recompute_keys(&keys, &fresh, &in_keys, &st);
        let hidden = gnames
            .iter()
            .map(|c| c.trim_matches('"').to_string())
            .chain([contract::ROW_ID.to_string()])
            .collect();
        self.maintained(&st, &new_rows, diff, hidden)
    }

    /// The two predicates that keep only the rows whose keys (`exprs`, named `names`
    /// in `__pgs_keys`) the changes touched: keys without NULLs by `IN` (which can
    /// use indexes), keys with a NULL by a NULL-safe match, skipped unless such a key
    /// exists.
    fn key_predicates(exprs: &[String], names: &[String]) -> (String, String) {
        // Each key expression in parentheses: `a IS NULL` must not bind to what follows.
        let exprs: Vec<String> = exprs.iter().map(|e| format!("({e})")).collect();
        let tuple = if exprs.len() == 1 {
            exprs[0].clone()
        } else {
            format!("({})", exprs.join(", "))
        };
        let k_cols: Vec<String> = names.iter().map(|g| format!("k.{g}")).collect();
        let all_set = names
            .iter()
            .map(|g| format!("k.{g} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let any_null = names
            .iter()
            .map(|g| format!("k.{g} IS NULL"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let nd = exprs
            .iter()
            .zip(names)
            .map(|(e, g)| format!("k.{g} IS NOT DISTINCT FROM {e}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        (
            format!("{tuple} IN (SELECT {} FROM \"__pgs_keys\" AS k WHERE {all_set})", k_cols.join(", ")),
            format!(
                "(SELECT EXISTS (SELECT 1 FROM \"__pgs_keys\" AS k WHERE {any_null})) AND EXISTS (SELECT 1 FROM \"__pgs_keys\" AS k WHERE ({any_null}) AND {nd})"
            ),
        )
    }

    /// Window functions: the partitions the changes touch are recomputed whole (the
    /// WHERE applies before the windows, so restricting the input to those
    /// partitions is exact) and the difference is applied. Rows are identified by
    /// their content and an ordinal among equal rows.
    fn window(&mut self) -> Artifacts {
        let Shape::Window {
            partition,
            distinct_on,
        } = &self.b.shape
        else {
            unreachable!()
        };
        let st = self.st.clone();
        let pnames: Vec<String> = (0..partition.len())
            .map(|k| qi(&format!("__pgs_p{k}")))
            .collect();
        let part_x: Vec<String> = partition.iter().map(|p| self.x(p, "x")).collect();
        let mut sel: Vec<String> = self
            .b
            .items
            .iter()
            .map(|(n, e)| format!("{} AS {}", self.x(e, "x"), qi(n)))
            .collect();
        sel.extend(
            part_x
                .iter()
                .zip(&pnames)
                .map(|(e, n)| format!("{e} AS {n}")),
        );
        let base = self.new_rel(&self.b.tree);
        let filter = self.b.filter.as_ref().map(|f| self.x(f, "x"));
        // DISTINCT ON: each (restricted) recomputation keeps the first row per key.
        let order_by: Option<String> = distinct_on.as_ref().map(|order| {
            if order.is_empty() {
                String::new()
            } else {
                format!(
                    " ORDER BY {}",
                    order
                        .iter()
                        .map(|(e, opts)| format!("{}{opts}", self.x(e, "x")))
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
        let root = self.delta(&self.b.tree);
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

    /// Set operations. UNION ALL is a bag of the branches' rows; UNION keeps each
    /// distinct row with its multiplicity in `__pgs_count`; INTERSECT and EXCEPT
    /// [ALL] recompute just the rows whose values the changes touch.
    fn setop(&mut self) -> Artifacts {
        let b = self.b;
        let Shape::SetOp { op, all, branches } = &b.shape else {
            unreachable!()
        };
        let mut news = Vec::new();
        let mut deltas = Vec::new();
        let out_names: Vec<String> = b.items.iter().map(|(n, _)| n.clone()).collect();
        for br in branches {
            let root = self.delta(&br.tree);
            let (n, d) = self.branch_selects(br, &root, &out_names);
            news.push(n);
            deltas.push(d);
        }
        let names: Vec<String> = b.items.iter().map(|(n, _)| qi(n)).collect();
        let cols = names.join(", ");
        let st = self.st.clone();
        match (op, all) {
            (SetOpKind::Union, true) => {
                let new_vis = news.join(" UNION ALL ");
                let delta_vis = deltas.join(" UNION ALL ");
                self.bag(&new_vis, &delta_vis)
            }
            (SetOpKind::Union, false) => {
                let u_names: Vec<String> = names.iter().map(|n| format!("u.{n}")).collect();
                let new_rows = format!(
                    "SELECT {cols}, count(*) AS \"__pgs_count\", {} AS \"__pgs_row_id\" FROM ({}) AS u GROUP BY {cols}",
                    row_id_of(&u_names),
                    news.join(" UNION ALL ")
                );
                let a_names: Vec<String> = names.iter().map(|n| format!("a.{n}")).collect();
                let matchp: Vec<String> =
                    std::iter::once("st.\"__pgs_row_id\" = s.\"__pgs_row_id\"".to_string())
                        .chain(
                            names
                                .iter()
                                .map(|n| format!("st.{n} IS NOT DISTINCT FROM s.{n}")),
                        )
                        .collect();
                let matchp = matchp.join(" AND ");
                let st_a: Vec<String> =
                    std::iter::once(format!("st.\"__pgs_row_id\" = {}", row_id_of(&a_names)))
                        .chain(
                            names
                                .iter()
                                .map(|n| format!("st.{n} IS NOT DISTINCT FROM a.{n}")),
                        )
                        .collect();
                let body = vec![
                    format!("\"__pgs_delta\" AS ({})", deltas.join(" UNION ALL ")),
                    format!("\"__pgs_agg\" AS (SELECT {cols}, sum({W})::bigint AS \"__pgs_dcount\" FROM \"__pgs_delta\" GROUP BY {cols})"),
                    format!(
                        "\"__pgs_src\" AS MATERIALIZED (SELECT {}, {} AS \"__pgs_row_id\", (st.\"__pgs_row_id\" IS NOT NULL) AS \"__pgs_exists\", COALESCE(st.\"__pgs_count\", 0) + a.\"__pgs_dcount\" AS \"__pgs_count\" FROM \"__pgs_agg\" AS a LEFT JOIN {st} AS st ON {})",
                        a_names.join(", "),
                        row_id_of(&a_names),
                        st_a.join(" AND ")
                    ),
                    format!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
                    format!("\"__pgs_del\" AS (DELETE FROM {st} AS st USING \"__pgs_src\" AS s WHERE s.\"__pgs_exists\" AND s.\"__pgs_count\" = 0 AND {matchp} RETURNING 1)"),
                    format!("\"__pgs_upd\" AS (UPDATE {st} AS st SET \"__pgs_count\" = s.\"__pgs_count\" FROM \"__pgs_src\" AS s WHERE s.\"__pgs_exists\" AND s.\"__pgs_count\" <> 0 AND st.\"__pgs_count\" <> s.\"__pgs_count\" AND {matchp} RETURNING 1)"),
                    format!(
                        "\"__pgs_ins\" AS (INSERT INTO {st} ({cols}, \"__pgs_count\", \"__pgs_row_id\") SELECT {}, s.\"__pgs_count\", s.\"__pgs_row_id\" FROM \"__pgs_src\" AS s WHERE NOT s.\"__pgs_exists\" AND s.\"__pgs_count\" > 0 RETURNING 1)",
                        names.iter().map(|n| format!("s.{n}")).collect::<Vec<_>>().join(", ")
                    ),
                ];
                // rows changed: only visible changes count (a multiplicity update is bookkeeping)
                let diff = self.finish(
                    body,
                    "SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") + 0 * (SELECT count(*) FROM \"__pgs_upd\") AS \"rows_changed\"",
                );
                self.maintained(
                    &st,
                    &new_rows,
                    diff,
                    vec!["__pgs_count".into(), contract::ROW_ID.into()],
                )
            }
            (kind, all) => {
                let sql_op = format!("{}{}", kind.sql(), if *all { " ALL" } else { "" });
                let new_rows = numbered(&format!("({}) {sql_op} ({})", news[0], news[1]));
                let b_names: Vec<String> = names.iter().map(|n| format!("b.{n}")).collect();
                let (by_in, by_null) = Self::key_predicates(&b_names, &names);
                let restrict = |n: &str| {
                    format!("SELECT b.* FROM ({n}) AS b WHERE {by_in} UNION ALL SELECT b.* FROM ({n}) AS b WHERE {by_null}")
                };
                let fresh = numbered(&format!(
                    "({}) {sql_op} ({})",
                    restrict(&news[0]),
                    restrict(&news[1])
                ));
                let keys = format!(
                    "SELECT DISTINCT {cols} FROM ({}) AS d",
                    deltas.join(" UNION ALL ")
                );
                let in_keys = Self::touched_keys(&names);
                let diff = self.recompute_keys(&keys, &fresh, &in_keys, &st);
                self.maintained(
                    &st,
                    &new_rows,
                    diff,
                    vec!["__pgs_n".into(), contract::ROW_ID.into()],
                )
            }
        }
    }

    /// `EXISTS` over `__pgs_keys`: the stored row's keys (columns `names` of `st`)
    /// are among those the changes touched.
    fn touched_keys(names: &[String]) -> String {
        format!(
            "EXISTS (SELECT 1 FROM \"__pgs_keys\" AS k WHERE {})",
            names
                .iter()
                .map(|g| format!("st.{g} IS NOT DISTINCT FROM k.{g}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        )
    }

    /// The artifacts of a strategy: the storage table and the full refresh both come
    /// from `new_rows` (the query's rows with the storage table's columns), the
    /// differential refresh is the strategy's own statement.
    fn maintained(
        &self,
        st: &str,
        new_rows: &str,
        diff: String,
        hidden_columns: Vec<String>,
    ) -> Artifacts {
        Artifacts {
            storage_ddl: storage_ddl(st, new_rows),
            full_refresh: diff_statement(st, self.ctx, &[], new_rows, None),
            differential_refresh: Some(diff),
            hidden_columns,
            refresh_function: None,
        }
    }

    /// The statement shared by the recompute strategies: collect the keys the changes
    /// touch, recompute the rows of those keys (`fresh`, with the storage table's
    /// columns), delete the stored rows of those keys (`in_keys`, over `st`) that are
    /// not among them, insert the missing ones.
    fn recompute_keys(&mut self, keys: &str, fresh: &str, in_keys: &str, st: &str) -> String {
        let same = "n.\"__pgs_row_id\" = st.\"__pgs_row_id\" AND n::text = st::text";
        let body = vec![
            format!("\"__pgs_keys\" AS MATERIALIZED ({keys})"),
            format!("\"__pgs_fresh\" AS MATERIALIZED ({fresh})"),
            format!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
            format!(
                "\"__pgs_del\" AS (DELETE FROM {st} AS st WHERE {in_keys} AND NOT EXISTS (SELECT 1 FROM \"__pgs_fresh\" AS n WHERE {same}) RETURNING 1)"
            ),
            format!(
                "\"__pgs_ins\" AS (INSERT INTO {st} SELECT n.* FROM \"__pgs_fresh\" AS n WHERE NOT EXISTS (SELECT 1 FROM {st} AS st WHERE {same}) RETURNING 1)"
            ),
        ];
        self.finish(
            body,
            "SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"",
        )
    }

    fn aggregate(&mut self) -> Artifacts {
        let Shape::Aggregate { groups, aggs, .. } = &self.b.shape else {
            unreachable!()
        };
        let st = self.st.clone();
        let global = groups.is_empty();
        let gnames: Vec<String> = (0..groups.len())
            .map(|k| qi(&format!("__pgs_g{k}")))
            .collect();
        let names: Vec<String> = self.b.items.iter().map(|(n, _)| qi(n)).collect();
        // hidden state columns, in storage order
        let mut state_cols: Vec<String> = vec![qi("__pgs_count")];
        let mut state_full: Vec<String> = vec!["count(*) AS \"__pgs_count\"".into()];
        for (k, a) in aggs.iter().enumerate() {
            let arg = a.arg.as_ref().map(|e| self.x(e, "x"));
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count => {
                    state_cols.push(qi(&format!("__pgs_a{k}_n")));
                    state_full.push(format!(
                        "count({}) AS {}",
                        arg.unwrap(),
                        qi(&format!("__pgs_a{k}_n"))
                    ));
                }
                AggFunc::Sum | AggFunc::Avg => {
                    let arg = arg.unwrap();
                    state_cols.push(qi(&format!("__pgs_a{k}_n")));
                    state_cols.push(qi(&format!("__pgs_a{k}_s")));
                    state_full.push(format!("count({arg}) AS {}", qi(&format!("__pgs_a{k}_n"))));
                    state_full.push(format!("sum({arg}) AS {}", qi(&format!("__pgs_a{k}_s"))));
                }
            }
        }
        let groups_x: Vec<String> = groups.iter().map(|g| self.x(g, "x")).collect();
        // Full: the items exactly as written (aggregates evaluated by PostgreSQL).
        let vis_full: Vec<String> = self
            .b
            .items
            .iter()
            .map(|(n, e)| {
                let s = expr::render_with(e, &mut |m| match m {
                    Marker::Agg(k) => Some(raw(self.x(&aggs[k].call, "x"))),
                    Marker::Grp(k) => Some(raw(format!("({})", groups_x[k]))),
                    Marker::Col { leaf, col: c } => Some(raw(format!("x.{}", col(leaf, c)))),
                });
                format!("{s} AS {}", qi(n))
            })
            .collect();
        let gsel: Vec<String> = groups_x
            .iter()
            .zip(&gnames)
            .map(|(e, n)| format!("{e} AS {n}"))
            .collect();
        let group_by = if global {
            String::new()
        } else {
            format!(" GROUP BY {}", groups_x.join(", "))
        };
        let new_rows = format!(
            "SELECT {}, {}{}{}, {} AS \"__pgs_row_id\" FROM {} AS x{}{group_by}",
            vis_full.join(", "),
            gsel.join(", "),
            if gsel.is_empty() { "" } else { ", " },
            state_full.join(", "),
            row_id_of(&groups_x),
            self.new_rel(&self.b.tree),
            self.where_clause("x")
        );

        // Differential
        let root = self.delta(&self.b.tree);
        let mut dsel: Vec<String> = gsel.clone();
        for (k, a) in aggs.iter().enumerate() {
            if let Some(arg) = &a.arg {
                dsel.push(format!(
                    "{} AS {}",
                    self.x(arg, "x"),
                    qi(&format!("__pgs_arg{k}"))
                ));
            }
        }
        dsel.push(format!("x.{W}"));
        let mut asel: Vec<String> = gnames.clone();
        asel.push(format!("COALESCE(sum({W}), 0)::bigint AS \"__pgs_dcount\""));
        for (k, a) in aggs.iter().enumerate() {
            let arg = qi(&format!("__pgs_arg{k}"));
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count | AggFunc::Sum | AggFunc::Avg => {
                    asel.push(format!(
                        "COALESCE(sum(CASE WHEN {arg} IS NOT NULL THEN {W} ELSE 0 END), 0)::bigint AS {}",
                        qi(&format!("__pgs_dn{k}"))
                    ));
                    if a.func != AggFunc::Count {
                        asel.push(format!(
                            "sum({arg}) FILTER (WHERE {W} > 0) AS {}",
                            qi(&format!("__pgs_dp{k}"))
                        ));
                        asel.push(format!(
                            "sum({arg}) FILTER (WHERE {W} < 0) AS {}",
                            qi(&format!("__pgs_dm{k}"))
                        ));
                    }
                }
            }
        }
        let a_groups: Vec<String> = gnames.iter().map(|g| format!("a.{g}")).collect();
        let st_match_a: Vec<String> =
            std::iter::once(format!("st.\"__pgs_row_id\" = {}", row_id_of(&a_groups)))
                .chain(
                    gnames
                        .iter()
                        .map(|g| format!("st.{g} IS NOT DISTINCT FROM a.{g}")),
                )
                .collect();
        let mut ssel: Vec<String> = a_groups.clone();
        ssel.push("(st.\"__pgs_row_id\" IS NOT NULL) AS \"__pgs_exists\"".into());
        ssel.push("st.\"__pgs_ctid\"".into());
        ssel.push(format!("{} AS \"__pgs_row_id\"", row_id_of(&a_groups)));
        ssel.push("COALESCE(st.\"__pgs_count\", 0) + a.\"__pgs_dcount\" AS \"__pgs_count\"".into());
        for (k, a) in aggs.iter().enumerate() {
            let n = qi(&format!("__pgs_a{k}_n"));
            let s = qi(&format!("__pgs_a{k}_s"));
            let (dn, dp, dm) = (
                qi(&format!("__pgs_dn{k}")),
                qi(&format!("__pgs_dp{k}")),
                qi(&format!("__pgs_dm{k}")),
            );
            match a.func {
                AggFunc::Other => unreachable!("maintained by group recompute"),
                AggFunc::CountStar => {}
                AggFunc::Count => ssel.push(format!("COALESCE(st.{n}, 0) + a.{dn} AS {n}")),
                AggFunc::Sum | AggFunc::Avg => {
                    ssel.push(format!("COALESCE(st.{n}, 0) + a.{dn} AS {n}"));
                    ssel.push(format!(
                        "CASE WHEN COALESCE(st.{n}, 0) + a.{dn} = 0 THEN NULL ELSE COALESCE(st.{s}, 0) + COALESCE(a.{dp}, 0) - COALESCE(a.{dm}, 0) END AS {s}"
                    ));
                }
            }
        }
        let vis_s: Vec<String> = self
            .b
            .items
            .iter()
            .map(|(name, e)| {
                let s = expr::render_with(e, &mut |m| match m {
                    Marker::Grp(k) => Some(raw(format!("s.{}", gnames[k]))),
                    Marker::Agg(k) => {
                        let n = format!("s.{}", qi(&format!("__pgs_a{k}_n")));
                        let sum = format!("s.{}", qi(&format!("__pgs_a{k}_s")));
                        Some(raw(match aggs[k].func {
                            AggFunc::Other => unreachable!("maintained by group recompute"),
                            AggFunc::CountStar => "s.\"__pgs_count\"".to_string(),
                            AggFunc::Count => n,
                            AggFunc::Sum => format!("(CASE WHEN {n} > 0 THEN {sum} END)"),
                            AggFunc::Avg => {
                                format!("(CASE WHEN {n} > 0 THEN {sum} / {n}::numeric END)")
                            }
                        }))
                    }
                    Marker::Col { .. } => None,
                });
                format!("{s} AS {}", qi(name))
            })
            .collect();
        let stored: Vec<String> = names
            .iter()
            .chain(&gnames)
            .chain(&state_cols)
            .cloned()
            .collect();
        let matchp: Vec<String> =
            std::iter::once("st.\"__pgs_row_id\" = s.\"__pgs_row_id\"".to_string())
                .chain(
                    gnames
                        .iter()
                        .map(|g| format!("st.{g} IS NOT DISTINCT FROM s.{g}")),
                )
                .collect();
        let matchp = matchp.join(" AND ");
        let set_list: Vec<String> = names
            .iter()
            .chain(&state_cols)
            .map(|c| format!("{c} = s.{c}"))
            .collect();
        let changed = format!(
            "ROW({})::text IS DISTINCT FROM ROW({})::text",
            names
                .iter()
                .chain(&state_cols)
                .map(|c| format!("st.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            names
                .iter()
                .chain(&state_cols)
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut body = vec![
            format!("\"__pgs_delta\" AS (SELECT {} FROM {} AS x{})", dsel.join(", "), qi(&root), self.where_clause("x")),
            format!(
                "\"__pgs_agg\" AS (SELECT {} FROM \"__pgs_delta\"{})",
                asel.join(", "),
                if global { String::new() } else { format!(" GROUP BY {}", gnames.join(", ")) }
            ),
            // Each affected group's stored row is looked up through the row-id index
            // (a LATERAL the planner cannot flatten into a hash join over the whole
            // storage table, which the fan-out estimates of the delta terms often
            // made it choose), and its ctid carried to the DELETE and the UPDATE,
            // which then fetch the rows by TID. The ctids are stable for the
            // statement: only refreshes, serialised by the stream table's lock,
            // write the storage table.
            format!(
                "\"__pgs_src\" AS MATERIALIZED (SELECT s.*, {} FROM (SELECT {} FROM \"__pgs_agg\" AS a LEFT JOIN LATERAL (SELECT st.ctid AS \"__pgs_ctid\", st.* FROM {st} AS st WHERE {} OFFSET 0) AS st ON true) AS s)",
                vis_s.join(", "),
                ssel.join(", "),
                st_match_a.join(" AND ")
            ),
            format!("\"__pgs_adv\" AS ({})", frontier_advance(self.ctx)),
        ];
        let tail = if global {
            body.push(format!(
                "\"__pgs_upd\" AS (UPDATE {st} AS st SET {} FROM \"__pgs_src\" AS s WHERE {matchp} AND {changed} RETURNING 1)",
                set_list.join(", ")
            ));
            "SELECT (SELECT count(*) FROM \"__pgs_upd\") AS \"rows_changed\"".to_string()
        } else {
            let by_tid = |cond: &str| {
                format!(
                    "st.ctid = ANY (ARRAY(SELECT t.\"__pgs_ctid\" FROM \"__pgs_src\" AS t WHERE t.\"__pgs_exists\" AND t.\"__pgs_count\" {cond}))"
                )
            };
            body.push(format!(
                "\"__pgs_del\" AS (DELETE FROM {st} AS st WHERE {} RETURNING 1)",
                by_tid("= 0")
            ));
            body.push(format!(
                "\"__pgs_upd\" AS (UPDATE {st} AS st SET {} FROM \"__pgs_src\" AS s WHERE s.\"__pgs_exists\" AND s.\"__pgs_count\" <> 0 AND {} AND st.ctid = s.\"__pgs_ctid\" AND {changed} RETURNING 1)",
                set_list.join(", "),
                by_tid("<> 0")
            ));
            body.push(format!(
                "\"__pgs_ins\" AS (INSERT INTO {st} ({cols}, \"__pgs_row_id\") SELECT {scols}, s.\"__pgs_row_id\" FROM \"__pgs_src\" AS s WHERE NOT s.\"__pgs_exists\" AND s.\"__pgs_count\" > 0 RETURNING 1)",
                cols = stored.join(", "),
                scols = stored.iter().map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")
            ));
            "SELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_upd\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"".to_string()
        };
        let diff = self.finish(body, &tail);
        let hidden = gnames
            .iter()
            .chain(&state_cols)
            .map(|c| c.trim_matches('"').to_string())
            .chain([contract::ROW_ID.to_string()])
            .collect();
        let _ = self.c;
        self.maintained(&st, &new_rows, diff, hidden)
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
    new: &'s str,
    /// Its delta (a CTE name, quoted).
    delta: &'s str,
}

fn side<'s>(leaves: &'s [usize], out: &'s [usize], new: &'s str, delta: &'s str) -> Side<'s> {
    Side {
        leaves,
        out,
        new,
        delta,
    }
}

/// A join condition split for the keyed dangling-row term.
struct KeyedCondition {
    /// The columns of the other side compared by equality with the preserved side.
    keys: Vec<(usize, usize)>,
    /// The conjuncts that join the keys to the preserved side (the equalities) or
    /// test the preserved side alone.
    p_side: Vec<Expr>,
    /// The conjuncts on the other side alone (a filter before grouping).
    o_only: Vec<Expr>,
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
            if matches!(
                e,
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
            ) {
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
