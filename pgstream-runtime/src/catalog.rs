//! Reading the live schema (for the compiler) and pgstream's own catalog rows.

use crate::error::{Result, Step};
use pgstream_core::{Catalog, Column, QualifiedName, Table, View};
use sqlx::{Connection, PgConnection};

/// oid, schema, name, column names, types, NOT NULL flags, primary key.
type TableRow = (
    i64,
    String,
    String,
    Vec<String>,
    Vec<String>,
    Vec<bool>,
    Vec<String>,
);

/// schema, name, relkind (`v` or `m`), definition (of a view), column names.
type ViewRow = (String, String, String, Option<String>, Vec<String>);

/// The user tables of the database (ordinary and partitioned, outside the system
/// schemas and pgstream's own), with columns, types as `format_type` prints them,
/// NOT NULL flags, primary keys and OIDs; and the views and materialized views, each
/// view with its body as `pg_get_viewdef` prints it under the `search_path` of every
/// refresh (`pg_catalog, pg_temp`), so every name outside `pg_catalog` in the body is
/// schema-qualified (the text `pgstream.pgs_views.definition` records and
/// `pgstream._drift` compares).
///
/// Runs in a savepoint (a transaction when `conn` is in none) with `search_path`
/// pinned to `pg_catalog, pg_temp`, rolled back afterwards: the caller's settings are
/// left as they were, and no function or operator planted in a schema of the caller's
/// `search_path` can run.
pub async fn load_catalog(conn: &mut PgConnection) -> Result<Catalog> {
    let step = "reading the database schema";
    let mut tx = crate::pin::begin_on(conn).await.step(None, step)?;
    let catalog = load_catalog_pinned(&mut tx, None).await?;
    tx.rollback().await.step(None, step)?;
    Ok(catalog)
}

/// The part of [`load_catalog`] that `query` can read: the tables and views named
/// like a relation it names, then like those their bodies name, until no view adds a
/// name. What a creation reads of the catalog does not grow with the number of
/// tables (every stream table is one) in the database. A name may match relations
/// of several schemas; all are loaded, and the compiler resolves it as with the whole
/// catalog.
pub(crate) async fn load_catalog_for(conn: &mut PgConnection, query: &str) -> Result<Catalog> {
    let step = "reading the database schema";
    let mut names = pgstream_core::relation_names(query);
    let mut tx = crate::pin::begin_on(conn).await.step(None, step)?;
    let mut catalog;
    let mut rounds = 0;
    loop {
        catalog = load_catalog_pinned(&mut tx, Some(&names)).await?;
        let before = names.len();
        for v in catalog.views() {
            for n in pgstream_core::relation_names(&v.query) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        rounds += 1;
        if names.len() == before || rounds > 32 {
            break;
        }
    }
    tx.rollback().await.step(None, step)?;
    Ok(catalog)
}

/// Runs the catalog read `template`, restricted to the relations named `names` when
/// given: its `{names}` becomes `AND c.relname = ANY ($1::name[])`, or nothing. A
/// statement of its own for each case, not `($1 IS NULL OR c.relname = ANY ($1))`,
/// whose generic plan (the one a pooled connection's prepared statement settles on
/// after five executions) cannot use `pg_class_relname_nsp_index` and reads all of
/// `pg_class`: every creation then paid for every stream table already created (20 ms
/// per read at 5,000 stream tables).
async fn fetch_restricted<R>(
    conn: &mut PgConnection,
    template: &str,
    names: Option<&[String]>,
) -> std::result::Result<Vec<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let filter = if names.is_some() {
        "AND c.relname = ANY ($1::name[])"
    } else {
        ""
    };
    let sql = template.replace("{names}", filter);
    let mut query = sqlx::query_as::<_, R>(&sql);
    if let Some(names) = names {
        query = query.bind(names);
    }
    query.fetch_all(conn).await
}

/// Compile `spec` against the live schema: against the relations its query can
/// read ([`load_catalog_for`]), and, when that fails, again against the whole catalog,
/// whose every table the error's suggestions ("did you mean ...") look at. Returns the
/// catalog the result was compiled against.
pub(crate) async fn compile_live(
    conn: &mut PgConnection,
    spec: &pgstream_core::StreamTableSpec,
) -> Result<(
    Catalog,
    std::result::Result<pgstream_core::Compiled, pgstream_core::Error>,
)> {
    let catalog = load_catalog_for(conn, &spec.query).await?;
    match pgstream_core::compile(spec, &catalog) {
        Ok(c) => Ok((catalog, Ok(c))),
        Err(_) => {
            let catalog = load_catalog(conn).await?;
            let result = pgstream_core::compile(spec, &catalog);
            Ok((catalog, result))
        }
    }
}

