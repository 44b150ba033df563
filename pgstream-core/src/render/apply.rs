//! Applying a result to the storage table: the statement that recomputes rows and
//! applies only the difference (`diff_statement`, also every full refresh), and the
//! storage table's DDL.
//!
//! A result is applied by one of two comparisons, after what identifies its rows:
//!
//! - **Keyed rows** ([`NewRows::Keyed`]): each new row carries its row id; a stored
//!   row equal to a new row (same row id, same text of the whole row) is kept, the
//!   others deleted, the missing ones inserted.
//! - **Copies** ([`NewRows::Copies`]): a bag, whose equal rows are copies numbered
//!   `__pgs_n` = 1..c. The new and the stored rows are counted per text of their
//!   visible columns (one hash aggregate over both); where the counts differ, the
//!   stored copies numbered above the new count are deleted and the missing ones
//!   appended, numbered after the stored ones. Stored copies are always numbered
//!   1..c (every writer of such a table, this one, the bag's delta rule, the
//!   recursive CTE's appends, keeps them so). Nothing is sorted but the inserted
//!   rows (numbering the whole result took a sort of its text, and comparing it as
//!   keyed rows two anti joins).

use super::*;
use crate::ir::RenderContext;
use crate::render::frontier::frontier_advance;

/// The rows a statement recomputes, and how they are compared with the stored ones
/// (see the module doc).
pub(crate) enum NewRows {
    /// Rows with exactly the storage table's columns, `__pgs_row_id` among them.
    Keyed(Sql),
    /// A bag of rows, whose copies are numbered.
    Copies(Copies),
}

/// A bag of rows for a storage table whose columns are the `width` visible columns
/// of `query`, then `__pgs_n` (the copy's number among equal rows) and
/// `__pgs_row_id`.
pub(crate) struct Copies {
    /// The rows with the storage table's columns (numbered, with row ids): what
    /// the storage table is created from.
    rows: Sql,
    /// The rows, visible columns only.
    query: Sql,
    /// The number of visible columns.
    width: usize,
    /// Whether all copies of a row share one row id, `hash(text, 0)` (the bag of a
    /// projection), rather than one per copy, `hash(text with its number, number)`
    /// ([`numbered`]).
    shared_id: bool,
}

impl Copies {
    /// The rows of `query` (`width` visible columns), each copy with its own row id.
    pub(crate) fn numbered(query: Sql, width: usize) -> Self {
        Copies {
            rows: numbered(&query),
            query,
            width,
            shared_id: false,
        }
    }

    /// The rows of `query` (`width` visible columns) as `rows` numbers them, all
    /// copies of a row with the row id `hash(text, 0)`.
    pub(crate) fn shared_id(rows: Sql, query: Sql, width: usize) -> Self {
        Copies {
            rows,
            query,
            width,
            shared_id: true,
        }
    }

    /// The positional names of the visible columns (`"__pgs_v<i>"`), for a column
    /// alias list: stored and new rows are read by position, whatever their names.
    fn positional(&self) -> Vec<Sql> {
        (0..self.width)
            .map(|i| Sql::ident(&format!("__pgs_v{i}")))
            .collect()
    }
}

impl NewRows {
    /// The rows with the storage table's columns.
    pub(crate) fn rows(&self) -> &Sql {
        match self {
            NewRows::Keyed(rows) => rows,
            NewRows::Copies(c) => &c.rows,
        }
    }
}

pub(crate) fn diff_statement(
    st: &Sql,
    ctx: &RenderContext,
    leading_ctes: &[(String, Sql)],
    new_rows: &NewRows,
    gate: Option<&Sql>,
) -> Sql {
    let mut ctes = head_ctes(leading_ctes, ctx);
    ctes.extend(apply_ctes(st, "", new_rows, gate));
    sql!(
        "WITH {}\nSELECT (SELECT count(*) FROM \"__pgs_del\") + (SELECT count(*) FROM \"__pgs_ins\") AS \"rows_changed\"",
        Sql::join(ctes, ",\n")
    )
}

