//! FROM and joins: the join tree of leaves (table occurrences), `JOIN ... ON`,
//! `USING` and `NATURAL` (merged columns), comma joins with their WHERE conditions.

use super::*;

impl Binder<'_> {
    /// A FROM list as a tree: its items cross-joined left to right.
    pub(super) fn bind_from(&mut self, from: &[TableWithJoins]) -> Result<Tree> {
        let mut tree: Option<Tree> = None;
        for twj in from {
            let t = self.bind_table_with_joins(twj)?;
            let lateral = self.lateral_pred.take();
            if let Some(func) = self.lateral_func.take() {
                tree = Some(self.lateral_function(
                    tree,
                    func,
                    JoinKind::Inner,
                    Expr::Value(Value::Boolean(true).into()),
                    "TRUE".into(),
                    &twj.relation,
                )?);
                continue;
            }
            tree = Some(match tree {
                None => match lateral {
                    // LATERAL first in FROM: nothing to its left, a plain filter.
                    Some(pred) => Tree::Filter {
                        input: Box::new(t),
                        text: "LATERAL ... WHERE".into(),
                        pred,
                    },
                    None => t,
                },
                Some(prev) => Tree::Join {
                    kind: JoinKind::Inner,
                    left: Box::new(prev),
                    right: Box::new(t),
                    on: lateral.unwrap_or_else(|| Expr::Value(Value::Boolean(true).into())),
                    on_text: "TRUE".into(),
                },
            });
        }
        Ok(tree.expect("non-empty FROM"))
    }

    /// Turn the EXISTS / IN subqueries among a WHERE clause's top-level conjuncts into
    /// semi and anti joins over `tree`; the other conjuncts come back, AND-ed, unbound.
    pub(super) fn where_joins(
        &mut self,
        mut tree: Tree,
        selection: Option<&Expr>,
    ) -> Result<(Tree, Option<Expr>)> {
        let mut rest: Vec<Expr> = Vec::new();
        if let Some(w) = selection {
            for c in conjuncts(w) {
                match self.subquery_join(c)? {
                    Some((kind, right, on)) => {
                        tree = Tree::Join {
                            kind,
                            left: Box::new(tree),
                            right: Box::new(right),
                            on,
                            on_text: Sql::expr(c),
                        };
                    }
                    None => rest.push(c.clone()),
                }
            }
        }
        let rest = rest.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: sqlparser::ast::BinaryOperator::And,
            right: Box::new(b),
        });
        Ok((tree, rest))
    }

    pub(super) fn bind_table_with_joins(&mut self, twj: &TableWithJoins) -> Result<Tree> {
        let start = self.frames.last().map_or(0, |f| f.len());
        let mut tree = self.bind_factor(&twj.relation)?;
        // A LATERAL first factor joins what precedes it in the FROM list (bind_from).
        let first_lateral = self.lateral_pred.take();
        let first_func = self.lateral_func.take();
        if first_func.is_some() && !twj.joins.is_empty() {
            return Err(unsupported(
                self.query,
                "a function over the FROM items to its left followed by JOIN (join first, then apply the function: `FROM a JOIN b ON ... CROSS JOIN LATERAL f(a.x)`)",
                Some(&twj.relation),
            ));
        }
        for j in &twj.joins {
            let mid = self.frames.last().map_or(0, |f| f.len());
            let right = self.bind_factor(&j.relation)?;
            let lateral = self.lateral_pred.take();
            let func = self.lateral_func.take();
            let (kind, constraint) = match &j.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, Some(c)),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinKind::Right, Some(c)),
                JoinOperator::FullOuter(c) => (JoinKind::Full, Some(c)),
                JoinOperator::CrossJoin(sqlparser::ast::JoinConstraint::None) => {
                    (JoinKind::Inner, None)
                }
                other => {
                    let what = format!("{other:?}")
                        .split('(')
                        .next()
                        .unwrap_or("this join")
                        .to_string();
                    return Err(unsupported(
                        self.query,
                        &format!("{what} joins"),
                        Some(&j.relation),
                    ));
                }
            };
            let (on, on_text) = match constraint {
                None | Some(JoinConstraint::None) => {
                    (Expr::Value(Value::Boolean(true).into()), Sql::fixed("TRUE"))
                }
                Some(JoinConstraint::On(e)) => (self.bind_expr(e, false)?, Sql::expr(e)),
                Some(JoinConstraint::Using(cols)) => {
                    let names: Vec<String> = cols
                        .iter()
                        .map(|c| {
                            c.0.last()
                                .and_then(|p| p.as_ident())
                                .map(ident_value)
                                .unwrap_or_default()
                        })
                        .collect();
                    self.using_join(start, mid, &names, kind, &j.relation)?
                }
                Some(JoinConstraint::UsingAlias(_, alias)) => {
                    return Err(unsupported_at(
                        self.query,
                        "a join alias (`USING (...) AS alias`)",
                        Some(alias.span),
                    ));
                }
                Some(JoinConstraint::Natural) => {
                    let frame = self.frames.last().cloned().unwrap_or_default();
                    let right_names = self.visible_names(&frame[mid..]);
                    let names: Vec<String> = self
                        .visible_names(&frame[start..mid])
                        .into_iter()
                        .filter(|n| right_names.contains(n))
                        .collect();
                    if names.is_empty() {
                        (Expr::Value(Value::Boolean(true).into()), Sql::fixed("TRUE"))
                    } else {
                        self.using_join(start, mid, &names, kind, &j.relation)?
                    }
                }
            };
            let on = match lateral {
                None => on,
                Some(_) if matches!(kind, JoinKind::Right | JoinKind::Full) => {
                    return Err(Error::Invalid(
                        Diagnostic::new(
                            "a LATERAL subquery cannot be on the right of a RIGHT or FULL JOIN",
                        )
                        .with_span(span_range(self.query, j.relation.span())),
                    ))
                }
                // The subquery's rows for a left row are its WHERE's matches: inner and
                // left joins with it are joins on that WHERE and the ON condition.
                Some(pred) => Expr::BinaryOp {
                    left: Box::new(Expr::Nested(Box::new(pred))),
                    op: sqlparser::ast::BinaryOperator::And,
                    right: Box::new(Expr::Nested(Box::new(on))),
                },
            };
            if let Some(func) = func {
                tree = self.lateral_function(Some(tree), func, kind, on, on_text, &j.relation)?;
                continue;
            }
            tree = Tree::Join {
                kind,
                left: Box::new(tree),
                right: Box::new(right),
                on,
                on_text,
            };
        }
        self.lateral_pred = first_lateral;
        self.lateral_func = first_func;
        Ok(tree)
    }

    /// `JOIN ... USING (names)` between the FROM entries `start..mid` (left) and
    /// `mid..` (right) of the current scope: the condition `l.c = r.c` for each
    /// name, and one merged output column per name (the left column for inner and
    /// left joins, the right one for right joins, `COALESCE(l.c, r.c)` for full
    /// joins) that unqualified references and `*` reach instead of the two sides'.
    pub(super) fn using_join(
        &mut self,
        start: usize,
        mid: usize,
        names: &[String],
        kind: JoinKind,
        f: &TableFactor,
    ) -> Result<(Expr, Sql)> {
        let frame = self.frames.last().cloned().unwrap_or_default();
        let mut conds = Vec::new();
        let mut items = Vec::new();
        let mut hide = Vec::new();
        for n in names {
            if items.iter().any(|(m, _)| m == n) {
                return Err(Error::Invalid(
                    Diagnostic::new(format!(
                        "column `{n}` appears more than once in USING clause"
                    ))
                    .with_span(span_range(self.query, f.span())),
                ));
            }
            let lh = self.using_hit(&frame[start..mid], n, "the left", f)?;
            let rh = self.using_hit(&frame[mid..], n, "the right", f)?;
            let (le, re) = (self.hit_expr(lh), self.hit_expr(rh));
            conds.push(Expr::BinaryOp {
                left: Box::new(le.clone()),
                op: sqlparser::ast::BinaryOperator::Eq,
                right: Box::new(re.clone()),
            });
            let merged = match kind {
                JoinKind::Right => re,
                JoinKind::Full => crate::sql::walk::call("COALESCE", vec![le, re]),
                _ => le,
            };
            items.push((n.clone(), merged));
            hide.push(lh);
            hide.push(rh);
        }
        self.hidden.extend(hide);
        self.virtuals.push(Virtual {
            alias: String::new(),
            items,
        });
        let vi = self.virtuals.len() - 1;
        if let Some(fr) = self.frames.last_mut() {
            fr.insert(start, Entry::Virtual(vi));
        }
        let on = conds
            .into_iter()
            .reduce(|a, b| Expr::BinaryOp {
                left: Box::new(a),
                op: sqlparser::ast::BinaryOperator::And,
                right: Box::new(b),
            })
            .expect("USING names a column");
        // For explain, the names as the query wrote them (unquoted).
        let shown = names
            .iter()
            .map(|n| Sql::expr(&Expr::Identifier(Ident::new(n))));
        Ok((on, sql!("USING ({})", Sql::join(shown, ", "))))
    }

    pub(super) fn bind_factor(&mut self, f: &TableFactor) -> Result<Tree> {
        if crate::analyze::srf::item(f).is_some() {
            return self.bind_function(f);
        }
        match f {
            TableFactor::Table {
                name,
                alias,
                inheritance,
                ..
            } => {
                if let Some(sqlparser::ast::TableInheritance::Only { .. }) = inheritance {
                    // PostgreSQL reads no child table then: a partitioned table reads
                    // as empty, which its maintenance (over every partition) is not.
                    return Err(unsupported(self.query, "FROM ONLY", Some(f)));
                }
                if let [part] = name.0.as_slice() {
                    let n = part.as_ident().map(ident_value).unwrap_or_default();
                    if let Some((q, visible)) = self.cte(&n) {
                        let (a, cols) = match alias {
                            Some(a) => (ident_value(&a.name), crate::sql::ident::column_aliases(a)),
                            None => (n.clone(), Vec::new()),
                        };
                        return self.bind_cte(&q, visible, a, &cols, f);
                    }
                }
                let source = self.table(name)?;
                let table = self.sources[source].clone();
                let col_aliases: Vec<String> = alias
                    .iter()
                    .flat_map(|a| a.columns.iter().map(|c| ident_value(&c.name)))
                    .collect();
                let visible_cols = table
                    .columns
                    .iter()
                    .filter(|c| !c.name.starts_with("__pgs_"))
                    .count();
                if col_aliases.len() > visible_cols {
                    return Err(Error::Invalid(
                        Diagnostic::new(format!(
                            "table `{}` has {visible_cols} columns available but {} columns specified",
                            table.name,
                            col_aliases.len()
                        ))
                        .with_span(span_range(self.query, f.span())),
                    ));
                }
                let alias_name = match alias {
                    Some(a) => ident_value(&a.name),
                    None => table.name.name.clone(),
                };
                let frame_has_alias = self.frame_has_alias(&alias_name);
                if frame_has_alias {
                    return Err(Error::Invalid(
                        Diagnostic::new(format!(
                            "table name `{alias_name}` specified more than once"
                        ))
                        .with_span(span_range(self.query, f.span()))
                        .with_help("give each occurrence its own alias"),
                    ));
                }
                self.leaves.push(Leaf {
                    source,
                    alias: alias_name,
                    table,
                    agg: None,
                    func: None,
                });
                let idx = self.leaves.len() - 1;
                // `t AS x(a, b)`: the table is reached through a relation `x` whose
                // first columns are renamed (the leaf itself is not in scope).
                let entry = if col_aliases.is_empty() {
                    Entry::Leaf(idx)
                } else {
                    let items = self.leaves[idx]
                        .table
                        .columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !c.name.starts_with("__pgs_"))
                        .enumerate()
                        .map(|(k, (ci, c))| {
                            let name = col_aliases.get(k).cloned().unwrap_or(c.name.clone());
                            (name, marker(Marker::Col { leaf: idx, col: ci }))
                        })
                        .collect();
                    self.virtuals.push(Virtual {
                        alias: self.leaves[idx].alias.clone(),
                        items,
                    });
                    Entry::Virtual(self.virtuals.len() - 1)
                };
                if let Some(frame) = self.frames.last_mut() {
                    frame.push(entry);
                }
                Ok(Tree::Leaf(idx))
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => self.bind_table_with_joins(table_with_joins),
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                let Some(alias) = alias else {
                    return Err(Error::Invalid(
                        Diagnostic::new("a subquery in FROM must have an alias")
                            .with_span(span_range(self.query, f.span())),
                    ));
                };
                let cols: Vec<String> = crate::sql::ident::column_aliases(alias);
                self.bind_subquery(subquery, *lateral, ident_value(&alias.name), &cols, f)
            }
            _ => Err(unsupported(self.query, "this kind of FROM item", Some(f))),
        }
    }
}
