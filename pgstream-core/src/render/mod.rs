//! Whole statements and the SQL fragments every strategy shares: the window of a
//! change buffer (`window`), applying a result to the storage table and the
//! storage DDL (`apply`), the frontier advance and the buffer trim (`frontier`), the
//! generated refresh function (`function`). The strategies (`strategy/`) build
//! their delta rules from these.
//!
//! Every relation a delta term reads exposes the columns of its leaves under
//! uniform names, `__pgs_c<leaf>_<col>`, so any bound expression can be rendered
//! against any of them. Deltas are Z-sets: each row carries a weight `__pgs_w`
//! (+1 or −1). All refresh statements are a single SQL statement (data-modifying
//! CTEs) that returns the number of storage rows changed and advances the frontiers:
//! whatever the caller's isolation level, one statement sees one snapshot.

pub(crate) mod apply;
pub(crate) mod frontier;
pub(crate) mod function;
pub(crate) mod window;

pub(crate) use crate::sql::fragment::{sql, JoinSql, Sql};

/// The weight column of a delta.
pub(crate) const W: Sql = Sql::fixed("\"__pgs_w\"");

/// The uniform name of column `col` of leaf `leaf`: `"__pgs_c<leaf>_<col>"`.
pub(crate) fn col(leaf: usize, col: usize) -> Sql {
    Sql::ident(&format!("__pgs_c{leaf}_{col}"))
}

/// What stands for a column where the query reads none of its table's (a relation
/// needs one): its type is not named either, so that nothing depends on it.
pub(crate) const UNREAD: Sql = Sql::fixed("NULL::pg_catalog.text");

/// Test only: make row ids collide (see [`crate::testing`]).
pub(crate) static WEAK_ROW_HASH: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The hash a row id is made of: `hashtextextended(text, seed)`, or, when the test
/// switch is on, the same reduced to three values, so that different rows share ids
/// and the key and content checks that follow every id match must keep them apart.
pub(crate) fn row_hash(text: &Sql, seed: &Sql) -> Sql {
    if WEAK_ROW_HASH.load(std::sync::atomic::Ordering::Relaxed) {
        sql!("(pg_catalog.hashtextextended({}, {}) % 3)", text, seed)
    } else {
        sql!("pg_catalog.hashtextextended({}, {})", text, seed)
    }
}

/// Rows of `inner` numbered among equal rows (`__pgs_n`), with a row id from the
/// whole row's text and that number: the identity of rows that have no key.
pub(crate) fn numbered(inner: &Sql) -> Sql {
    sql!(
        "SELECT q2.*, {} AS \"__pgs_row_id\" FROM (SELECT q.*, row_number() OVER (PARTITION BY ROW(q.*)::text) AS \"__pgs_n\" FROM ({}) AS q) AS q2",
        row_hash(&Sql::fixed("ROW(q2.*)::text"), &Sql::fixed("q2.\"__pgs_n\"")),
        inner
    )
}

/// Each column qualified by the relation `q`: `q.c`.
pub(crate) fn qualified_by(q: &'static str, cols: &[Sql]) -> Vec<Sql> {
    cols.iter().map(|c| sql!("{}.{}", q, c)).collect()
}

/// The row id of a row with the key expressions `exprs` (`0` when there are none).
pub(crate) fn row_id_of(exprs: &[Sql]) -> Sql {
    if exprs.is_empty() {
        Sql::fixed("0::bigint")
    } else {
        row_hash(
            &sql!("ROW({})::text", Sql::join(exprs.iter().cloned(), ", ")),
            &Sql::fixed("0"),
        )
    }
}