/// The first CTEs of a statement that applies new rows: `leading` (`(name, body)`,
/// materialized: windows, or the writes of one-row leaves' states), then the advance
/// of the frontiers (`__pgs_adv`).
pub(crate) fn head_ctes(leading: &[(String, Sql)], ctx: &RenderContext) -> Vec<Sql> {
    let mut ctes: Vec<Sql> = leading
        .iter()
        .map(|(n, b)| sql!("{} AS MATERIALIZED ({})", Sql::ident(n), b))
        .collect();
    ctes.push(sql!("\"__pgs_adv\" AS ({})", frontier_advance(ctx)));
    ctes
}

/// The storage table `st`, created from `new_rows` (the rows with its columns), and
/// the index on its row ids.
pub(crate) fn storage_ddl(st: &Sql, new_rows: &Sql) -> Vec<Sql> {
    vec![
        sql!(
            "CREATE TABLE {} AS SELECT nr.* FROM ({}) AS nr WITH NO DATA",
            st,
            new_rows
        ),
        sql!("CREATE INDEX ON {} (\"__pgs_row_id\")", st),
    ]
}

/// The CTEs that apply `new_rows` to the storage table `st` as a difference (see
/// the module doc), among them `__pgs_<prefix>del` (the rows deleted) and
/// `__pgs_<prefix>ins` (the rows inserted); for keyed rows, `__pgs_<prefix>new` holds
/// the new rows with the storage table's columns. With a `gate`, nothing is read or
/// written unless it holds.
pub(crate) fn apply_ctes(
    st: &Sql,
    prefix: &str,
    new_rows: &NewRows,
    gate: Option<&Sql>,
) -> Vec<Sql> {
    match new_rows {
        NewRows::Keyed(rows) => apply_keyed(st, prefix, rows, gate),
        NewRows::Copies(copies) => apply_copies(st, prefix, copies, gate),
    }
}

/// [`apply_ctes`] for keyed rows: `_new`, `_old` (the stored rows' ids and text),
/// `_newt` (the new rows' ids and text), `_del`, `_ins`.
fn apply_keyed(st: &Sql, prefix: &str, new_rows: &Sql, gate: Option<&Sql>) -> Vec<Sql> {
    let gate_where = gate.map(|g| sql!(" WHERE {}", g)).unwrap_or_default();
    let gate_and = gate.map(|g| sql!("{} AND ", g)).unwrap_or_default();
    let n = |s: &str| Sql::ident(&format!("__pgs_{prefix}{s}"));
    let (new, old, newt, del, ins) = (n("new"), n("old"), n("newt"), n("del"), n("ins"));
    vec![
        sql!(
            "{} AS MATERIALIZED (SELECT nr.* FROM ({}) AS nr{})",
            new,
            new_rows,
            gate_where
        ),
        sql!(
            "{} AS MATERIALIZED (SELECT st.ctid AS \"__pgs_tid\", st.\"__pgs_row_id\" AS \"__pgs_id\", st::text AS \"__pgs_txt\" FROM {} AS st{})",
            old,
            st,
            gate_where
        ),
        sql!(
            "{} AS MATERIALIZED (SELECT n.\"__pgs_row_id\" AS \"__pgs_id\", n::text AS \"__pgs_txt\" FROM {} AS n)",
            newt,
            new
        ),
        sql!(
            "{} AS (DELETE FROM {} AS st WHERE {}st.ctid = ANY (ARRAY(SELECT o.\"__pgs_tid\" FROM {} AS o \
             WHERE NOT EXISTS (SELECT 1 FROM {} AS n WHERE n.\"__pgs_id\" = o.\"__pgs_id\" AND n.\"__pgs_txt\" = o.\"__pgs_txt\"))) RETURNING 1)",
            del,
            st,
            gate_and,
            old,
            newt
        ),
        sql!(
            "{} AS (INSERT INTO {} SELECT n.* FROM {} AS n WHERE NOT EXISTS (SELECT 1 FROM {} AS o \
             WHERE o.\"__pgs_id\" = n.\"__pgs_row_id\" AND o.\"__pgs_txt\" = n::text) RETURNING 1)",
            ins,
            st,
            new,
            old
        ),
    ]
}