async fn load_catalog_pinned(conn: &mut PgConnection, names: Option<&[String]>) -> Result<Catalog> {
    let rows: Vec<TableRow> = fetch_restricted(
        &mut *conn,
        "SELECT c.oid::int8, n.nspname::text, c.relname::text,
                array_agg(a.attname::text ORDER BY a.attnum),
                array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum),
                array_agg(a.attnotnull ORDER BY a.attnum),
                coalesce((SELECT array_agg(k.attname::text ORDER BY array_position(i.indkey::int2[], k.attnum))
                            FROM pg_catalog.pg_index i
                            JOIN pg_catalog.pg_attribute k
                              ON k.attrelid = i.indrelid AND k.attnum = ANY (i.indkey::int2[])
                           WHERE i.indrelid = c.oid AND i.indisprimary), '{}')
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_catalog.pg_attribute a
             ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          WHERE c.relkind IN ('r', 'p', 'f')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgstream', 'pgstream_changes')
            AND n.nspname NOT LIKE 'pg\\_toast%'
            AND n.nspname NOT LIKE 'pg\\_temp\\_%'
            {names}
          GROUP BY c.oid, n.nspname, c.relname
          ORDER BY n.nspname, c.relname",
        names,
    )
    .await
    .step(None, "reading the database schema")?;

    let tables = rows
        .into_iter()
        .map(|(oid, schema, name, names, types, notnull, pk)| Table {
            name: QualifiedName::new(schema, name),
            columns: names
                .into_iter()
                .zip(types)
                .zip(notnull)
                .map(|((name, sql_type), notnull)| Column {
                    name,
                    sql_type,
                    nullable: !notnull,
                })
                .collect(),
            primary_key: pk,
            oid: u32::try_from(oid).ok(),
        });
    Ok(Catalog::from_parts(tables, load_views(conn, names).await?))
}

/// The views and materialized views (see [`load_catalog`]). The `search_path` is
/// pinned in a transaction of its own (a savepoint when the caller is in one), rolled
/// back afterwards, so the caller's setting is left as it was.
async fn load_views(conn: &mut PgConnection, names: Option<&[String]>) -> Result<Vec<View>> {
    let step = "reading the views of the database";
    let mut tx = conn.begin().await.step(None, step)?;
    // quote_all_identifiers too: pgstream._drift compares the recorded definitions
    // with pg_get_viewdef under the same settings.
    sqlx::query(
        "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
                pg_catalog.set_config('quote_all_identifiers', 'off', true)",
    )
    .execute(&mut *tx)
    .await
    .step(None, step)?;
    let rows: Vec<ViewRow> = fetch_restricted(
        &mut tx,
        "SELECT n.nspname::text, c.relname::text, c.relkind::text,
                CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END,
                coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum)
                            FROM pg_catalog.pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                         '{}')
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('v', 'm')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgstream', 'pgstream_changes')
            AND n.nspname NOT LIKE 'pg\\_toast%'
            AND n.nspname NOT LIKE 'pg\\_temp\\_%'
            {names}
          ORDER BY n.nspname, c.relname",
        names,
    )
    .await
    .step(None, step)?;
    tx.rollback().await.step(None, step)?;
    Ok(rows
        .into_iter()
        .map(|(schema, name, kind, definition, columns)| View {
            name: QualifiedName::new(schema, name),
            query: definition.unwrap_or_default(),
            columns,
            materialized: kind == "m",
        })
        .collect())
}

/// The stored definition of a stream table.
#[derive(Debug, Clone)]
pub(crate) struct StoredDefinition {
    /// Id in `pgstream.pgs_stream_tables`.
    pub id: i64,
    /// The defining query as created.
    pub query: String,
    /// `DIFFERENTIAL`, `FULL` or `IMMEDIATE`.
    pub mode: String,
    /// The schedule as written.
    pub schedule: String,
}

/// Look up a stream table's stored definition by name.
pub(crate) async fn stored_definition(
    conn: &mut PgConnection,
    name: &QualifiedName,
) -> Result<Option<StoredDefinition>> {
    let row: Option<(i64, String, String, String)> = sqlx::query_as(
        "SELECT id, query, mode, schedule FROM pgstream.pgs_stream_tables
          WHERE schema_name = $1 AND table_name = $2",
    )
    .bind(&name.schema)
    .bind(&name.name)
    .fetch_optional(&mut *conn)
    .await
    .step(
        Some(&display_name(name)),
        "reading the stream table catalog",
    )?;
    Ok(row.map(|(id, query, mode, schedule)| StoredDefinition {
        id,
        query,
        mode,
        schedule,
    }))
}

/// How pgstream shows a stream table's name: `name` in `public`, else `schema.name`
/// (the same text `pgstream.refresh_stream_table` accepts).
pub fn display_name(name: &QualifiedName) -> String {
    if name.schema == "public" {
        name.name.clone()
    } else {
        name.to_string()
    }
}
