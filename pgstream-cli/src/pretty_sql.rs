//! The SQL of `pgstream explain`, laid out for reading: one clause per line, nested
//! queries indented (the `sqlformat` crate). Only whitespace outside string literals
//! and quoted identifiers changes, so the text means what the runtime runs; SQL with a
//! dollar-quoted body is printed as it is.

use sqlformat::{FormatOptions, Indent, QueryParams};

/// `explain`'s report: the compiler's description of the operator tree (the text
/// before its SQL), then the storage table's DDL and the refresh statements of
/// `compiled`, each pretty-printed.
pub(crate) fn explain(compiled: &pgstream::compiler::Compiled) -> String {
    let text = compiled.explain();
    let tree = match text.find("\nstorage table:\n") {
        Some(i) => &text[..=i],
        None => text.as_str(),
    };
    let artifacts = compiled.render(&compiled.placeholder_context());
    let mut out = tree.to_string();
    out.push_str("storage table:\n");
    for statement in &artifacts.storage_ddl {
        out.push_str(&indent(&format!("{};", format(statement))));
    }
    out.push_str("\nfull refresh:\n");
    out.push_str(&indent(&format(&artifacts.full_refresh)));
    if let Some(differential) = &artifacts.differential_refresh {
        out.push_str("\ndifferential refresh:\n");
        out.push_str(&indent(&format(differential)));
    }
    out
}

/// One statement (or several), pretty-printed; text with a dollar-quoted body is
/// returned as it is (`sqlformat` changes the whitespace inside one).
pub(crate) fn format(sql: &str) -> String {
    if has_dollar_quote(sql) {
        return sql.to_string();
    }
    let options = FormatOptions {
        indent: Indent::Spaces(2),
        lines_between_queries: 1,
        ..FormatOptions::default()
    };
    sqlformat::format(sql, &QueryParams::None, &options)
}

/// Whether `sql` holds a dollar quote (`$$` or `$tag$`; `$1` is a parameter).
fn has_dollar_quote(sql: &str) -> bool {
    sql.match_indices('$').any(|(i, _)| {
        let rest = &sql[i + 1..];
        let tag = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        rest[tag..].starts_with('$') && !rest[..tag].starts_with(|c: char| c.is_ascii_digit())
    })
}

/// Every line of `s` indented by two spaces, each ending in a newline.
fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::format;

    /// The formatter changes whitespace only, and never inside literals, quoted
    /// names or dollar-quoted bodies.
    #[test]
    fn only_whitespace_changes() {
        let sql = r#"WITH "d" AS (SELECT "k", sum("v") AS "s" FROM "public"."t" WHERE "x" = 'a  b' GROUP BY "k") SELECT "d"."k", "d"."s"::numeric FROM "d" WHERE "d"."s" > $1 AND "d"."k" <> 'x'"#;
        let pretty = format(sql);
        assert!(pretty.lines().count() > 3, "{pretty}");
        let squash = |s: &str| -> String { s.split_whitespace().collect::<String>() };
        assert_eq!(squash(&pretty), squash(sql));
        assert!(pretty.contains("'a  b'"), "{pretty}");
        assert!(pretty.contains(r#""public"."t""#), "{pretty}");
    }

    /// A dollar-quoted body (a function) is left exactly as it is.
    #[test]
    fn dollar_quoted_text_is_left_alone() {
        for sql in [
            "SELECT $$ keep  this $$ <> '' FROM t",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT  1 $body$",
        ] {
            assert_eq!(format(sql), sql);
        }
        assert_ne!(
            format("SELECT a FROM t WHERE b = $1"),
            "SELECT a FROM t WHERE b = $1"
        );
    }
}
