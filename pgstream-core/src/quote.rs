//! Quoting: the only way user-provided names and text reach generated SQL.

use crate::spec::QualifiedName;

/// Quote an identifier for PostgreSQL: always double-quoted, embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote `schema.name`.
pub fn quote_qualified(name: &QualifiedName) -> String {
    format!("{}.{}", quote_ident(&name.schema), quote_ident(&name.name))
}

/// Quote a string literal (standard-conforming strings; backslashes are literal).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
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
