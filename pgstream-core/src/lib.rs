//! # pgstream-core
//!
//! The pgstream compiler. It turns the defining query of a stream table into the SQL
//! that creates its storage table and keeps it up to date:
//!
//! ```text
//! parse ─▶ bind (against a Catalog) ─▶ operator tree ─▶ strategy per node ─▶ render SQL
//! ```
//!
//! Pure: no I/O, no async. The macro calls it at compile time against the schema of
//! the crate's migrations; the runtime calls it again against the live schema, with
//! the object ids that only the database knows (see [`RenderContext`]).

pub mod catalog;
pub mod contract;
pub mod cron;
pub mod error;
pub mod spec;

/// Switches for pgstream's own tests. Not part of the API.
#[doc(hidden)]
pub mod testing {
    /// Make row ids collide (a hash reduced to three values) in everything compiled
    /// afterwards by this process, to prove that a collision never merges two rows
    /// (DESIGN.md invariant 4): every id match is confirmed on the key columns or the
    /// whole row.
    pub fn set_weak_row_hash(on: bool) {
        crate::render::WEAK_ROW_HASH.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// `query` compiled as the DIFFERENTIAL stream table `public.st` over the tables
    /// (and views) of `ddl`; panics with the rendered error.
    pub fn compile_differential(query: &str, ddl: &str) -> crate::Compiled {
        let spec = crate::StreamTableSpec {
            name: crate::QualifiedName::new("public", "st"),
            query: query.to_string(),
            schedule: crate::Schedule::default(),
            mode: crate::Mode::Differential,
        };
        crate::compile(&spec, &crate::Catalog::from_ddl(ddl).unwrap())
            .unwrap_or_else(|e| panic!("{}\n{query}", e.render(query)))
    }

    /// The TPC-H schema with its primary keys, and the view `revenue0` of query 15.
    pub const TPCH_SCHEMA: &str = include_str!("../tests/tpch/schema.sql");

    const TPCH_QUERIES: &str = include_str!("../tests/tpch/queries.sql");

    /// The 22 TPC-H queries as the specification writes them, with its validation
    /// parameters: `(number, text)`.
    pub fn tpch_queries() -> Vec<(usize, String)> {
        let mut out: Vec<(usize, String)> = Vec::new();
        for line in TPCH_QUERIES.lines() {
            if let Some(n) = line.strip_prefix("-- Q") {
                out.push((n.trim().parse().expect("query number"), String::new()));
            } else if let Some((_, q)) = out.last_mut() {
                q.push_str(line);
                q.push('\n');
            }
        }
        out
    }
}

mod analyze;
mod bind;
mod explain;
mod immediate;
mod ir;
mod migrations;
mod plan;
mod pushdown;
mod relevance;
mod render;
mod sql;
mod strategy;

pub use catalog::{Catalog, Column, Table, View};
pub use cron::Cron;
pub use error::{Diagnostic, Error, Result};
pub use ir::{Artifacts, Compiled, OutputColumn, RenderContext, SourceBinding, Strategy};
pub use relevance::ChangeFilter;
pub use spec::{Mode, QualifiedName, Schedule, StreamTableSpec};
pub use sql::ident::{quote_ident, quote_literal, quote_qualified};
pub use sql::relations::relation_names;
/// The one table of the SQL types the field check knows and the Rust types that read them.
pub use sql::types as rust_types;

/// Compile a stream table's definition against a catalog.
///
/// Errors name the offending fragment of the query (see [`Diagnostic`]). In
/// [`Mode::Differential`], a construct that cannot be maintained incrementally is an
/// [`Error::Unsupported`] that suggests FULL mode.
///
/// Each [`OutputColumn`] carries the SQL type and nullability that could be inferred
/// (see `types.rs`). A comparison PostgreSQL cannot make (`GROUP BY`, `DISTINCT`,
/// `UNION` or `=` on `json`, `xml` or `point`) is an [`Error::Invalid`] in both modes,
/// reported in preference to an `Unsupported` error, since FULL mode would not help.
pub fn compile(spec: &StreamTableSpec, catalog: &Catalog) -> Result<Compiled> {
    spec.name
        .check_length()
        .map_err(|m| Error::Invalid(error::Diagnostic::new(m)))?;
    // Views are expanded in the text first: everything below sees only tables, and
    // its diagnostics are mapped back to the user's text.
    let expansion = analyze::view::expand(&spec.query, catalog)?;
    let text = expansion.text.as_str();
    let expanded = StreamTableSpec {
        query: expansion.text.clone(),
        ..spec.clone()
    };
    let map = |e| {
        let e = expansion.map_error(e);
        if spec.mode == Mode::Immediate {
            immediate::reword(e)
        } else {
            e
        }
    };
    // Parsed once; every pass below works on this AST.
    let query = sql::parse::defining_query(text).map_err(map)?;
    match plan::compile(&expanded, &query, catalog) {
        Ok(mut compiled) => {
            analyze::infer::check(text, &query, catalog).map_err(map)?;
            analyze::infer::annotate(text, &query, catalog, &mut compiled.columns);
            compiled.spec = spec.clone();
            compiled.expanded_query = expansion.text.clone();
            compiled.views = expansion.views();
            Ok(compiled)
        }
        Err(e @ Error::Unsupported(_)) => {
            analyze::infer::check(text, &query, catalog).map_err(map)?;
            Err(map(e))
        }
        Err(e) => Err(map(e)),
    }
}

/// Why the output column `column` of `query` can be NULL, in words (an outer join, a
/// nullable source column, an aggregate over no rows, ...), for error messages; `None`
/// when no single cause is found.
pub fn nullable_reason(query: &str, catalog: &Catalog, column: &str) -> Option<String> {
    let expansion = analyze::view::expand(query, catalog).ok()?;
    analyze::nullability::null_reason(&expansion.text, catalog, column)
}

/// The SQL type without modifiers: `numeric(10,2)` → `numeric`,
/// `timestamp(3) with time zone` → `timestamp with time zone`, `character varying(20)[]`
/// → `character varying[]`.
pub fn base_type(sql_type: &str) -> String {
    analyze::types::base(sql_type)
}

/// The static description of a stream table that `#[stream_table]` emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTableDef {
    /// Schema of the storage table (`public` unless the name says otherwise).
    pub schema: &'static str,
    /// Name of the storage table.
    pub name: &'static str,
    /// The defining query.
    pub query: &'static str,
    /// The schedule as written (`30s`, `5m`, ...), validated at compile time.
    pub schedule: &'static str,
    /// The refresh mode.
    pub mode: Mode,
    /// The output columns the query was compiled to, in order.
    pub columns: &'static [&'static str],
}

