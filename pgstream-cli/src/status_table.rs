//! `status` as a table in psql's aligned format: the default that fits an 80-column
//! terminal ([`short`]) and every column ([`wide`], `status --wide`).

use pgstream::psql::aligned;
use pgstream::StreamTableStatus;
use sqlx::types::chrono::{DateTime, Utc};

/// The width the default `status` fits when names are short.
const WIDTH: usize = 80;

/// `status --wide`: every column, timestamps with their zone, the strategies and the
/// last error.
pub fn wide(rows: &[StreamTableStatus]) -> String {
    let header = [
        "name",
        "mode",
        "schedule",
        "status",
        "stale",
        "pending",
        "last refresh",
        "refreshes",
        "avg ms",
        "last refresh was",
        "strategy",
        "last error",
    ];
    let table: Vec<Vec<String>> = rows.iter().map(wide_cells).collect();
    aligned(&header, &table, &[])
}

/// One stream table's cells in [`wide`].
fn wide_cells(s: &StreamTableStatus) -> Vec<String> {
    vec![
        s.name.clone(),
        s.refresh_mode.clone(),
        match &s.effective_schedule {
            // `inherit: 5s (from reader)`
            Some(e) if *e != s.schedule => format!("{}: {e}", s.schedule),
            _ => s.schedule.clone(),
        },
        s.status.clone(),
        if s.stale { "t" } else { "f" }.to_string(),
        s.pending_changes.to_string(),
        s.last_refresh_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default(),
        s.refresh_count.to_string(),
        s.avg_duration_ms
            .map(|d| format!("{d:.2}"))
            .unwrap_or_default(),
        s.last_strategy.clone().unwrap_or_default(),
        s.strategy.clone().unwrap_or_default(),
        s.status_reason
            .clone()
            .or_else(|| s.last_error.clone())
            .unwrap_or_default(),
    ]
}

/// The default `status`: one line per stream table that fits 80 columns when names
/// are short: the state in a word (`ok`, `stale`, `ERROR`, `SUSPENDED`), the last
/// refresh as an age at `now`, and as much of the error as fits.
pub fn short(rows: &[StreamTableStatus], now: DateTime<Utc>) -> String {
    let header = [
        "name",
        "mode",
        "schedule",
        "state",
        "pending",
        "refreshed",
        "avg ms",
        "note",
    ];
    let mut table: Vec<Vec<String>> = rows.iter().map(|s| short_cells(s, now)).collect();
    fit_last_column(&header, &mut table, WIDTH);
    aligned(&header, &table, &[])
}

/// One stream table's cells in [`short`].
fn short_cells(s: &StreamTableStatus, now: DateTime<Utc>) -> Vec<String> {
    vec![
        s.name.clone(),
        mode_word(&s.refresh_mode).to_string(),
        s.schedule.clone(),
        state_word(&s.status, s.stale),
        s.pending_changes.to_string(),
        s.last_refresh_at
            .map(|t| ago((now - t).num_seconds()))
            .unwrap_or_else(|| "never".into()),
        s.avg_duration_ms
            .map(|d| format!("{d:.1}"))
            .unwrap_or_default(),
        s.status_reason
            .clone()
            .or_else(|| s.last_error.clone())
            .unwrap_or_default()
            .replace('\n', " "),
    ]
}

/// The refresh mode in a short word: `diff`, `imm` or `full`.
fn mode_word(mode: &str) -> &'static str {
    match mode {
        "DIFFERENTIAL" => "diff",
        "IMMEDIATE" => "imm",
        _ => "full",
    }
}

/// The state in a word: `ok` or `stale` for an active stream table, else its status
/// (`ERROR`, `SUSPENDED`).
fn state_word(status: &str, stale: bool) -> String {
    match status {
        "ACTIVE" if stale => "stale".to_string(),
        "ACTIVE" => "ok".to_string(),
        other => other.to_string(),
    }
}

/// Cuts the last column of `table` (ending it with `…`) so that the lines of the
/// aligned table fit `width`: each other column takes its width and three more (a
/// space each side and a separator), the last its width and two. The last column
/// keeps at least the width of its header.
fn fit_last_column(header: &[&str], table: &mut [Vec<String>], width: usize) {
    let last = header.len() - 1;
    let used: usize = (0..last)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
                + 3
        })
        .sum::<usize>()
        + 2;
    let room = width.saturating_sub(used).max(header[last].len());
    for row in table {
        if row[last].chars().count() > room {
            row[last] = row[last]
                .chars()
                .take(room.saturating_sub(1))
                .collect::<String>()
                + "…";
        }
    }
}

/// An age in seconds as `12s ago`, `5m ago`, `3h ago`, `4d ago` (hours up to two
/// days; a negative age, from clock skew, is `0s ago`).
pub fn ago(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=172_799 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(ago(-5), "0s ago");
        assert_eq!(ago(59), "59s ago");
        assert_eq!(ago(60), "1m ago");
        assert_eq!(ago(3599), "59m ago");
        assert_eq!(ago(3600), "1h ago");
        assert_eq!(ago(172_799), "47h ago");
        assert_eq!(ago(172_800), "2d ago");
    }

    #[test]
    fn words_for_mode_and_state() {
        assert_eq!(mode_word("DIFFERENTIAL"), "diff");
        assert_eq!(mode_word("IMMEDIATE"), "imm");
        assert_eq!(mode_word("FULL"), "full");
        assert_eq!(state_word("ACTIVE", false), "ok");
        assert_eq!(state_word("ACTIVE", true), "stale");
        assert_eq!(state_word("SUSPENDED", true), "SUSPENDED");
    }

    #[test]
    fn the_last_column_is_cut_to_what_fits() {
        let header = ["name", "note"];
        let mut table = vec![
            vec!["abc".to_string(), "x".repeat(100)],
            vec!["a".to_string(), "short".to_string()],
        ];
        // name: 4 + 3, then 2: the note has 20 - 9 = 11 characters.
        fit_last_column(&header, &mut table, 20);
        assert_eq!(table[0][1], format!("{}…", "x".repeat(10)));
        assert_eq!(table[1][1], "short");
        // Never narrower than the note's header.
        fit_last_column(&header, &mut table, 5);
        assert_eq!(table[0][1], "xxx…");
    }

    #[test]
    fn empty_tables_keep_their_headers() {
        let text = short(&[], Utc::now());
        assert!(
            text.starts_with(" name | mode | schedule | state |"),
            "{text}"
        );
        assert!(text.ends_with("\n(0 rows)\n"), "{text}");
        assert!(wide(&[]).contains("| last refresh was |"));
    }
}
