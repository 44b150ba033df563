//! Semi-naive maintenance of `WITH RECURSIVE` under insert-only windows (the
//! analysis is `analyze::recursive`). For inserted rows `ΔS` of the sources the new
//! derivations are, by the product rule over the factors in any fixed order,
//!
//! ```text
//! Δr = Δbase + Σ_i step(r_old, S_1 old .. S_{i-1} old, ΔS_i, S_{i+1} new ..) + step(Δr, S new ..)
//! ```
//!
//! where `S old = S new − ΔS` and `r_old` is the stored result. The last term is the
//! recursive one, so one recursive CTE seeded with the others computes every new row;
//! they are appended to the storage table. When a window holds a delete or update,
//! the refresh recomputes and applies the difference (`recompute`).

use crate::analyze::recursive::{Factor, SemiNaive, Version};
use crate::catalog::Table;
use crate::contract;
use crate::render::qualified_by;
use crate::render::{sql, JoinSql, Sql};
use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Select, TableFactor};

/// What the renderer supplies: per source, SQL for its window's inserted rows
/// (columns named as the table's), and the storage table.
pub(crate) struct Inputs<'a> {
    pub sources: &'a [Table],
    /// Per source: `SELECT b.* FROM <buffer> ... WHERE <window>` (every image).
    pub windows: Vec<Sql>,
    /// The storage table, quoted and qualified.
    pub storage: &'a Sql,
    /// The output column names, in order.
    pub outputs: &'a [String],
    /// Renders a row id from a row text and a number (the renderer's hash).
    pub row_hash: &'a dyn Fn(&Sql, &Sql) -> Sql,
    /// The frontier advance of the stream table (a data-modifying statement).
    pub advance: Sql,
}

const DELTA: &str = "__pgs_d";

impl SemiNaive {
    /// The insert-only refresh: one statement that appends the new rows, advances
    /// the frontiers and returns the number of rows inserted.
    pub(crate) fn render(&self, inp: &Inputs<'_>) -> Sql {
        let (base_f, step_f) = (&self.base_factors, &self.step_factors);
        let mut seed = Vec::new();
        // Δbase: factor i reads its delta, those before it their old state.
        for i in 0..base_f.len() {
            let versions: Vec<Version> = (0..base_f.len()).map(|j| version(j, i)).collect();
            seed.push(self.term(&self.base, base_f, &versions, inp));
        }
        // The step over the stored result: r old, then the sources in order.
        let sources_in_step: Vec<usize> = step_f
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(f, Factor::Source { .. }))
            .map(|(j, _)| j)
            .collect();
        for k in 0..sources_in_step.len() {
            let versions: Vec<Version> = step_f
                .iter()
                .enumerate()
                .map(|(j, f)| match f {
                    Factor::Cte { .. } => Version::Old,
                    Factor::Source { .. } => {
                        let pos = sources_in_step.iter().position(|&x| x == j).unwrap_or(0);
                        version(pos, k)
                    }
                })
                .collect();
            seed.push(self.term(&self.step, step_f, &versions, inp));
        }
        // The recursive term: the new rows of r through the current sources.
        let rec_versions: Vec<Version> = step_f
            .iter()
            .map(|f| match f {
                Factor::Cte { .. } => Version::Delta,
                Factor::Source { .. } => Version::New,
            })
            .collect();
        let recursive = self.term(&self.step, step_f, &rec_versions, inp);
        let cols = self
            .cte_cols
            .iter()
            .map(|c| Sql::ident(c))
            .collect::<Vec<_>>()
            .join_sql(", ");
        let outs: Vec<Sql> = inp.outputs.iter().map(|c| Sql::ident(c)).collect();
        let new_items = self
            .perm
            .iter()
            .zip(&outs)
            .map(|(&j, o)| sql!("d.{} AS {}", Sql::ident(&self.cte_cols[j]), o))
            .collect::<Vec<_>>()
            .join_sql(", ");
        let q_cols = qualified_by("q", &outs).join_sql(", ");
        let st = inp.storage;
        let n = "\"__pgs_n\"";
        // Copies already stored of a row: numbered 1..c; probe c + 1 until absent.
        let text_k = sql!("ROW({}, p.k + 1)::text", q_cols);
        let stored = sql!("(WITH RECURSIVE p(k) AS (SELECT 0::bigint UNION ALL SELECT p.k + 1 FROM p WHERE EXISTS \
             (SELECT 1 FROM {0} AS s WHERE s.\"__pgs_row_id\" = {1} AND s.{2} = p.k + 1 AND ROW({3}, s.{2})::text = {4})) \
             SELECT max(p.k) FROM p)", st, (inp.row_hash)(&text_k, &Sql::fixed("p.k + 1")), n, qualified_by("s", &outs).join_sql(", "), text_k);
        let numbered = sql!("SELECT q.*, {} + row_number() OVER (PARTITION BY ROW({})::text) AS {} FROM \"__pgs_new\" AS q", stored, q_cols, n);
        let x_cols = qualified_by("x", &outs).join_sql(", ");
        sql!(
            "WITH RECURSIVE {0} ({1}) AS ({2}\nUNION ALL {3}),\n\
             \"__pgs_adv\" AS ({4}),\n\
             \"__pgs_new\" AS MATERIALIZED (SELECT {5} FROM {0} AS d),\n\
             \"__pgs_ins\" AS (INSERT INTO {6} ({7}, {8}, \"__pgs_row_id\") \
             SELECT {9}, x.{8}, {10} FROM ({11}) AS x RETURNING 1)\n\
             SELECT count(*) AS \"rows_changed\" FROM \"__pgs_ins\"",
            Sql::ident(DELTA),
            cols,
            seed.join_sql("\nUNION ALL "),
            recursive,
            inp.advance,
            new_items,
            st,
            outs.join_sql(", "),
            n,
            x_cols,
            (inp.row_hash)(&sql!("ROW({}, x.{})::text", x_cols, n), &sql!("x.{}", n)),
            numbered
        )
    }

    /// One term: the Select with each factor replaced by the chosen state.
    fn term(&self, s: &Select, fs: &[Factor], versions: &[Version], inp: &Inputs<'_>) -> Sql {
        let mut s = s.clone();
        let mut k = 0;
        for twj in &mut s.from {
            replace(&mut twj.relation, &fs[k], versions[k], self, inp);
            k += 1;
            for j in &mut twj.joins {
                replace(&mut j.relation, &fs[k], versions[k], self, inp);
                k += 1;
            }
        }
        Sql::select(&s)
    }

    /// The stored result as the CTE's columns.
    fn old_result(&self, inp: &Inputs<'_>) -> Sql {
        let items = (0..self.cte_cols.len())
            .map(|j| {
                let i = self.perm.iter().position(|&p| p == j).expect("permutation");
                sql!(
                    "s.{} AS {}",
                    Sql::ident(&inp.outputs[i]),
                    Sql::ident(&self.cte_cols[j])
                )
            })
            .collect::<Vec<_>>()
            .join_sql(", ");
        sql!("SELECT {} FROM {} AS s", items, inp.storage)
    }
}

