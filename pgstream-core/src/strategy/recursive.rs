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
use crate::render::qi;
use crate::sql::parse;
use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Query, Select, TableFactor};

/// What the renderer supplies: per source, SQL for its window's inserted rows
/// (columns named as the table's), and the storage table.
pub(crate) struct Inputs<'a> {
    pub sources: &'a [Table],
    /// Per source: `SELECT b.* FROM <buffer> ... WHERE <window>` (every image).
    pub windows: Vec<String>,
    /// The storage table, quoted and qualified.
    pub storage: &'a str,
    /// The output column names, in order.
    pub outputs: &'a [String],
    /// Renders a row id from a row text and a number (the renderer's hash).
    pub row_hash: &'a dyn Fn(&str, &str) -> String,
    /// The frontier advance of the stream table (a data-modifying statement).
    pub advance: String,
}

const DELTA: &str = "__pgs_d";

impl SemiNaive {
    /// The insert-only refresh: one statement that appends the new rows, advances
    /// the frontiers and returns the number of rows inserted.
    pub(crate) fn render(&self, inp: &Inputs<'_>) -> String {
        let (base_f, step_f) = (&self.base_factors, &self.step_factors);
        let mut seed = Vec::new();
        // Δbase: factor i reads its delta, those before it their old state.
        for i in 0..base_f.len() {
            let versions: Vec<Version> = (0..base_f.len())
                .map(|j| match j.cmp(&i) {
                    std::cmp::Ordering::Less => Version::Old,
                    std::cmp::Ordering::Equal => Version::Delta,
                    std::cmp::Ordering::Greater => Version::New,
                })
                .collect();
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
                        match pos.cmp(&k) {
                            std::cmp::Ordering::Less => Version::Old,
                            std::cmp::Ordering::Equal => Version::Delta,
                            std::cmp::Ordering::Greater => Version::New,
                        }
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
            .map(|c| qi(c))
            .collect::<Vec<_>>()
            .join(", ");
        let outs: Vec<String> = inp.outputs.iter().map(|c| qi(c)).collect();
        let new_items = self
            .perm
            .iter()
            .zip(&outs)
            .map(|(&j, o)| format!("d.{} AS {o}", qi(&self.cte_cols[j])))
            .collect::<Vec<_>>()
            .join(", ");
        let q_cols = outs
            .iter()
            .map(|o| format!("q.{o}"))
            .collect::<Vec<_>>()
            .join(", ");
        let st = inp.storage;
        let n = "\"__pgs_n\"";
        // Copies already stored of a row: numbered 1..c; probe c + 1 until absent.
        let text_k = format!("ROW({q_cols}, p.k + 1)::text");
        let stored = format!(
            "(WITH RECURSIVE p(k) AS (SELECT 0::bigint UNION ALL SELECT p.k + 1 FROM p WHERE EXISTS \
             (SELECT 1 FROM {st} AS s WHERE s.\"__pgs_row_id\" = {} AND s.{n} = p.k + 1 AND ROW({}, s.{n})::text = {text_k})) \
             SELECT max(p.k) FROM p)",
            (inp.row_hash)(&text_k, "p.k + 1"),
            outs.iter()
                .map(|o| format!("s.{o}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let numbered = format!(
            "SELECT q.*, {stored} + row_number() OVER (PARTITION BY ROW({q_cols})::text) AS {n} FROM \"__pgs_new\" AS q"
        );
        let x_cols = outs
            .iter()
            .map(|o| format!("x.{o}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "WITH RECURSIVE {d} ({cols}) AS ({seed}\nUNION ALL {recursive}),\n\
             \"__pgs_adv\" AS ({adv}),\n\
             \"__pgs_new\" AS MATERIALIZED (SELECT {new_items} FROM {d} AS d),\n\
             \"__pgs_ins\" AS (INSERT INTO {st} ({out_list}, {n}, \"__pgs_row_id\") \
             SELECT {x_cols}, x.{n}, {id} FROM ({numbered}) AS x RETURNING 1)\n\
             SELECT count(*) AS \"rows_changed\" FROM \"__pgs_ins\"",
            d = qi(DELTA),
            seed = seed.join("\nUNION ALL "),
            adv = inp.advance,
            out_list = outs.join(", "),
            id = (inp.row_hash)(&format!("ROW({x_cols}, x.{n})::text"), &format!("x.{n}")),
        )
    }

    /// One term: the Select with each factor replaced by the chosen state.
    fn term(&self, s: &Select, fs: &[Factor], versions: &[Version], inp: &Inputs<'_>) -> String {
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
        s.to_string()
    }

    /// The stored result as the CTE's columns.
    fn old_result(&self, inp: &Inputs<'_>) -> String {
        let items = (0..self.cte_cols.len())
            .map(|j| {
                let i = self.perm.iter().position(|&p| p == j).expect("permutation");
                format!("s.{} AS {}", qi(&inp.outputs[i]), qi(&self.cte_cols[j]))
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("SELECT {items} FROM {} AS s", inp.storage)
    }
}

/// The inserted rows of a source's window, with the columns the query reads (see
/// [`SemiNaive::read_columns`]).
fn inserted(t: &Table, window: &str, sn: &SemiNaive) -> String {
    let cols = sn.read_list(t, "w");
    format!(
        "SELECT {cols} FROM ({window}) AS w WHERE w.{} > 0",
        qi(contract::WEIGHT)
    )
}

fn replace(rel: &mut TableFactor, f: &Factor, v: Version, sn: &SemiNaive, inp: &Inputs<'_>) {
    let (sql, alias) = match (f, v) {
        (Factor::Cte { alias }, Version::Delta) => {
            *rel = TableFactor::Table {
                name: ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
                    '"', DELTA,
                ))]),
                alias: Some(crate::sql::walk::table_alias(Ident::with_quote(
                    '"',
                    alias.clone(),
                ))),
                args: None,
                with_hints: vec![],
                version: None,
                with_ordinality: false,
                partitions: vec![],
                json_path: None,
                sample: None,
                index_directives: vec![],
                inheritance: None,
            };
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
            let table = format!("{}.{}", qi(&t.name.schema), qi(&t.name.name));
            let ins = inserted(t, &inp.windows[*index], sn);
            let sql = if t.primary_key.is_empty() {
                // Without a key a row is its values; the inserted rows are among the
                // table's, so removing them commutes with keeping only the columns
                // read.
                format!(
                    "SELECT {} FROM {table} AS o EXCEPT ALL {ins}",
                    sn.read_list(t, "o")
                )
            } else {
                let on = t
                    .primary_key
                    .iter()
                    .map(|k| format!("i.{k} = o.{k}", k = qi(k)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!(
                    "SELECT {} FROM {table} AS o WHERE NOT EXISTS (SELECT 1 FROM ({ins}) AS i WHERE {on})",
                    sn.read_list(t, "o")
                )
            };
            (sql, alias)
        }
    };
    let sub: Query = parse::query_fragment(&sql).expect("pgstream renders valid SQL");
    *rel = TableFactor::Derived {
        lateral: false,
        subquery: Box::new(sub),
        alias: Some(crate::sql::walk::table_alias(Ident::with_quote(
            '"',
            alias.clone(),
        ))),
        sample: None,
    };
}

impl SemiNaive {
    /// [`SemiNaive::read_columns`] of `t`, each as `q.column`, comma-separated.
    fn read_list(&self, t: &Table, q: &str) -> String {
        self.read_columns(t)
            .iter()
            .map(|c| format!("{q}.{}", qi(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
