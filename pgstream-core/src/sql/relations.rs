//! The relations a query reads: qualify them, list them, rename one (CTEs excluded).
//! The catalog uses these on view bodies; view expansion on the defining query.

use crate::spec::QualifiedName;
use crate::sql::ident::{ident_value, qualified};
use crate::sql::parse;
use crate::sql::walk::cte_names;
use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, Query};
use std::collections::HashSet;
use std::ops::ControlFlow;

pub(crate) fn is_cte(n: &ObjectName, ctes: &HashSet<String>) -> bool {
    n.0.len() == 1
        && n.0[0]
            .as_ident()
            .is_some_and(|i| ctes.contains(&ident_value(i)))
}

/// A view body from a migration, with every relation it reads that is not one of its
/// CTEs qualified (`public` when unqualified, the default search path), as text. So
/// the body keeps meaning the tables it meant when the view was created, wherever it
/// is expanded.
pub(crate) fn qualify_relations(mut q: Query) -> String {
    let ctes = cte_names(&q);
    let _ = sqlparser::ast::visit_relations_mut(&mut q, |n: &mut ObjectName| {
        if n.0.len() == 1 && !is_cte(n, &ctes) {
            n.0.insert(0, ObjectNamePart::Identifier(Ident::new("public")));
        }
        ControlFlow::<()>::Continue(())
    });
    q.to_string()
}

/// The relations a view body reads (CTEs excluded), as qualified names.
pub(crate) fn reads(body: &str) -> Vec<QualifiedName> {
    let Some(q) = parse::one_query(body) else {
        return Vec::new();
    };
    let ctes = cte_names(&q);
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_relations(&q, |n: &ObjectName| {
        if !is_cte(n, &ctes) {
            out.push(qualified(n));
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// The body with the relation `old` renamed to `new`; `None` when it does not read
/// `old`.
pub(crate) fn rename_relation(
    body: &str,
    old: &QualifiedName,
    new: &QualifiedName,
) -> Option<String> {
    let mut q = parse::one_query(body)?;
    let ctes = cte_names(&q);
    let mut changed = false;
    let _ = sqlparser::ast::visit_relations_mut(&mut q, |n: &mut ObjectName| {
        if !is_cte(n, &ctes) && qualified(n) == *old {
            *n = ObjectName(vec![
                ObjectNamePart::Identifier(Ident::with_quote('"', new.schema.clone())),
                ObjectNamePart::Identifier(Ident::with_quote('"', new.name.clone())),
            ]);
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then(|| q.to_string())
}

/// The names of the relations `sql` reads (the last part of each name, as written and
/// folded to lower case, which covers quoted and unquoted spellings), CTE names among
/// them: what the runtime loads from the live catalog for a creation (its tables and
/// views, then the relations the views' bodies name), instead of every table of the
/// database. Empty when `sql` does not parse: the compiler then reports why.
pub fn relation_names(sql: &str) -> Vec<String> {
    let Some(q) = parse::one_query(sql) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    let _ = sqlparser::ast::visit_relations(&q, |name| {
        if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
            for n in [last.value.clone(), last.value.to_lowercase()] {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

#[cfg(test)]
mod relation_names_tests {
    use super::relation_names;

    #[test]
    fn names_in_from_joins_subqueries_and_ctes() {
        let mut n = relation_names(
            "WITH r AS (SELECT * FROM s.\"Orders\") SELECT * FROM r JOIN public.t ON true \
             WHERE EXISTS (SELECT 1 FROM u)",
        );
        n.sort();
        assert_eq!(n, ["Orders", "orders", "r", "t", "u"]);
        assert!(relation_names("SELEC nonsense").is_empty());
    }
}
