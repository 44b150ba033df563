//! The base tables as the random DML sees them: columns, types, nullability and
//! keys, read from the catalog, and the rows that exist.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool, Row};

use super::{quote_ident, quote_literal, Domain, Oracle};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Int,
    Numeric,
    Float,
    Text,
    Bool,
    Date,
    Timestamp,
    Other,
}

#[derive(Debug, Clone)]
pub(super) struct Column {
    pub(super) name: String,
    pub(super) sql_type: String,
    pub(super) kind: Kind,
    pub(super) nullable: bool,
    pub(super) is_key: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Table {
    pub(super) name: String,
    /// Columns a generated INSERT sets (no identity/generated columns).
    pub(super) columns: Vec<Column>,
    /// Primary key columns (or the first column if none).
    pub(super) key: Vec<usize>,
    pub(super) has_pk: bool,
}

/// The current values of the [`Domain::Existing`] columns of one table, by column name.
pub(super) type Existing = HashMap<String, Vec<String>>;

impl Oracle {
    pub(super) async fn load_tables(&self, pool: &PgPool) -> Result<Vec<Table>, String> {
        let mut out = Vec::new();
        for (name, _) in &self.tables {
            let rows = sqlx::query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, \
                        a.attnotnull, (a.attidentity <> '' OR a.attgenerated <> ''), \
                        COALESCE(a.attnum = ANY (i.indkey::int2[]), false) \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
                 WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
            )
            .bind(name)
            .fetch_all(pool)
            .await
            .map_err(|e| format!("cannot read columns of {name}: {e}"))?;
            let mut columns = Vec::new();
            for r in &rows {
                let skip: bool = r.get(4);
                if skip {
                    continue;
                }
                let typname: String = r.get(2);
                let kind = match typname.as_str() {
                    "int2" | "int4" | "int8" => Kind::Int,
                    "numeric" => Kind::Numeric,
                    "float4" | "float8" => Kind::Float,
                    "text" | "varchar" | "bpchar" | "name" => Kind::Text,
                    "bool" => Kind::Bool,
                    "date" => Kind::Date,
                    "timestamp" | "timestamptz" => Kind::Timestamp,
                    _ => Kind::Other,
                };
                let col = Column {
                    name: r.get(0),
                    sql_type: r.get(1),
                    kind,
                    nullable: !r.get::<bool, _>(3),
                    is_key: r.get(5),
                };
                if kind == Kind::Other
                    && !col.nullable
                    && !self.domains.contains_key(&(name.clone(), col.name.clone()))
                {
                    return Err(format!(
                        "{name}.{}: no value generator for type {}; give a Domain",
                        col.name, col.sql_type
                    ));
                }
                columns.push(col);
            }
            if columns.is_empty() {
                return Err(format!("{name} has no insertable columns"));
            }
            let mut key: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].is_key).collect();
            let has_pk = !key.is_empty();
            if !has_pk {
                key.push(0);
            }
            out.push(Table {
                name: name.clone(),
                columns,
                key,
                has_pk,
            });
        }
        Ok(out)
    }

    /// Current values of the [`Domain::Existing`] columns of `t`.
    pub(super) async fn load_existing(
        &self,
        conn: &mut PgConnection,
        t: &Table,
    ) -> Result<Existing, String> {
        let mut cache = HashMap::new();
        for c in &t.columns {
            if let Some(Domain::Existing {
                table,
                column,
                extra,
            }) = self.domains.get(&(t.name.clone(), c.name.clone()))
            {
                let sql = format!(
                    "SELECT DISTINCT {col}::text FROM {table} WHERE {col} IS NOT NULL ORDER BY 1",
                    col = quote_ident(column)
                );
                let vals: Vec<String> = sqlx::query_scalar(&sql)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(|e| format!("{sql}: {e}"))?;
                let mut lits: Vec<String> = vals.iter().map(|v| quote_literal(v)).collect();
                lits.extend(extra.iter().cloned());
                cache.insert(c.name.clone(), lits);
            }
        }
        Ok(cache)
    }
}
