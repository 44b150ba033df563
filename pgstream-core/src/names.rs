//! The relations a query names, before it is compiled: what the runtime loads from the
//! live catalog for it (its tables and views, then the relations the views' bodies
//! name), instead of every table of the database, so creating stream table number
//! 10,000 reads as much of the catalog as creating the first.

use sqlparser::ast::visit_relations;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// The names of the relations `sql` reads (the last part of each name, as written and
/// folded to lower case, which covers quoted and unquoted spellings), CTE names among
/// them. Empty when `sql` does not parse: the compiler then reports why.
pub fn relation_names(sql: &str) -> Vec<String> {
    let Ok(statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    let _ = visit_relations(&statements, |name| {
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
mod tests {
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