/// In the `k`-th term of a product's delta, the version of its `j`-th factor: the
/// old state before the delta, the delta, the new state after it.
fn version(j: usize, k: usize) -> Version {
    match j.cmp(&k) {
        std::cmp::Ordering::Less => Version::Old,
        std::cmp::Ordering::Equal => Version::Delta,
        std::cmp::Ordering::Greater => Version::New,
    }
}

/// The inserted rows of a source's window, with the columns the query reads (see
/// [`SemiNaive::read_columns`]).
fn inserted(t: &Table, window: &Sql, sn: &SemiNaive) -> Sql {
    let cols = sn.read_list(t, "w");
    sql!(
        "SELECT {} FROM ({}) AS w WHERE w.{} > 0",
        cols,
        window,
        Sql::ident(contract::WEIGHT)
    )
}

fn replace(rel: &mut TableFactor, f: &Factor, v: Version, sn: &SemiNaive, inp: &Inputs<'_>) {
    let (sql, alias) = match (f, v) {
        (Factor::Cte { alias }, Version::Delta) => {
            let delta = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
                '"', DELTA,
            ))]);
            *rel = crate::sql::walk::table_factor(delta, alias);
            return;
        }
        (Factor::Cte { alias }, _) => (sn.old_result(inp), alias),
        (Factor::Source { .. }, Version::New) => return,
        (Factor::Source { index, alias }, Version::Delta) => (
            inserted(&inp.sources[*index], &inp.windows[*index], sn),
            alias,
        ),
        (Factor::Source { index, alias }, Version::Old) => {
            let t = &inp.sources[*index];
            let table = sql!(
                "{}.{}",
                Sql::ident(&t.name.schema),
                Sql::ident(&t.name.name)
            );
            let ins = inserted(t, &inp.windows[*index], sn);
            let sql = if t.primary_key.is_empty() {
                // Without a key a row is its values; the inserted rows are among the
                // table's, so removing them commutes with keeping only the columns
                // read.
                sql!(
                    "SELECT {} FROM {} AS o EXCEPT ALL {}",
                    sn.read_list(t, "o"),
                    table,
                    ins
                )
            } else {
                let on = t
                    .primary_key
                    .iter()
                    .map(|k| sql!("i.{0} = o.{0}", Sql::ident(k)))
                    .collect::<Vec<_>>()
                    .join_sql(" AND ");
                sql!(
                    "SELECT {} FROM {} AS o WHERE NOT EXISTS (SELECT 1 FROM ({}) AS i WHERE {})",
                    sn.read_list(t, "o"),
                    table,
                    ins,
                    on
                )
            };
            (sql, alias)
        }
    };
    *rel = sql.into_derived_table(alias);
}

impl SemiNaive {
    /// [`SemiNaive::read_columns`] of `t`, each as `q.column`, comma-separated.
    fn read_list(&self, t: &Table, q: &'static str) -> Sql {
        self.read_columns(t)
            .iter()
            .map(|c| sql!("{}.{}", q, Sql::ident(c)))
            .collect::<Vec<_>>()
            .join_sql(", ")
    }
}