/// [`apply_ctes`] for copies: `_new` (the new rows and their text), `_old` (the
/// stored rows' ctid, number and text), `_cnt` (per text whose counts differ, the
/// new and the stored count), `_del`, `_ins`.
fn apply_copies(st: &Sql, prefix: &str, copies: &Copies, gate: Option<&Sql>) -> Vec<Sql> {
    let gate_where = gate.map(|g| sql!(" WHERE {}", g)).unwrap_or_default();
    let n = |s: &str| Sql::ident(&format!("__pgs_{prefix}{s}"));
    let (new, old, cnt, del, ins) = (n("new"), n("old"), n("cnt"), n("del"), n("ins"));
    let vs = copies.positional();
    let of = |q: &'static str| qualified_by(q, &vs).join_sql(", ");
    let row_id = if copies.shared_id {
        row_hash(&sql!("ROW({})::text", of("x")), &Sql::fixed("0"))
    } else {
        row_hash(
            &sql!("ROW({}, x.\"__pgs_n\")::text", of("x")),
            &Sql::fixed("x.\"__pgs_n\""),
        )
    };
    vec![
        sql!(
            "{} AS MATERIALIZED (SELECT q.*, ROW(q.*)::text COLLATE \"C\" AS \"__pgs_txt\" FROM ({}) AS q{})",
            new,
            copies.query,
            gate_where
        ),
        sql!(
            "{} AS MATERIALIZED (SELECT st.ctid AS \"__pgs_tid\", st.\"__pgs_n\", ROW({})::text COLLATE \"C\" AS \"__pgs_txt\" FROM {} AS st({}){})",
            old,
            of("st"),
            st,
            vs.join_sql(", "),
            gate_where
        ),
        sql!(
            "{0} AS MATERIALIZED (SELECT c.\"__pgs_txt\", sum(c.\"__pgs_nc\") AS \"__pgs_nc\", sum(c.\"__pgs_oc\") AS \"__pgs_oc\" \
             FROM (SELECT n.\"__pgs_txt\", 1 AS \"__pgs_nc\", 0 AS \"__pgs_oc\" FROM {1} AS n UNION ALL SELECT o.\"__pgs_txt\", 0, 1 FROM {2} AS o) AS c \
             GROUP BY c.\"__pgs_txt\" HAVING sum(c.\"__pgs_nc\") <> sum(c.\"__pgs_oc\"))",
            cnt,
            new,
            old
        ),
        sql!(
            "{} AS (DELETE FROM {} AS st WHERE st.ctid = ANY (ARRAY(SELECT o.\"__pgs_tid\" FROM {} AS o JOIN {} AS c \
             ON c.\"__pgs_txt\" = o.\"__pgs_txt\" WHERE o.\"__pgs_n\" > c.\"__pgs_nc\")) RETURNING 1)",
            del,
            st,
            old,
            cnt
        ),
        sql!(
            "{0} AS (INSERT INTO {1} SELECT x.*, {2} FROM (SELECT {3}, y.\"__pgs_oc\" + y.\"__pgs_k\" AS \"__pgs_n\" \
             FROM (SELECT n.*, c.\"__pgs_nc\", c.\"__pgs_oc\", row_number() OVER (PARTITION BY n.\"__pgs_txt\") AS \"__pgs_k\" \
             FROM {4} AS n JOIN {5} AS c ON c.\"__pgs_txt\" = n.\"__pgs_txt\" WHERE c.\"__pgs_nc\" > c.\"__pgs_oc\") AS y({6}) \
             WHERE y.\"__pgs_oc\" + y.\"__pgs_k\" <= y.\"__pgs_nc\") AS x RETURNING 1)",
            ins,
            st,
            row_id,
            of("y"),
            new,
            cnt,
            vs.join_sql(", ")
        ),
    ]
}
