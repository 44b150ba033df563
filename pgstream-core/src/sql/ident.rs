//! Identifiers: quoting as text (the public API's and the change filters'; it is
//! [`Sql`]'s, the only way user-provided names and text reach generated SQL), the
//! value of a parsed identifier and qualified names.

use crate::spec::QualifiedName;
use crate::sql::fragment::Sql;
use sqlparser::ast::ObjectName;

/// Quote an identifier for PostgreSQL: always double-quoted, embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    Sql::ident(name).into_string()
}

/// Quote `schema.name`.
pub fn quote_qualified(name: &QualifiedName) -> String {
    Sql::qualified(name).into_string()
}

/// Quote a string literal (standard-conforming strings; backslashes are literal).
pub fn quote_literal(text: &str) -> String {
    Sql::literal(text).into_string()
}

/// The name of `name` split into schema (default `public`) and table.
pub(crate) fn qualified(name: &ObjectName) -> QualifiedName {
    let (schema, name) = name_parts(name);
    QualifiedName::new(schema.unwrap_or_else(|| "public".into()), name)
}

/// The schema (if written) and the last part of a name, as PostgreSQL stores them.
pub(crate) fn name_parts(name: &ObjectName) -> (Option<String>, String) {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(ident_value)
        .collect();
    match parts.as_slice() {
        [.., s, n] => (Some(s.clone()), n.clone()),
        [n] => (None, n.clone()),
        [] => (None, String::new()),
    }
}

pub(crate) fn last_ident(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(ident_value)
        .unwrap_or_default()
}

/// An identifier's value as PostgreSQL stores it: unquoted identifiers fold to lower case.
pub(crate) fn ident_value(i: &sqlparser::ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// The column names of an alias (`AS x(a, b)`), empty when it has none.
pub(crate) fn column_aliases(alias: &sqlparser::ast::TableAlias) -> Vec<String> {
    alias.columns.iter().map(|c| ident_value(&c.name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_qualified(&QualifiedName::new("s", "t")), r#""s"."t""#);
    }
}