impl StreamTableDef {
    /// The spec to hand to [`compile`]. Panics only if the macro let an invalid
    /// schedule through, which it does not.
    pub fn spec(&self) -> StreamTableSpec {
        StreamTableSpec {
            name: QualifiedName::new(self.schema, self.name),
            query: self.query.to_string(),
            schedule: self
                .schedule
                .parse()
                .expect("schedule validated at compile time"),
            mode: self.mode,
        }
    }
}

/// Implemented by `#[stream_table]` for each declared struct.
pub trait StreamTable {
    /// The definition compiled into the program.
    const DEF: StreamTableDef;
    /// The struct's fields with the SQL types each can read, for the runtime to check
    /// against the live schema at start-up (empty for a hand-written implementation:
    /// nothing to check).
    const FIELDS: &'static [FieldDef] = &[];
    /// The stream table's own columns as a select list, each name quoted, in the
    /// query's order: `"department_id", "department_name", "headcount"`. The storage
    /// table also holds pgstream's bookkeeping columns (`__pgs_row_id`, counters),
    /// which `SELECT *` returns too; this list leaves them out.
    const COLUMN_LIST: &'static str;
    /// `SELECT <COLUMN_LIST> FROM <storage table>`, the table schema-qualified and
    /// quoted: reads exactly the struct's columns. Append `WHERE`, `ORDER BY`, ...:
    /// `format!("{} WHERE headcount > $1", DepartmentStats::SELECT)`.
    const SELECT: &'static str;
}

/// A field of a `#[stream_table]` struct, as the start-up type check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// The column the field reads.
    pub column: &'static str,
    /// The field's type as written (`Option<i64>`), for messages.
    pub rust_type: &'static str,
    /// The SQL types (without modifiers, as `format_type` spells them: `bigint`,
    /// `text[]`) the type reads. Empty when pgstream does not know the Rust type: any.
    pub sql_types: &'static [&'static str],
    /// Whether the field is an `Option`, so it can hold NULL.
    pub option: bool,
}

impl FieldDef {
    /// Why this field cannot read a column of `sql_type` (as `format_type` prints it)
    /// and the given nullability, or `None` if it can. Unknown types and nullability
    /// are accepted.
    pub fn mismatch(&self, sql_type: Option<&str>, nullable: Option<bool>) -> Option<String> {
        if let Some(t) = sql_type {
            let b = analyze::types::base(t);
            // a type pgstream does not know (a domain, an enum, an extension's type) may
            // well decode into the field: accepted, as at build time
            let known = rust_types::is_known(b.trim_end_matches("[]"));
            if known && !self.sql_types.is_empty() && !self.sql_types.contains(&b.as_str()) {
                return Some(format!(
                    "column `{}` is `{t}`, but field `{}` is `{}`, which reads {}",
                    self.column,
                    self.column,
                    self.rust_type,
                    self.sql_types.join(" or ")
                ));
            }
        }
        if nullable == Some(true) && !self.option {
            return Some(format!(
                "column `{}` can be NULL, but field `{}` is `{}`, which cannot hold NULL",
                self.column, self.column, self.rust_type
            ));
        }
        None
    }
}
