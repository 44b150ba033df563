//! The operator tree and the strategy chosen per node.

use crate::catalog::{Catalog, Table};
use crate::error::{Error, Result};
use crate::render::{Artifacts, RenderContext, SourceBinding};
use crate::spec::StreamTableSpec;

/// An output column of the defining query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    /// The column name in the storage table.
    pub name: String,
}

/// How the stream table as a whole is maintained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Delta rules per operator: work follows the changes.
    Incremental,
    /// Recompute the query when its sources changed, and apply only the difference.
    RecomputeDiff {
        /// Why no delta rule applies (e.g. `WITH RECURSIVE`).
        reason: String,
    },
    /// FULL mode: recompute on every refresh and apply only the difference.
    Full,
}

/// A compiled stream table.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// What was compiled.
    pub spec: StreamTableSpec,
    /// Output columns, in order.
    pub columns: Vec<OutputColumn>,
    /// The distinct source tables, in order of first appearance.
    pub sources: Vec<Table>,
    /// The strategy of the root.
    pub strategy: Strategy,
}

impl Compiled {
    /// Render the SQL artifacts with the database's object ids.
    pub fn render(&self, ctx: &RenderContext) -> Artifacts {
        crate::render::render(self, ctx)
    }
    /// A render context with placeholder ids (stream table 0, source oids 0, 1, ...),
    /// for `explain` and snapshot tests.
    pub fn placeholder_context(&self) -> RenderContext {
        RenderContext {
            st_id: 0,
            sources: (0..self.sources.len()).map(|i| SourceBinding { oid: i as u32 }).collect(),
        }
    }
    /// The operator tree with the strategy per node, and the generated SQL.
    pub fn explain(&self) -> String {
        String::new()
    }
}

pub(crate) fn compile(_spec: &StreamTableSpec, _catalog: &Catalog) -> Result<Compiled> {
    Err(Error::Internal("compiler under construction".into()))
}
