//! Set-returning functions in FROM (`unnest`, `generate_series`, `jsonb_each`, ...):
//! a leaf whose table is the function's output columns (typed by
//! `analyze::srf`), the ordinality last as its key. A function whose arguments
//! name the columns to its left is applied to each of their rows
//! ([`Tree::Lateral`]); one that names none is a constant relation.

use super::*;
use crate::analyze::infer::{arg_types, RelColumns};
use crate::analyze::srf::{self, Refusal};
use crate::catalog::Column;
use crate::ir::{FuncCall, FuncLeaf, FUNCTION_SOURCE};
use crate::spec::QualifiedName;

impl Binder<'_> {
    /// Bind the function FROM item `f` as a leaf; when its arguments name other
    /// leaves, `lateral_func` holds it for the join that brings it in.
    pub(super) fn bind_function(&mut self, f: &TableFactor) -> Result<Tree> {
        let span = span_range(self.query, f.span());
        let refusal = |r: Refusal| match r {
            Refusal::Unsupported(what) => unsupported(self.query, &what, Some(f)),
            Refusal::Invalid(m) => Error::Invalid(Diagnostic::new(m).with_span(span.clone())),
        };
        let item = srf::item(f)
            .expect("a function FROM item")
            .map_err(refusal)?;
        let rels = self.scope_rels();
        let mut calls = Vec::new();
        let mut types = Vec::new();
        for c in &item.calls {
            let args = c
                .args
                .iter()
                .map(|a| self.bind_expr(a, false))
                .collect::<Result<Vec<_>>>()?;
            types.push(arg_types(self.query, self.catalog, &c.args, rels.clone()));
            calls.push(FuncCall {
                name: sql!("pg_catalog.{}", Sql::ident(&c.name)),
                args,
                coldefs: None,
            });
        }
        let cols = srf::columns(&item, &types).map_err(refusal)?;
        if let Some(defs) = item.coldefs() {
            calls[0].coldefs = Some(Sql::join(
                defs.iter()
                    .map(|(n, t)| sql!("{} {}", Sql::ident(n), Sql::type_name(t))),
                ", ",
            ));
        }
        for (k, (n, _)) in cols.iter().enumerate() {
            if cols[..k].iter().any(|(m, _)| m == n) {
                return Err(unsupported(
                    self.query,
                    &format!(
                        "a function in FROM with two columns named `{n}` (name them: `AS t(a, b)`)"
                    ),
                    Some(f),
                ));
            }
        }
        let alias = item.rel_name();
        if self.frame_has_alias(&alias) {
            return Err(Error::Invalid(
                Diagnostic::new(format!("table name `{alias}` specified more than once"))
                    .with_span(span)
                    .with_help("give each occurrence its own alias"),
            ));
        }
        let key = cols.last().map(|(n, _)| n.clone()).expect("ordinality");
        let table = Table {
            name: QualifiedName {
                schema: String::new(),
                name: alias.clone(),
            },
            columns: cols
                .into_iter()
                .map(|(name, t)| Column {
                    name,
                    sql_type: t.sql.unwrap_or_default(),
                    nullable: t.null != Some(false),
                })
                .collect(),
            primary_key: vec![key],
            oid: None,
        };
        let func = FuncLeaf {
            calls,
            text: f.to_string(),
        };
        let lateral = !func.markers().is_empty();
        self.leaves.push(Leaf {
            source: FUNCTION_SOURCE,
            alias,
            table,
            agg: None,
            func: Some(func),
        });
        let idx = self.leaves.len() - 1;
        if let Some(frame) = self.frames.last_mut() {
            frame.push(Entry::Leaf(idx));
        }
        if lateral {
            self.lateral_func = Some(idx);
        }
        Ok(Tree::Leaf(idx))
    }

    /// `input` joined (`kind`: inner or left) with the function leaf `func`, which
    /// names columns of `input` only.
    pub(super) fn lateral_function(
        &self,
        input: Option<Tree>,
        func: usize,
        kind: JoinKind,
        on: Expr,
        on_text: Sql,
        f: &TableFactor,
    ) -> Result<Tree> {
        let reads: Vec<usize> = self.leaves[func]
            .func
            .as_ref()
            .map(|x| x.markers().into_iter().map(|(l, _)| l).collect())
            .unwrap_or_default();
        let Some(input) = input.filter(|t| {
            let ls = t.leaves();
            reads.iter().all(|l| ls.contains(l))
        }) else {
            return Err(unsupported(
                self.query,
                "a function in FROM whose arguments name the columns of an enclosing query",
                Some(f),
            ));
        };
        if !matches!(kind, JoinKind::Inner | JoinKind::Left) {
            return Err(Error::Invalid(
                Diagnostic::new(
                    "a function in FROM that names the columns to its left cannot be on the right of a RIGHT or FULL JOIN",
                )
                .with_span(span_range(self.query, f.span())),
            ));
        }
        Ok(Tree::Lateral {
            kind,
            input: Box::new(input),
            func,
            on,
            on_text,
        })
    }

    /// The relations in scope with their column types, for the types of a
    /// function's arguments.
    fn scope_rels(&self) -> Vec<RelColumns> {
        let leaf_col = |l: usize, c: usize| {
            let col = &self.leaves[l].table.columns[c];
            let t =
                (!col.sql_type.is_empty()).then(|| crate::analyze::types::canonical(&col.sql_type));
            (t, Some(col.nullable))
        };
        let mut out = Vec::new();
        for frame in &self.frames {
            for e in frame {
                match *e {
                    Entry::Leaf(l) => {
                        let leaf = &self.leaves[l];
                        out.push((
                            leaf.alias.clone(),
                            (0..leaf.table.columns.len())
                                .map(|c| {
                                    let (t, n) = leaf_col(l, c);
                                    (leaf.table.columns[c].name.clone(), t, n)
                                })
                                .collect(),
                        ));
                    }
                    Entry::Virtual(v) => {
                        let virt = &self.virtuals[v];
                        out.push((
                            virt.alias.clone(),
                            virt.items
                                .iter()
                                .map(|(n, e)| {
                                    let mut e = e;
                                    while let Expr::Nested(inner) = e {
                                        e = inner;
                                    }
                                    match as_marker(e) {
                                        Some(Marker::Col { leaf, col }) => {
                                            let (t, null) = leaf_col(leaf, col);
                                            (n.clone(), t, null)
                                        }
                                        _ => (n.clone(), None, None),
                                    }
                                })
                                .collect(),
                        ));
                    }
                }
            }
        }
        out
    }
}
