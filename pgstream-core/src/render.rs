//! Rendering: the only place in the core that writes SQL text.

use crate::plan::Compiled;

/// Object ids that only the database knows, supplied by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderContext {
    /// The stream table's id in `pgstream.pgs_stream_tables`.
    pub st_id: i64,
    /// One binding per entry of [`Compiled::sources`], in the same order.
    pub sources: Vec<SourceBinding>,
}

/// Where a source table's changes are buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceBinding {
    /// The source table's OID; its buffer is `pgstream_changes.changes_<oid>`.
    pub oid: u32,
}

/// The SQL that creates and maintains one stream table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifacts {
    /// Statements that create the (empty) storage table and its indexes.
    pub storage_ddl: Vec<String>,
    /// One statement, returning one `bigint` (rows changed): recompute the query,
    /// apply the difference to the storage table, and set every frontier of this
    /// stream table to the statement's snapshot.
    pub full_refresh: String,
    /// One statement, returning one `bigint` (rows changed): apply the changes in the
    /// window of each source and advance the frontiers. `None` in FULL mode.
    pub differential_refresh: Option<String>,
    /// The hidden columns of the storage table (all start with `__pgs_`).
    pub hidden_columns: Vec<String>,
}

pub(crate) fn render(_c: &Compiled, _ctx: &RenderContext) -> Artifacts {
    Artifacts { storage_ddl: vec![], full_refresh: String::new(), differential_refresh: None, hidden_columns: vec![] }
}
