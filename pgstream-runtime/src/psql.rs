//! Query results laid out as `psql` prints them in its default (aligned) format, for
//! programs that show rows to people: the command line's `status`, the examples.
//!
//! ```
//! let rows = vec![
//!     vec!["1".to_string(), "Company".to_string()],
//!     vec!["12".to_string(), "Sales".to_string()],
//! ];
//! let text = pgstream_runtime::psql::aligned(&["id", "name"], &rows, &[true]);
//! assert_eq!(
//!     text,
//!     " id |  name\n\
//!      ----+---------\n  \
//!        1 | Company\n \
//!       12 | Sales\n\
//!      (2 rows)\n"
//! );
//! ```

/// `rows` under `header` in psql's aligned format: the header centred in each column,
/// a rule of `-` joined by `+`, the cells separated by ` | ` and padded to the widest
/// cell of their column (in characters), trailing spaces trimmed, and a
/// `(n rows)` footer (`(1 row)` for one). Every line ends with `\n`.
///
/// Column `i` is right-aligned when `right_aligned[i]` is true, as psql aligns numbers;
/// columns past the end of `right_aligned` are left-aligned (pass `&[]` for all left).
/// Each row has as many cells as `header`.
pub fn aligned(header: &[&str], rows: &[Vec<String>], right_aligned: &[bool]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| format!(" {}\n", cells.join(" | ").trim_end());
    let mut out = line(
        header
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{h:^w$}", w = widths[i]))
            .collect(),
    );
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    out.push_str(&rule.join("+"));
    out.push('\n');
    for row in rows {
        out.push_str(&line(
            row.iter()
                .enumerate()
                .map(|(i, cell)| {
                    if right_aligned.get(i).copied().unwrap_or(false) {
                        format!("{cell:>w$}", w = widths[i])
                    } else {
                        format!("{cell:<w$}", w = widths[i])
                    }
                })
                .collect(),
        ));
    }
    let plural = if rows.len() == 1 { "" } else { "s" };
    out.push_str(&format!("({} row{plural})\n", rows.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::aligned;

    fn rows(cells: &[&[&str]]) -> Vec<Vec<String>> {
        cells
            .iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn header_centred_over_rule_and_cells_left_aligned() {
        let text = aligned(
            &["name", "mode"],
            &rows(&[&["department_stats", "diff"], &["t", "full"]]),
            &[],
        );
        assert_eq!(
            text,
            "       name       | mode\n\
             ------------------+------\n \
             department_stats | diff\n \
             t                | full\n\
             (2 rows)\n"
        );
    }

    #[test]
    fn numeric_columns_right_aligned_as_psql_does() {
        let text = aligned(
            &["id", "total", "note"],
            &rows(&[&["5", "235000.00", "x"], &["12", "0", ""]]),
            &[true, true, false],
        );
        assert_eq!(
            text,
            " id |   total   | note\n\
             ----+-----------+------\n  \
             5 | 235000.00 | x\n \
             12 |         0 |\n\
             (2 rows)\n"
        );
    }

    #[test]
    fn footer_counts_one_row_and_none() {
        assert!(aligned(&["a"], &rows(&[&["x"]]), &[]).ends_with("\n(1 row)\n"));
        assert_eq!(aligned(&["a"], &[], &[]), " a\n---\n(0 rows)\n");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let text = aligned(&["n"], &rows(&[&["é…"], &["ab"]]), &[]);
        assert_eq!(text, " n\n----\n é…\n ab\n(2 rows)\n");
    }
}
