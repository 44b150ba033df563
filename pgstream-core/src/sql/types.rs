//! The one table between SQL types and the Rust types sqlx decodes them into, shared
//! by the macro's build-time field check (which Rust types read a column, which type
//! to suggest) and the runtime's start-up check ([`crate::FieldDef::mismatch`]: which
//! SQL types the check knows at all).

/// A SQL type the field check knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RustSqlType {
    /// The type as `format_type` spells it, without modifiers.
    pub sql: &'static str,
    /// The last path segments of the Rust types that decode it (`String`, `NaiveDate`).
    /// `Vec<u8>` (bytea) and `Vec<T>` (arrays) are recognised by the macro itself.
    pub rust: &'static [&'static str],
    /// The Rust type to suggest for a column of this type.
    pub suggestion: &'static str,
}

const fn t(
    sql: &'static str,
    rust: &'static [&'static str],
    suggestion: &'static str,
) -> RustSqlType {
    RustSqlType {
        sql,
        rust,
        suggestion,
    }
}

const STRING: &[&str] = &["String"];
const JSON: &[&str] = &["Value", "JsonValue", "Json"];

/// Every SQL type the field check knows, in the order messages list them.
pub const RUST_SQL_TYPES: &[RustSqlType] = &[
    t("smallint", &["i16"], "i16"),
    t("integer", &["i32"], "i32"),
    t("bigint", &["i64"], "i64"),
    t("real", &["f32"], "f32"),
    t("double precision", &["f64"], "f64"),
    t("boolean", &["bool"], "bool"),
    t("text", STRING, "String"),
    t("character varying", STRING, "String"),
    t("character", STRING, "String"),
    t("name", STRING, "String"),
    t("citext", STRING, "String"),
    t(
        "numeric",
        &["Decimal", "BigDecimal"],
        "rust_decimal::Decimal",
    ),
    t("date", &["NaiveDate", "Date"], "chrono::NaiveDate"),
    t(
        "timestamp without time zone",
        &["NaiveDateTime", "PrimitiveDateTime"],
        "chrono::NaiveDateTime",
    ),
    t(
        "timestamp with time zone",
        &["DateTime", "OffsetDateTime"],
        "chrono::DateTime<chrono::Utc>",
    ),
    t(
        "time without time zone",
        &["NaiveTime", "Time"],
        "chrono::NaiveTime",
    ),
    t("uuid", &["Uuid"], "uuid::Uuid"),
    t("json", JSON, "serde_json::Value"),
    t("jsonb", JSON, "serde_json::Value"),
    t(
        "interval",
        &["PgInterval"],
        "sqlx::postgres::types::PgInterval",
    ),
    t("bytea", &[], "Vec<u8>"),
];

/// Whether the field check knows the SQL type `base` (no modifiers, no `[]`).
pub fn is_known(base: &str) -> bool {
    RUST_SQL_TYPES.iter().any(|r| r.sql == base)
}

/// The SQL types a Rust type (its last path segment) decodes, in table order; empty
/// for a type the check does not know.
pub fn sql_types_of(rust: &str) -> Vec<&'static str> {
    RUST_SQL_TYPES
        .iter()
        .filter(|r| r.rust.contains(&rust))
        .map(|r| r.sql)
        .collect()
}

/// The Rust type to declare for a column of SQL type `base` (arrays as `Vec<..>`),
/// `None` for a type the check does not know.
pub fn suggestion(base: &str) -> Option<String> {
    if let Some(elem) = base.strip_suffix("[]") {
        return suggestion(elem).map(|e| format!("Vec<{e}>"));
    }
    RUST_SQL_TYPES
        .iter()
        .find(|r| r.sql == base)
        .map(|r| r.suggestion.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(
            sql_types_of("String"),
            ["text", "character varying", "character", "name", "citext"]
        );
        assert_eq!(sql_types_of("Value"), ["json", "jsonb"]);
        assert!(sql_types_of("MyType").is_empty());
        assert_eq!(suggestion("integer[]").as_deref(), Some("Vec<i32>"));
        assert_eq!(suggestion("bytea").as_deref(), Some("Vec<u8>"));
        assert_eq!(suggestion("point"), None);
        assert!(is_known("jsonb") && !is_known("point"));
    }
}
