//! SQL vocabulary with nothing about stream tables: parsing, identifiers, AST
//! helpers and the table of SQL types and the Rust types that read them.

pub(crate) mod fragment;
pub(crate) mod ident;
pub(crate) mod limits;
pub(crate) mod parse;
pub(crate) mod relations;
pub mod types;
pub(crate) mod walk;
