//! `status --json`: one JSON array of objects, one per stream table, every field of
//! the status (timestamps in RFC 3339, UTC; absent values and non-finite numbers as
//! `null`).

use pgstream::StreamTableStatus;
use sqlx::types::chrono::{DateTime, Utc};

/// The JSON array `status --json` prints for `rows`, on one line.
pub fn status_json(rows: &[StreamTableStatus]) -> String {
    let objects: Vec<String> = rows.iter().map(object).collect();
    format!("[{}]", objects.join(","))
}

/// One stream table's object.
fn object(s: &StreamTableStatus) -> String {
    let fields = [
        ("name", text(&s.name)),
        ("schedule", text(&s.schedule)),
        ("effective_schedule", opt_text(&s.effective_schedule)),
        ("refresh_mode", text(&s.refresh_mode)),
        ("status", text(&s.status)),
        ("status_reason", opt_text(&s.status_reason)),
        ("consecutive_failures", s.consecutive_failures.to_string()),
        ("next_retry_at", time(&s.next_retry_at)),
        ("last_refresh_at", time(&s.last_refresh_at)),
        ("stale", s.stale.to_string()),
        ("pending_changes", s.pending_changes.to_string()),
        ("needs_full", s.needs_full.to_string()),
        ("refresh_count", s.refresh_count.to_string()),
        ("avg_duration_ms", float(s.avg_duration_ms)),
        ("min_duration_ms", float(s.min_duration_ms)),
        ("max_duration_ms", float(s.max_duration_ms)),
        ("last_duration_ms", float(s.last_duration_ms)),
        ("rows_affected", s.rows_affected.to_string()),
        ("error_count", s.error_count.to_string()),
        ("last_error", opt_text(&s.last_error)),
        ("last_error_at", time(&s.last_error_at)),
        ("strategy", opt_text(&s.strategy)),
        ("last_strategy", opt_text(&s.last_strategy)),
        (
            "last_window_rows",
            s.last_window_rows
                .map(|n| n.to_string())
                .unwrap_or_else(|| "null".into()),
        ),
        ("differential_count", s.differential_count.to_string()),
        ("full_count", s.full_count.to_string()),
        ("adaptive_full_count", s.adaptive_full_count.to_string()),
        ("no_change_count", s.no_change_count.to_string()),
    ];
    fields_object(&fields)
}

/// `{"key":value,...}` from keys and values already in JSON.
fn fields_object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", text(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// A JSON string: quotes, backslashes and control characters escaped.
fn text(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON string, or `null`.
fn opt_text(s: &Option<String>) -> String {
    s.as_deref().map(text).unwrap_or_else(|| "null".into())
}

/// An RFC 3339 timestamp as a JSON string, or `null`.
fn time(t: &Option<DateTime<Utc>>) -> String {
    t.map(|t| text(&t.to_rfc3339()))
        .unwrap_or_else(|| "null".into())
}

/// A JSON number, or `null` when absent or not finite (JSON has no NaN).
fn float(f: Option<f64>) -> String {
    f.filter(|f| f.is_finite())
        .map(|f| f.to_string())
        .unwrap_or_else(|| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(text("plain é"), r#""plain é""#);
        assert_eq!(
            text("a\"b\\c\nd\re\tf\u{1}g"),
            r#""a\"b\\c\nd\re\tf\u0001g""#
        );
        assert_eq!(opt_text(&None), "null");
        assert_eq!(opt_text(&Some("x".into())), r#""x""#);
    }

    #[test]
    fn numbers_and_times() {
        assert_eq!(float(Some(1.5)), "1.5");
        assert_eq!(float(Some(f64::NAN)), "null");
        assert_eq!(float(Some(f64::INFINITY)), "null");
        assert_eq!(float(None), "null");
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(time(&Some(t)), r#""2026-01-02T03:04:05+00:00""#);
        assert_eq!(time(&None), "null");
    }

    #[test]
    fn objects_and_the_array() {
        assert_eq!(
            fields_object(&[("name", text("a")), ("stale", "true".into())]),
            r#"{"name":"a","stale":true}"#
        );
        assert_eq!(status_json(&[]), "[]");
    }
}
