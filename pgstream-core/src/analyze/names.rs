//! The names PostgreSQL gives the output columns of a query (aliases, column lists
//! of CTEs and derived tables, `*` expanded over the catalog).

use crate::catalog::Catalog;
use crate::spec::QualifiedName;
use crate::sql::ident::ident_value;
use crate::sql::parse;
use sqlparser::ast::{Query, SelectItem, SetExpr, TableFactor};
type CteScope = Vec<(String, Vec<String>)>;

pub(crate) fn query_names(
    q: &Query,
    catalog: &Catalog,
    outer: &[(String, Vec<String>)],
) -> std::result::Result<Vec<String>, String> {
    let mut scope: CteScope = outer.to_vec();
    if let Some(w) = &q.with {
        for c in &w.cte_tables {
            let name = ident_value(&c.alias.name);
            let aliases = crate::sql::ident::column_aliases(&c.alias);
            let cols = if !aliases.is_empty() {
                aliases
            } else {
                // a recursive CTE names its columns by its non-recursive term
                query_names(&c.query, catalog, &scope)?
            };
            scope.push((name, cols));
        }
    }
    set_names(&q.body, catalog, &scope)
}

pub(crate) fn set_names(
    body: &SetExpr,
    catalog: &Catalog,
    scope: &CteScope,
) -> std::result::Result<Vec<String>, String> {
    match body {
        SetExpr::Select(s) => {
            let mut out = Vec::new();
            for item in &s.projection {
                match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAliases { expr: e, .. } => {
                        out.push(crate::sql::walk::output_name(e))
                    }
                    SelectItem::ExprWithAlias { alias, .. } => out.push(ident_value(alias)),
                    SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                        let qual = match item {
                            SelectItem::QualifiedWildcard(
                                sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                                _,
                            ) => n.0.last().and_then(|p| p.as_ident()).map(ident_value),
                            SelectItem::QualifiedWildcard(k, _) => {
                                return Err(format!("cannot determine the columns of `{k}`"))
                            }
                            _ => None,
                        };
                        for twj in &s.from {
                            let mut factors = vec![&twj.relation];
                            factors.extend(twj.joins.iter().map(|j| &j.relation));
                            for f in factors {
                                out.extend(factor_names(f, catalog, scope, qual.as_deref())?);
                            }
                        }
                    }
                }
            }
            Ok(out)
        }
        SetExpr::Query(q) => query_names(q, catalog, scope),
        SetExpr::SetOperation { left, .. } => set_names(left, catalog, scope),
        SetExpr::Values(v) => Ok((1..=v.rows.first().map(|r| r.len()).unwrap_or(0))
            .map(|i| format!("column{i}"))
            .collect()),
        _ => Err("cannot determine the output columns of this query".into()),
    }
}

pub(crate) fn factor_names(
    f: &TableFactor,
    catalog: &Catalog,
    scope: &CteScope,
    qual: Option<&str>,
) -> std::result::Result<Vec<String>, String> {
    match f {
        f if super::srf::item(f).is_some() => {
            let item = match super::srf::item(f) {
                Some(Ok(item)) => item,
                _ => return Err(format!("cannot determine the columns of `{f}`")),
            };
            if qual.is_some_and(|q| q != item.rel_name()) {
                return Ok(vec![]);
            }
            let types: Vec<Vec<super::types::Ty>> = item
                .calls
                .iter()
                .map(|c| vec![super::types::Ty::default(); c.args.len()])
                .collect();
            match super::srf::columns(&item, &types) {
                Ok(cols) => Ok(cols
                    .into_iter()
                    .map(|(n, _)| n)
                    .filter(|n| n != "__pgs_ord")
                    .collect()),
                Err(_) => Err(format!("cannot determine the columns of `{f}`")),
            }
        }
        TableFactor::Table { name, alias, .. } => {
            let q = crate::sql::ident::qualified(name);
            let alias_name = alias
                .as_ref()
                .map(|a| ident_value(&a.name))
                .unwrap_or_else(|| q.name.clone());
            if let Some(qual) = qual {
                if qual != alias_name {
                    return Ok(vec![]);
                }
            }
            if let Some(a) = alias {
                if !a.columns.is_empty() {
                    return Ok(a.columns.iter().map(|c| ident_value(&c.name)).collect());
                }
            }
            if name.0.len() == 1 {
                if let Some((_, cols)) = scope.iter().rev().find(|(n, _)| *n == q.name) {
                    return Ok(cols.clone());
                }
            }
            let schema = (name.0.len() > 1).then_some(q.schema.as_str());
            if let Some(t) = catalog.lookup(schema, &q.name) {
                return Ok(t.columns.iter().map(|c| c.name.clone()).collect());
            }
            catalog
                .lookup_view(schema, &q.name)
                .and_then(|v| catalog.view_columns(&v.name))
                .ok_or_else(|| format!("unknown table `{name}`"))
        }
        TableFactor::Derived {
            subquery, alias, ..
        } => {
            let alias_name = alias.as_ref().map(|a| ident_value(&a.name));
            if let Some(qual) = qual {
                if alias_name.as_deref() != Some(qual) {
                    return Ok(vec![]);
                }
            }
            let mut names = query_names(subquery, catalog, scope)?;
            if let Some(a) = alias {
                for (n, c) in names.iter_mut().zip(&a.columns) {
                    *n = ident_value(&c.name);
                }
            }
            Ok(names)
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            let mut out = factor_names(&table_with_joins.relation, catalog, scope, qual)?;
            for j in &table_with_joins.joins {
                out.extend(factor_names(&j.relation, catalog, scope, qual)?);
            }
            Ok(out)
        }
        _ => Err(
            "cannot determine the output columns of `*` over this FROM item; list the columns"
                .into(),
        ),
    }
}

impl Catalog {
    /// The output column names of a (non-materialized) view, when they can be told
    /// from its body and the catalog.
    pub fn view_columns(&self, name: &QualifiedName) -> Option<Vec<String>> {
        let v = self
            .views
            .iter()
            .find(|v| v.name == *name && !v.materialized)?;
        let q = parse::one_query(&v.query)?;
        let mut names = query_names(&q, self, &[]).ok()?;
        for (n, c) in names.iter_mut().zip(&v.columns) {
            *n = c.clone();
        }
        Some(names)
    }
}
