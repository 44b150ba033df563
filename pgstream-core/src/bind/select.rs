//! The SELECT list and aggregation: output items and their names, `GROUP BY`,
//! aggregate calls (counter rules or group recompute), `HAVING`, window functions,
//! `DISTINCT`; the block's [`Shape`].

use super::*;

impl Binder<'_> {
    pub(super) fn bind_select(&mut self, s: &Select) -> Result<Block> {
        // `WINDOW w AS (...)`: each window written where it is used.
        let mut s = match self.inline_named_windows(s)? {
            Some(r) => std::borrow::Cow::Owned(r),
            None => std::borrow::Cow::Borrowed(s),
        };
        // Scalar subqueries in WHERE, then in the select list, as joins.
        if let Some(r) = self.where_scalars_as_joins(&s) {
            s = std::borrow::Cow::Owned(r);
        }
        if let Some(r) = self.scalar_subqueries_as_joins(&s) {
            s = std::borrow::Cow::Owned(r);
        }
        let s: &Select = &s;
        let distinct = match &s.distinct {
            None | Some(sqlparser::ast::Distinct::All) => false,
            Some(sqlparser::ast::Distinct::Distinct) => true,
            Some(sqlparser::ast::Distinct::On(_)) => {
                return Err(unsupported_at(
                    self.query,
                    "DISTINCT ON",
                    Some(s.select_token.0.span),
                ));
            }
        };
        if s.from.is_empty() {
            return Err(unsupported_at(
                self.query,
                "a query without FROM",
                Some(s.select_token.0.span),
            ));
        }
        // FROM
        let tree = self.bind_from(&s.from)?;
        // WHERE: EXISTS / IN subqueries among its top-level conjuncts become semi and
        // anti joins; the rest is the filter.
        let (tree, rest) = self.where_joins(tree, s.selection.as_ref())?;
        let filter = match rest {
            Some(w) => Some(self.bind_expr(&w, false)?),
            None => None,
        };
        // SELECT list
        self.allow_windows.set(true);
        let items = self.bind_items(s);
        self.allow_windows.set(false);
        let items = items?;
        let has_window = items
            .iter()
            .any(|(_, b, _)| !window_partitions(b).is_empty());
        let _ = has_window;
        self.finish_select(s, tree, filter, items, distinct)
    }

    pub(super) fn bind_items(&mut self, s: &Select) -> Result<Vec<(String, Expr, Expr)>> {
        let mut items: Vec<(String, Expr, Expr)> = Vec::new(); // name, bound, original
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    items.push((output_name(e), self.bind_expr(e, true)?, e.clone()));
                }
                SelectItem::ExprWithAlias { expr: e, alias } => {
                    items.push((ident_value(alias), self.bind_expr(e, true)?, e.clone()));
                }
                SelectItem::ExprWithAliases { expr, .. } => {
                    return Err(unsupported(
                        self.query,
                        "several aliases for one item",
                        Some(expr),
                    ));
                }
                SelectItem::Wildcard(_) => {
                    let outer: Vec<Entry> = self.frames.last().cloned().unwrap_or_default();
                    for entry in outer {
                        let li = match entry {
                            Entry::Leaf(li) => li,
                            Entry::Virtual(vi) => {
                                for (ii, (n, e)) in self.virtuals[vi].items.iter().enumerate() {
                                    if !self.hidden.contains(&Hit::Virtual(vi, ii)) {
                                        items.push((n.clone(), e.clone(), e.clone()));
                                    }
                                }
                                continue;
                            }
                        };
                        let leaf = &self.leaves[li];
                        for (ci, c) in leaf.table.columns.iter().enumerate().filter(|(ci, c)| {
                            !c.name.starts_with("__pgs_")
                                && !self.hidden.contains(&Hit::Col(li, *ci))
                        }) {
                            let m = marker(Marker::Col { leaf: li, col: ci });
                            items.push((c.name.clone(), m.clone(), m));
                        }
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => {
                    let alias =
                        n.0.last()
                            .and_then(|p| p.as_ident())
                            .map(ident_value)
                            .unwrap_or_default();
                    let virt = self
                        .frames
                        .last()
                        .into_iter()
                        .flatten()
                        .find_map(|e| match *e {
                            Entry::Virtual(vi) if self.virtuals[vi].alias == alias => Some(vi),
                            _ => None,
                        });
                    if let Some(vi) = virt {
                        for (n, e) in &self.virtuals[vi].items {
                            items.push((n.clone(), e.clone(), e.clone()));
                        }
                        continue;
                    }
                    let Some(li) = self.leaves.iter().position(|l| l.alias == alias) else {
                        return Err(Error::Invalid(
                            Diagnostic::new(format!("unknown table or alias `{n}` in `{n}.*`"))
                                .with_span(span_range(self.query, n.span())),
                        ));
                    };
                    for (ci, c) in self.leaves[li]
                        .table
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.name.starts_with("__pgs_"))
                    {
                        let m = marker(Marker::Col { leaf: li, col: ci });
                        items.push((c.name.clone(), m.clone(), m));
                    }
                }
                SelectItem::QualifiedWildcard(k, _) => {
                    return Err(unsupported(self.query, "this wildcard", Some(k)));
                }
            }
        }
        // duplicate output names
        for (i, (n, _, orig)) in items.iter().enumerate() {
            if items[..i].iter().any(|(m, _, _)| m == n) {
                return Err(Error::Invalid(
                    Diagnostic::new(format!("the output column `{n}` appears twice; a stream table needs distinct column names"))
                        .with_span(expr_range(self.query, orig))
                        .with_help("give one of them another name with AS"),
                ));
            }
        }
        Ok(items)
    }

    pub(super) fn finish_select(
        &mut self,
        s: &Select,
        tree: Tree,
        filter: Option<Expr>,
        items: Vec<(String, Expr, Expr)>,
        distinct: bool,
    ) -> Result<Block> {
        // GROUP BY
        let group_exprs: Vec<Expr> = match &s.group_by {
            GroupByExpr::Expressions(exprs, mods) => {
                if !mods.is_empty() {
                    return Err(unsupported(
                        self.query,
                        "GROUP BY modifiers (ROLLUP/CUBE/GROUPING SETS)",
                        None,
                    ));
                }
                exprs.clone()
            }
            GroupByExpr::All(_) => return Err(unsupported(self.query, "GROUP BY ALL", None)),
        };
        let has_agg = items.iter().any(|(_, b, _)| contains_aggregate(b));
        let group_exprs = if distinct {
            // SELECT DISTINCT a, b  ≡  SELECT a, b ... GROUP BY a, b: a row stays while
            // its multiplicity (__pgs_count) is positive.
            if has_agg || !group_exprs.is_empty() || s.having.is_some() {
                return Err(unsupported_at(
                    self.query,
                    "DISTINCT together with GROUP BY or aggregates",
                    Some(s.select_token.0.span),
                ));
            }
            items.iter().map(|(_, _, orig)| orig.clone()).collect()
        } else {
            group_exprs
        };
        let windows: Vec<Vec<Expr>> = items
            .iter()
            .flat_map(|(_, b, _)| window_partitions(b))
            .collect();
        // A block of rows (window or projection), or an aggregate (below).
        let row_shape = if !windows.is_empty() {
            if has_agg || !group_exprs.is_empty() || s.having.is_some() {
                return Err(unsupported_at(
                    self.query,
                    "window functions together with GROUP BY or aggregates",
                    Some(s.select_token.0.span),
                ));
            }
            // Partitions are independent: recompute the ones the changes touch. Windows
            // with different partitions share the keys they have in common; none in
            // common (or no PARTITION BY) means the whole result.
            let mut common: Vec<Expr> = windows[0].clone();
            for w in &windows[1..] {
                common.retain(|e| w.contains(e));
            }
            Some(Shape::Window {
                partition: common,
                distinct_on: None,
            })
        } else if group_exprs.is_empty() && !has_agg && s.having.is_none() {
            Some(Shape::Project)
        } else {
            None
        };
        if let Some(shape) = row_shape {
            return Ok(Block {
                leaves: self.leaves.clone(),
                tree,
                filter_text: s.selection.as_ref().map(Sql::expr),
                filter,
                items: items.into_iter().map(|(n, b, _)| (n, b)).collect(),
                shape,
            });
        }
        // bind group keys (positional and output-alias references allowed)
        let mut groups: Vec<Expr> = Vec::new();
        let mut group_texts = Vec::new();
        for g in &group_exprs {
            if matches!(g, Expr::Rollup(_) | Expr::Cube(_) | Expr::GroupingSets(_)) {
                return Err(unsupported(
                    self.query,
                    "GROUP BY ROLLUP/CUBE/GROUPING SETS",
                    Some(g),
                ));
            }
            let bound = match g {
                Expr::Value(sqlparser::ast::ValueWithSpan {
                    value: Value::Number(n, _),
                    ..
                }) => {
                    let idx: usize = n.parse().unwrap_or(0);
                    if idx == 0 || idx > items.len() {
                        return Err(Error::Invalid(
                            Diagnostic::new(format!(
                                "GROUP BY position {n} is not in the select list"
                            ))
                            .with_span(expr_range(self.query, g)),
                        ));
                    }
                    items[idx - 1].1.clone()
                }
                Expr::Identifier(id)
                    if self.try_resolve(g).is_none()
                        && items.iter().any(|(n, _, _)| *n == ident_value(id)) =>
                {
                    items
                        .iter()
                        .find(|(n, _, _)| *n == ident_value(id))
                        .unwrap()
                        .1
                        .clone()
                }
                _ => self.bind_expr(g, false)?,
            };
            if contains_aggregate(&bound) {
                return Err(Error::Invalid(
                    Diagnostic::new("aggregate functions are not allowed in GROUP BY")
                        .with_span(expr_range(self.query, g)),
                ));
            }
            if !groups.contains(&bound) {
                groups.push(bound);
                group_texts.push(Sql::expr(g));
            }
        }
        // rewrite items over group slots and aggregate slots
        let mut aggs: Vec<AggCall> = Vec::new();
        let mut out_items = Vec::new();
        for (name, bound, orig) in items {
            let rewritten = self.rewrite_aggregate_item(
                &bound,
                &orig,
                &mut groups,
                &mut group_texts,
                &mut aggs,
            )?;
            out_items.push((name, rewritten));
        }
        let having = match &s.having {
            Some(h) => {
                let bound = self.bind_expr(h, true)?;
                Some(self.rewrite_aggregate_item(
                    &bound,
                    h,
                    &mut groups,
                    &mut group_texts,
                    &mut aggs,
                )?)
            }
            None => None,
        };
        let recompute = having.is_some() || aggs.iter().any(|a| a.func == AggFunc::Other);
        Ok(Block {
            leaves: self.leaves.clone(),
            tree,
            filter_text: s.selection.as_ref().map(Sql::expr),
            filter,
            items: out_items,
            shape: Shape::Aggregate {
                groups,
                group_texts,
                aggs,
                having,
                recompute,
            },
        })
    }

    pub(super) fn rewrite_aggregate_item(
        &self,
        bound: &Expr,
        orig: &Expr,
        groups: &mut Vec<Expr>,
        group_texts: &mut Vec<Sql>,
        aggs: &mut Vec<AggCall>,
    ) -> Result<Expr> {
        struct Rw<'b> {
            leaves: &'b [Leaf],
            groups: &'b [Expr],
            aggs: &'b mut Vec<AggCall>,
            err: Option<Error>,
            query: &'b str,
            orig: &'b Expr,
        }
        impl VisitorMut for Rw<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Some(k) = self.groups.iter().position(|g| g == e) {
                    *e = marker(Marker::Grp(k));
                    return ControlFlow::Continue(());
                }
                if let Expr::Function(f) = &*e {
                    if is_aggregate(f) {
                        match classify_aggregate(f) {
                            Ok((func, arg)) => {
                                // A counter keeps the largest scale it ever saw, so a SUM or
                                // AVG over values of varying numeric scale is recomputed to
                                // reproduce PostgreSQL's result exactly.
                                let func = match (&func, &arg) {
                                    (AggFunc::Sum | AggFunc::Avg, Some(a))
                                        if varying_scale(a, self.leaves) =>
                                    {
                                        AggFunc::Other
                                    }
                                    _ => func,
                                };
                                let whole = e.clone();
                                let k = match self.aggs.iter().position(|a| a.call == whole) {
                                    Some(k) => k,
                                    None => {
                                        let text = display_call(f, self.leaves);
                                        self.aggs.push(AggCall {
                                            func,
                                            arg,
                                            call: whole,
                                            text,
                                        });
                                        self.aggs.len() - 1
                                    }
                                };
                                *e = marker(Marker::Agg(k));
                            }
                            Err(what) => {
                                self.err = Some(unsupported(self.query, &what, Some(self.orig)));
                                return ControlFlow::Break(());
                            }
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut e = bound.clone();
        {
            let mut rw = Rw {
                leaves: &self.leaves,
                groups,
                aggs,
                err: None,
                query: self.query,
                orig,
            };
            let _ = e.visit(&mut rw);
            if let Some(err) = rw.err {
                return Err(err);
            }
        }
        // Columns left outside aggregates must be functionally dependent on the group
        // keys (PostgreSQL allows columns of a table whose primary key is grouped).
        let loose = column_markers(&e);
        if loose.is_empty() {
            return Ok(e);
        }
        for (leaf, col) in loose {
            let l = &self.leaves[leaf];
            let pk_grouped = !l.table.primary_key.is_empty()
                && l.table.primary_key.iter().all(|k| {
                    let ci = l.table.column_index(k).unwrap_or(usize::MAX);
                    groups.contains(&marker(Marker::Col { leaf, col: ci }))
                });
            if !pk_grouped {
                return Err(Error::Invalid(
                    Diagnostic::new(format!(
                        "column `{}.{}` must appear in the GROUP BY clause or be used in an aggregate function",
                        l.alias, l.table.columns[col].name
                    ))
                    .with_span(expr_range(self.query, orig)),
                ));
            }
            let m = marker(Marker::Col { leaf, col });
            if !groups.contains(&m) {
                group_texts.push(shown(&m, &self.leaves));
                groups.push(m);
            }
        }
        self.rewrite_aggregate_item(bound, orig, groups, group_texts, aggs)
    }
}

/// The PARTITION BY lists of the window functions in a bound expression (one entry
/// per window function; an empty list for a window without PARTITION BY).
pub(crate) fn window_partitions(e: &Expr) -> Vec<Vec<Expr>> {
    struct F(Vec<Vec<Expr>>);
    impl VisitorMut for F {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                if let Some(sqlparser::ast::WindowType::WindowSpec(spec)) = &f.over {
                    self.0.push(spec.partition_by.clone());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut e = e.clone();
    let mut f = F(Vec::new());
    let _ = e.visit(&mut f);
    f.0
}

/// Whether the values of a bound expression may carry different numeric scales: it
/// reads a `numeric` column without a declared scale, or mixes decimal literals of
/// different scales.
fn varying_scale(e: &Expr, leaves: &[Leaf]) -> bool {
    if column_markers(e)
        .into_iter()
        .any(|(l, c)| leaves[l].table.columns[c].sql_type == "numeric")
    {
        return true;
    }
    struct S(std::collections::HashSet<usize>);
    impl VisitorMut for S {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Expr::Value(v) = e {
                if let Value::Number(n, _) = &v.value {
                    if let Some(dot) = n.find('.') {
                        self.0.insert(n.len() - dot - 1);
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut e = e.clone();
    let mut s = S(Default::default());
    let _ = e.visit(&mut s);
    s.0.len() > 1
}

fn display_call(f: &sqlparser::ast::Function, leaves: &[Leaf]) -> String {
    display(&Expr::Function(f.clone()), leaves)
}

/// Map an aggregate call to a counter strategy, or say why there is none.
fn classify_aggregate(
    f: &sqlparser::ast::Function,
) -> std::result::Result<(AggFunc, Option<Expr>), String> {
    let name = function_name(f);
    let plain = f.filter.is_none()
        && f.within_group.is_empty()
        && match &f.args {
            sqlparser::ast::FunctionArguments::List(l) => {
                l.duplicate_treatment != Some(sqlparser::ast::DuplicateTreatment::Distinct)
                    && l.clauses.is_empty()
            }
            _ => true,
        };
    let arg = single_arg(f).ok();
    match (plain, name.as_str(), arg) {
        (true, "count", Some(None)) => Ok((AggFunc::CountStar, None)),
        (true, "count", Some(Some(a))) => Ok((AggFunc::Count, Some(a.clone()))),
        (true, "sum", Some(Some(a))) => Ok((AggFunc::Sum, Some(a.clone()))),
        (true, "avg", Some(Some(a))) => Ok((AggFunc::Avg, Some(a.clone()))),
        _ => Ok((AggFunc::Other, None)),
    }
}
