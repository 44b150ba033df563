//! Explain: the operator tree of a compiled stream table with the strategy of each
//! node, followed by the SQL it renders to.

use crate::ir::{Block, Body, Compiled, JoinKind, OverStage, Shape, Strategy, Tree};
use crate::sql::fragment::Sql;

impl Compiled {
    /// One line saying how the stream table is maintained (the root's strategy, as in
    /// [`Compiled::explain`]); the runtime records it for `pgstream.pgs_status()`.
    pub fn strategy_summary(&self) -> String {
        let base = self.root_summary();
        match &self.body {
            Body::Incremental(b)
                if b.leaves.iter().any(|l| l.agg.is_some())
                    || matches!(&b.shape, Shape::SetOp { branches, .. }
                        if branches.iter().any(|br| br.leaves.iter().any(|l| l.agg.is_some()))) =>
            {
                // A one-row leaf kept by running sums (`AggLeaf::inverse`) reads no
                // table: said after the general rule.
                let sums = b
                    .leaves
                    .iter()
                    .filter_map(|l| l.agg.as_ref())
                    .any(|a| a.inverse.is_some());
                // An aggregate over a join finds the groups through it.
                let joined = b
                    .leaves
                    .iter()
                    .filter_map(|l| l.agg.as_ref())
                    .any(|a| !a.joined.is_empty());
                format!(
                    "{base}; each aggregate subquery (in FROM, a correlated scalar aggregate LEFT JOINed on its correlation keys, or an uncorrelated one CROSS JOINed as its one row) recomputes the groups the changes of its table touch (old and new state) and is read by group key{}{}",
                    if joined {
                        "; one over several tables, the groups the changes of any of them touch, found through its join"
                    } else {
                        ""
                    },
                    if sums {
                        "; a one-row count, sum or avg keeps its counts and sums in a state table and reads only the changes"
                    } else {
                        ""
                    }
                )
            }
            _ => base,
        }
    }

    fn root_summary(&self) -> String {
        if let (Some(over), Body::Incremental(b)) = (&self.over_stage, &self.body) {
            let (holds, stage) = match &b.shape {
                Shape::Aggregate {
                    recompute: true, ..
                } => ("every group", "recompute the groups the changes touch"),
                Shape::Aggregate { .. } => ("every group", "per-group counters"),
                _ => ("every row", "the net change per row key"),
            };
            return match over {
                OverStage::TopK(top) => format!(
                    "incremental: {} read from a stage table that holds {holds}, maintained by delta rules ({stage})",
                    top.text
                ),
                OverStage::Query(outer) => format!(
                    "incremental below: the aggregate relation `{}` is kept in a stage table by delta rules ({stage}); the query around it is recomputed over the stage's rows and the difference applied",
                    outer.text
                ),
            };
        }
        match (&self.body, &self.strategy) {
            (_, Strategy::Full) => {
                "full: recompute and apply the difference on every refresh".into()
            }
            (_, Strategy::RecomputeDiff { reason }) => {
                format!("recompute and apply the difference when a source changed ({reason})")
            }
            (Body::Incremental(b), _) => match &b.shape {
                Shape::Project => "incremental: delta rules".into(),
                Shape::Aggregate {
                    recompute: false, ..
                } => "incremental: delta rules, per-group counters".into(),
                Shape::Aggregate {
                    recompute: true, ..
                } => "incremental: delta rules, recompute the groups the changes touch".into(),
                Shape::Window {
                    distinct_on: Some(_),
                    ..
                } => "incremental: recompute the DISTINCT ON keys the changes touch".into(),
                Shape::Window { partition, .. } if partition.is_empty() => {
                    "recompute the whole result when anything changed (window without PARTITION BY)"
                        .into()
                }
                Shape::Window { .. } => {
                    "incremental: recompute the partitions the changes touch".into()
                }
                Shape::SetOp { op, all, .. } => match (op, all) {
                    (crate::ir::SetOpKind::Union, _) => {
                        "incremental: delta rules, multiplicities".into()
                    }
                    _ => format!(
                        "incremental: recompute the rows the changes touch ({}{})",
                        op.sql(),
                        if *all { " ALL" } else { "" }
                    ),
                },
            },
            (Body::Recompute { .. }, Strategy::Incremental) => "incremental".into(),
        }
    }

