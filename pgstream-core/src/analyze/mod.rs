//! Analysis of the parsed query, before binding: view expansion (`view`), the type
//! walker (`infer`, `infer_expr`, with PostgreSQL's type rules in `types`), the
//! coarse operand check (`typecheck`), output column names (`names`), why a column can be NULL (`nullability`), the functions
//! a query calls and volatility (`functions`), the columns of set-returning
//! functions in FROM (`srf`), and the shape of a recursive query
//! that can be maintained semi-naively (`recursive`). Everything here takes the
//! AST (or the query text it parses once) and the catalog, and knows nothing of the
//! operator tree.

pub(crate) mod functions;
pub(crate) mod infer;
mod infer_expr;
pub(crate) mod names;
pub(crate) mod nullability;
pub(crate) mod recursive;
pub(crate) mod srf;
pub(crate) mod typecheck;
pub(crate) mod types;
pub(crate) mod view;

/// An output column of the defining query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    /// The column name in the storage table.
    pub name: String,
    /// The SQL type as `format_type` prints it (`integer`, `numeric(10,2)`, `text[]`),
    /// when pgstream could infer it; `None` is checked at start-up instead.
    pub sql_type: Option<String>,
    /// Whether the column can be NULL, when pgstream could infer it.
    pub nullable: Option<bool>,
}
