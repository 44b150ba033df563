//! Name resolution: a column reference against the frames of visible relations
//! (innermost first), `USING` columns, virtual relations of inlined subqueries;
//! ambiguous and unknown names with a hint.

use super::*;

impl Binder<'_> {
    /// The column names an unqualified reference reaches in `entries`, in order,
    /// each once.
    pub(super) fn visible_names(&self, entries: &[Entry]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in entries {
            let names: Vec<(String, Hit)> = match *e {
                Entry::Leaf(li) => self.leaves[li]
                    .table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(ci, c)| (c.name.clone(), Hit::Col(li, ci)))
                    .collect(),
                Entry::Virtual(vi) => self.virtuals[vi]
                    .items
                    .iter()
                    .enumerate()
                    .map(|(ii, (n, _))| (n.clone(), Hit::Virtual(vi, ii)))
                    .collect(),
            };
            for (n, h) in names {
                if !n.starts_with("__pgs_") && !self.hidden.contains(&h) && !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// The one column named `col` an unqualified reference reaches in `entries`.
    pub(super) fn using_hit(
        &self,
        entries: &[Entry],
        col: &str,
        side: &str,
        f: &TableFactor,
    ) -> Result<Hit> {
        let mut hits = Vec::new();
        self.hits_in(entries, &None, col, &mut hits);
        hits.retain(|h| !self.hidden.contains(h));
        match hits.as_slice() {
            [h] => Ok(*h),
            [] => Err(Error::Invalid(
                Diagnostic::new(format!(
                    "column `{col}` specified in USING clause does not exist in {side} table"
                ))
                .with_span(span_range(self.query, f.span())),
            )),
            _ => Err(Error::Invalid(
                Diagnostic::new(format!(
                    "common column name `{col}` appears more than once in {side} table"
                ))
                .with_span(span_range(self.query, f.span())),
            )),
        }
    }

    pub(super) fn hit_expr(&self, h: Hit) -> Expr {
        match h {
            Hit::Col(leaf, col) => marker(Marker::Col { leaf, col }),
            Hit::Virtual(vi, ii) => Expr::Nested(Box::new(self.virtuals[vi].items[ii].1.clone())),
        }
    }

    /// Resolve a column reference; `None` when it is not one, or not found.
    pub(super) fn hit_alias(&self, h: &Hit) -> &str {
        match *h {
            Hit::Col(l, _) => &self.leaves[l].alias,
            Hit::Virtual(v, _) => &self.virtuals[v].alias,
        }
    }

    pub(super) fn try_resolve(&self, e: &Expr) -> Option<Expr> {
        self.resolve(e).ok().flatten()
    }

    /// Resolve `col`, `alias.col` or `schema.table.col`.
    pub(super) fn resolve(&self, e: &Expr) -> Result<Option<Expr>> {
        if as_marker(e).is_some() {
            return Ok(None);
        }
        let parts: Vec<&Ident> = match e {
            Expr::Identifier(i) => vec![i],
            Expr::CompoundIdentifier(ids) => ids.iter().collect(),
            _ => return Ok(None),
        };
        let names: Vec<String> = parts.iter().map(|i| ident_value(i)).collect();
        let span = expr_range(self.query, e);
        let (qual, col) = match names.as_slice() {
            [c] => (None, c.clone()),
            [t, c] => (Some((None, t.clone())), c.clone()),
            [s, t, c] => (Some((Some(s.clone()), t.clone())), c.clone()),
            _ => {
                return Err(Error::Invalid(
                    Diagnostic::new(format!("cannot resolve `{e}`")).with_span(span),
                ));
            }
        };
        let mut hits = Vec::new();
        for frame in self.frames.iter().rev() {
            self.hits_in(frame, &qual, &col, &mut hits);
            if qual.is_none() {
                hits.retain(|h| !self.hidden.contains(h));
            }
            if !hits.is_empty() {
                break;
            }
        }
        self.finish_resolve(e, span, qual, col, hits)
    }

    pub(super) fn frame_has_alias(&self, alias: &str) -> bool {
        self.frames
            .last()
            .map(|f| {
                f.iter().any(|e| match *e {
                    Entry::Leaf(i) => self.leaves[i].alias == alias,
                    Entry::Virtual(v) => self.virtuals[v].alias == alias,
                })
            })
            .unwrap_or(false)
    }

    /// The columns named `col` that a reference (qualified by `qual`, if at all)
    /// reaches in `frame`: table columns and items of inlined subqueries, CTEs and
    /// views.
    pub(super) fn hits_in(
        &self,
        frame: &[Entry],
        qual: &Option<(Option<String>, String)>,
        col: &str,
        hits: &mut Vec<Hit>,
    ) {
        for e in frame {
            match *e {
                Entry::Leaf(li) => {
                    let l = &self.leaves[li];
                    let reached = match qual {
                        None => true,
                        Some((Some(s), t)) => {
                            *s == l.table.name.schema
                                && *t == l.table.name.name
                                && l.alias == l.table.name.name
                        }
                        Some((None, t)) => *t == l.alias,
                    };
                    if let Some(ci) = l.table.column_index(col).filter(|_| reached) {
                        hits.push(Hit::Col(li, ci));
                    }
                }
                Entry::Virtual(vi) => {
                    let v = &self.virtuals[vi];
                    let reached = match qual {
                        None => true,
                        Some((None, t)) => *t == v.alias,
                        Some((Some(_), _)) => false,
                    };
                    if let Some(ii) = v
                        .items
                        .iter()
                        .position(|(n, _)| n == col)
                        .filter(|_| reached)
                    {
                        hits.push(Hit::Virtual(vi, ii));
                    }
                }
            }
        }
    }

    pub(super) fn finish_resolve(
        &self,
        e: &Expr,
        span: Option<std::ops::Range<usize>>,
        qual: Option<(Option<String>, String)>,
        col: String,
        hits: Vec<Hit>,
    ) -> Result<Option<Expr>> {
        match hits.as_slice() {
            [Hit::Col(leaf, col)] => Ok(Some(marker(Marker::Col {
                leaf: *leaf,
                col: *col,
            }))),
            [Hit::Virtual(vi, ii)] => Ok(Some(Expr::Nested(Box::new(
                self.virtuals[*vi].items[*ii].1.clone(),
            )))),
            [] => {
                // The relations in scope, innermost first: table occurrences and
                // inlined subqueries, CTEs and views.
                let visible: Vec<(&str, Vec<&str>)> = self
                    .frames
                    .iter()
                    .rev()
                    .flatten()
                    .map(|entry| match *entry {
                        Entry::Leaf(li) => {
                            let l = &self.leaves[li];
                            (
                                l.alias.as_str(),
                                l.table.columns.iter().map(|c| c.name.as_str()).collect(),
                            )
                        }
                        Entry::Virtual(vi) => {
                            let v = &self.virtuals[vi];
                            (
                                v.alias.as_str(),
                                v.items.iter().map(|(n, _)| n.as_str()).collect(),
                            )
                        }
                    })
                    .collect();
                if let Some((_, t)) = &qual {
                    if !visible.iter().any(|(a, _)| a == t) {
                        let help = nearest(t, visible.iter().map(|(a, _)| *a))
                            .map(|n| format!("did you mean `{n}`?"))
                            .unwrap_or_else(|| format!("the FROM clause has {}", self.aliases()));
                        return Err(Error::Invalid(
                            Diagnostic::new(format!("missing FROM-clause entry for table `{t}`"))
                                .with_span(span)
                                .with_help(help),
                        ));
                    }
                }
                let candidates: Vec<&str> = visible
                    .iter()
                    .filter(|(a, _)| qual.as_ref().map(|(_, t)| t == a).unwrap_or(true))
                    .flat_map(|(_, cols)| cols.iter().copied())
                    .filter(|c| !c.starts_with("__pgs_"))
                    .collect();
                if SYSTEM_COLUMNS.contains(&col.as_str()) {
                    return Err(Error::Invalid(
                        Diagnostic::new(format!(
                            "`{e}` is a system column: a stream table cannot read system columns"
                        ))
                        .with_span(span)
                        .with_help(
                            "system columns change when PostgreSQL rewrites a row and are not \
                             captured; use the table's own columns (its primary key identifies a row)",
                        ),
                    ));
                }
                let mut d = Diagnostic::new(format!("unknown column `{e}`")).with_span(span);
                if let Some(n) = nearest(&col, candidates.into_iter()) {
                    d = d.with_help(format!("a column named `{n}` exists"));
                }
                Err(Error::Invalid(d))
            }
            many => {
                let tables: Vec<String> = many
                    .iter()
                    .map(|h| format!("`{}`", self.hit_alias(h)))
                    .collect();
                Err(Error::Invalid(
                    Diagnostic::new(format!(
                        "column reference `{e}` is ambiguous: {} have it",
                        tables.join(" and ")
                    ))
                    .with_span(span)
                    .with_help(format!(
                        "qualify it, e.g. `{}.{col}`",
                        self.hit_alias(&many[0])
                    )),
                ))
            }
        }
    }

    pub(super) fn aliases(&self) -> String {
        self.frames
            .iter()
            .rev()
            .flatten()
            .map(|entry| match *entry {
                Entry::Leaf(li) => format!("`{}`", self.leaves[li].alias),
                Entry::Virtual(vi) => format!("`{}`", self.virtuals[vi].alias),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