    /// The operator tree with the strategy per node, followed by the generated SQL.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "stream table {} ({} mode)\n",
            self.spec.name, self.spec.mode
        ));
        out.push_str(&format!(
            "output columns: {}\n\n",
            self.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.push_str(&format!("strategy: {}\n\n", self.strategy_summary()));
        out.push_str("operator tree:\n");
        match &self.body {
            Body::Incremental(b) => {
                if let Some(over) = &self.over_stage {
                    let stage = crate::sql::fragment::sql!(
                        "{}.{}",
                        Sql::ident(crate::contract::CATALOG_SCHEMA),
                        Sql::ident(&crate::contract::stage_table(0))
                    );
                    out.push_str(&match over {
                        OverStage::TopK(top) => format!(
                            "  TopK {}                   strategy: the first rows of the stage table {stage}, recomputed from its state after each refresh (an index on the ORDER BY columns), difference applied\n",
                            top.text
                        ),
                        OverStage::Query(_) => format!(
                            "  Query around the stage        strategy: the query over the rows of the stage table {stage} after each refresh (and the current rows of its other relations), recomputed, difference applied\n"
                        ),
                    });
                    out.push_str("  stage:\n");
                }
                explain_block(b, &mut out)
            }
            Body::Recompute { .. } => {
                let why = match &self.strategy {
                    Strategy::RecomputeDiff { reason } => {
                        format!("recompute-and-diff when a source changed ({reason})")
                    }
                    _ => "recompute-and-diff on every refresh (FULL mode)".to_string(),
                };
                out.push_str(&format!(
                    "  Query                                   strategy: {why}\n"
                ));
                for s in &self.sources {
                    out.push_str(&format!("    Scan {}                 strategy: change buffer (used to detect changes)\n", s.name));
                }
            }
        }
        let a = self.render(&self.placeholder_context());
        out.push_str("\nstorage table:\n");
        for s in &a.storage_ddl {
            out.push_str(&format!("  {s};\n"));
        }
        out.push_str("\nfull refresh:\n");
        out.push_str(&indent(&a.full_refresh));
        if let Some(d) = &a.differential_refresh {
            out.push_str("\ndifferential refresh:\n");
            out.push_str(&indent(d));
        }
        out
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

fn explain_block(b: &Block, out: &mut String) {
    let mut lines: Vec<(usize, String, String)> = Vec::new();
    let mut depth = 0;
    match &b.shape {
        Shape::Aggregate {
            group_texts,
            aggs,
            recompute,
            having,
            ..
        } => {
            let calls: Vec<String> = aggs.iter().map(|a| a.text.clone()).collect();
            let group = if group_texts.is_empty() {
                "(global: exactly one row)".to_string()
            } else {
                Sql::join(group_texts.iter().cloned(), ", ").to_string()
            };
            let having = having.as_ref().map(|_| " HAVING ...").unwrap_or("");
            let strategy = if *recompute {
                "recompute only the groups the changes touch, apply the difference"
            } else {
                "per-group counters in hidden columns (__pgs_count, sums and non-NULL counts)"
            };
            lines.push((
                depth,
                format!("Aggregate group by {group}: {}{having}", calls.join(", ")),
                strategy.into(),
            ));
            depth += 1;
        }
        Shape::Window {
            partition,
            distinct_on,
        } => {
            let strategy = if distinct_on.is_some() {
                "recompute the DISTINCT ON keys the changes touch, apply the difference"
            } else if partition.is_empty() {
                "recompute the whole result when anything changed (no PARTITION BY)"
            } else {
                "recompute the partitions the changes touch, apply the difference"
            };
            lines.push((
                depth,
                format!(
                    "{} {}",
                    if distinct_on.is_some() {
                        "DistinctOn"
                    } else {
                        "Window"
                    },
                    b.items
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                strategy.into(),
            ));
            depth += 1;
        }
        Shape::SetOp { op, all, branches } => {
            let strategy = match (op, all) {
                (crate::ir::SetOpKind::Union, true) => {
                    "bag of the branches' delta rows (multiplicities)"
                }
                (crate::ir::SetOpKind::Union, false) => "multiplicity counter per distinct row",
                _ => "recompute the rows whose values the changes touch, apply the difference",
            };
            lines.push((
                depth,
                format!(
                    "{}{} of {} queries",
                    op.sql(),
                    if *all { " ALL" } else { "" },
                    branches.len()
                ),
                strategy.into(),
            ));
            depth += 1;
        }
        Shape::Project => {
            lines.push((
                depth,
                format!(
                    "Project {}",
                    b.items
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "apply to delta rows; net effect per source primary keys".into(),
            ));
            depth += 1;
        }
    }
    fn tree(t: &Tree, b: &Block, depth: usize, lines: &mut Vec<(usize, String, String)>) {
        match t {
            Tree::Filter { input, text, .. } => {
                lines.push((
                    depth,
                    format!("Filter {text}"),
                    "apply to delta rows, weights carried".into(),
                ));
                tree(input, b, depth + 1, lines);
            }
            Tree::Leaf(i) if b.leaves[*i].func.is_some() => {
                let l = &b.leaves[*i];
                let f = l.func.as_ref().expect("a function leaf");
                lines.push((
                    depth,
                    format!("Function {} AS {}", f.text, l.alias),
                    "constant relation: no delta".into(),
                ));
            }
            Tree::Lateral {
                kind,
                input,
                func,
                on_text,
                ..
            } => {
                let l = &b.leaves[*func];
                let f = l.func.as_ref().expect("a function leaf");
                lines.push((
                    depth,
                    format!("{} LATERAL {} ON {on_text}", kind.sql(), f.text),
                    "row-local: the function applied to the input's delta rows, weights carried"
                        .into(),
                ));
                tree(input, b, depth + 1, lines);
            }
            Tree::Leaf(i) => {
                let l = &b.leaves[*i];
                match &l.agg {
                    None => lines.push((
                        depth,
                        format!("Scan {} AS {}", l.table.name, l.alias),
                        "change buffer window (Z-set: -old, +new)".into(),
                    )),
                    // An inverse exists only without GROUP BY (`AggLeaf::inverse`).
                    Some(a) if a.inverse.is_some() => lines.push((
                        depth,
                        format!("ScalarAggregate ({}) AS {}", a.text, l.alias),
                        "delta: its counts and sums kept in a state table, moved by the changes' (the table is not read); the rows joined to it are re-evaluated only when its value changed".into(),
                    )),
                    Some(a) if a.groups.is_empty() => lines.push((
                        depth,
                        format!("ScalarAggregate ({}) AS {}", a.text, l.alias),
                        "delta: its one row recomputed over the new (+1) and old (-1) state when its table changed; the rows joined to it are re-evaluated only when its value changed".into(),
                    )),
                    Some(a) => lines.push((
                        depth,
                        format!("AggregateSubquery ({}) AS {}", a.text, l.alias),
                        if a.joined.is_empty() {
                            "delta: the groups the changes touch, recomputed over the new (+1) and old (-1) state; joined to other deltas by its group keys".into()
                        } else {
                            "delta: the groups the changes of any of its tables touch (each table's changes joined with the other tables' rows), recomputed over the new (+1) and old (-1) state; joined to other deltas by its group keys".into()
                        },
                    )),
                }
            }
            Tree::Join {
                kind,
                left,
                right,
                on_text,
                ..
            } => {
                let strat = match kind {
                    JoinKind::Semi => {
                        "left delta minus the anti-join delta (matches counted, not multiplied)"
                    }
                    JoinKind::Anti => {
                        "left rows without a match: recounted for the keys the changes touch"
                    }
                    JoinKind::Inner => "bilinear: dL⋈R + L⋈dR - dL⋈dR",
                    JoinKind::Left | JoinKind::Right => {
                        "bilinear inner part + dangling rows recounted for affected keys"
                    }
                    JoinKind::Full => "bilinear inner part + dangling rows of both sides recounted",
                };
                lines.push((depth, format!("{} ON {on_text}", kind.sql()), strat.into()));
                tree(left, b, depth + 1, lines);
                tree(right, b, depth + 1, lines);
            }
        }
    }
    let branches: Vec<&Block> = match &b.shape {
        Shape::SetOp { branches, .. } => branches.iter().collect(),
        _ => vec![b],
    };
    let several = branches.len() > 1;
    for (i, br) in branches.iter().enumerate() {
        let mut d = depth;
        if several {
            lines.push((
                d,
                format!("Branch {}", i + 1),
                "its delta rows, weights carried".into(),
            ));
            d += 1;
        }
        if let Some(f) = &br.filter_text {
            lines.push((
                d,
                format!("Filter {f}"),
                "apply to delta rows, weights carried".into(),
            ));
            d += 1;
        }
        tree(&br.tree, br, d, &mut lines);
    }
    for (d, op, strat) in lines {
        let left = format!("{}{}", "  ".repeat(d + 1), op);
        out.push_str(&format!("{left:<60} strategy: {strat}\n"));
    }
}
