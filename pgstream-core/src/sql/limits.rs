//! A query's row-limiting clauses (`LIMIT`, `OFFSET`, `FETCH`), read and cleared in
//! one place, whatever shape the parser gives them.

use sqlparser::ast::{Expr, LimitClause, Offset, Query};

/// The `LIMIT` expression of a query; `LIMIT ALL` reads as none.
pub(crate) fn limit(q: &Query) -> Option<&Expr> {
    match &q.limit_clause {
        Some(LimitClause::LimitOffset { limit, .. }) => limit.as_ref(),
        Some(LimitClause::OffsetCommaLimit { limit, .. }) => Some(limit),
        None => None,
    }
}

/// The `OFFSET` clause of a query, if any.
pub(crate) fn has_offset(q: &Query) -> bool {
    offset(q).is_some()
}

/// The `OFFSET` expression of a query.
pub(crate) fn offset(q: &Query) -> Option<&Expr> {
    match &q.limit_clause {
        Some(LimitClause::LimitOffset { offset, .. }) => offset.as_ref().map(|o: &Offset| &o.value),
        Some(LimitClause::OffsetCommaLimit { offset, .. }) => Some(offset),
        None => None,
    }
}

/// `LIMIT ... BY` (a ClickHouse form that PostgreSQL does not have).
pub(crate) fn has_limit_by(q: &Query) -> bool {
    matches!(&q.limit_clause, Some(LimitClause::LimitOffset { limit_by, .. }) if !limit_by.is_empty())
}

/// Whether the query keeps only some of its rows: `LIMIT`, `OFFSET` or `FETCH`.
pub(crate) fn limits_rows(q: &Query) -> bool {
    limit(q).is_some() || has_offset(q) || q.fetch.is_some()
}

/// Drop the `LIMIT` (and a `LIMIT ... BY`), keeping any `OFFSET`.
pub(crate) fn clear_limit(q: &mut Query) {
    q.limit_clause = match q.limit_clause.take() {
        Some(LimitClause::LimitOffset {
            offset: Some(offset),
            ..
        }) => Some(LimitClause::LimitOffset {
            limit: None,
            offset: Some(offset),
            limit_by: Vec::new(),
        }),
        Some(LimitClause::OffsetCommaLimit { offset, .. }) => Some(LimitClause::LimitOffset {
            limit: None,
            offset: Some(Offset {
                value: offset,
                rows: sqlparser::ast::OffsetRows::None,
            }),
            limit_by: Vec::new(),
        }),
        _ => None,
    };
}
