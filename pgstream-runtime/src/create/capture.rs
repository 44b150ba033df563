//! Change capture on a source: its buffer table, trigger function and statement
//! triggers, installed before the stream table's catalog rows (see [`super`]).

use crate::error::{Result, Step};
use pgstream_core::contract::{buffer_table, CHANGES_SCHEMA, CHANGE_ID, WEIGHT, XID};
use pgstream_core::{quote_ident, quote_qualified, Table};
use sea_query::{Alias, ColumnDef, Expr, PostgresQueryBuilder};
use sqlx::postgres::types::Oid;
use sqlx::PgConnection;

/// Names of the capture triggers pgstream installs on a source table (also used by
/// `pgstream._drop_capture`).
const TRIGGER_INSERT: &str = "__pgs_capture_ins";
const TRIGGER_UPDATE: &str = "__pgs_capture_upd";
const TRIGGER_DELETE: &str = "__pgs_capture_del";
const TRIGGER_TRUNCATE: &str = "__pgs_capture_trunc";

/// Install change capture on a source table unless it is already installed: the
/// buffer `pgstream_changes.changes_<oid>` with the columns `needed` (a buffer that
/// exists already gains those it lacks: it holds the union of what its consumers
/// read), the trigger function `pgstream_changes.capture_<oid>()` (regenerated: it
/// copies the columns the buffer has) and the four statement triggers.
///
/// A consumer that adds columns starts from the snapshot of its own initial refresh:
/// `ALTER TABLE` waits for the writers in progress, whose rows (without the new
/// columns) that snapshot then sees, so its windows never hold them.
///
/// Locks the source's `pgstream.pgs_sources` row until the transaction ends, so
/// buffer trimming waits for this creation (its frontier is not committed yet).
pub(super) async fn install_capture(
    conn: &mut PgConnection,
    source: &Table,
    oid: u32,
    needed: &[String],
    name: &str,
) -> Result<()> {
    let subject = Some(name);
    const STEP: &str = "installing change capture";
    sqlx::query(
        "INSERT INTO pgstream.pgs_sources (source_oid, schema_name, table_name) VALUES ($1, $2, $3)
         ON CONFLICT (source_oid) DO NOTHING",
    )
    .bind(Oid(oid))
    .bind(&source.name.schema)
    .bind(&source.name.name)
    .execute(&mut *conn)
    .await
    .step(subject, STEP)?;
    sqlx::query("SELECT 1 FROM pgstream.pgs_sources WHERE source_oid = $1 FOR UPDATE")
        .bind(Oid(oid))
        .execute(&mut *conn)
        .await
        .step(subject, STEP)?;

    let buffer = buffer_table(oid);
    let buffer_q = format!("{}.{}", quote_ident(CHANGES_SCHEMA), quote_ident(&buffer));
    let collations = collations(&mut *conn, oid).await.step(subject, STEP)?;
    let has_buffer: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&buffer_q)
        .fetch_one(&mut *conn)
        .await
        .step(subject, STEP)?;
    if !has_buffer {
        for ddl in buffer_ddl(source, oid, needed, &collations) {
            crate::pin::script(&mut *conn, &ddl)
                .await
                .step(subject, "creating the change buffer")?;
        }
    } else {
        // Reused buffer: the columns this consumer reads that no earlier one did (the
        // trigger function below is regenerated with every column of the buffer).
        let have: Vec<String> = sqlx::query_scalar(
            "SELECT attname::text FROM pg_catalog.pg_attribute
              WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        )
        .bind(&buffer_q)
        .fetch_all(&mut *conn)
        .await
        .step(subject, STEP)?;
        for c in source
            .columns
            .iter()
            .filter(|c| needed.contains(&c.name) && !have.contains(&c.name))
        {
            let ddl = sea_query::Table::alter()
                .table((Alias::new(CHANGES_SCHEMA), Alias::new(&buffer)))
                .add_column(buffer_column(c, &collations))
                .to_string(PostgresQueryBuilder);
            crate::pin::script(&mut *conn, &ddl)
                .await
                .step(subject, "extending the change buffer")?;
        }
    }
    crate::pin::execute(&mut *conn, "SELECT pgstream._build_capture($1)", Oid(oid))
        .await
        .step(subject, "creating the capture trigger function")?;

    let existing: Vec<String> =
        sqlx::query_scalar("SELECT tgname::text FROM pg_catalog.pg_trigger WHERE tgrelid = $1")
            .bind(Oid(oid))
            .fetch_all(&mut *conn)
            .await
            .step(subject, STEP)?;
    let missing: Vec<String> = trigger_ddl(source, oid)
        .into_iter()
        .filter(|(trigger, _)| !existing.iter().any(|t| t == trigger))
        .map(|(_, ddl)| ddl)
        .collect();
    if !missing.is_empty() {
        crate::pin::script(&mut *conn, &missing.join(";\n"))
            .await
            .step(subject, "creating the capture triggers")?;
    }
    // A partitioned source: the same triggers on every member of its tree.
    crate::pin::execute(&mut *conn, "SELECT pgstream._sync_partitions($1)", Oid(oid))
        .await
        .step(subject, "creating the capture triggers of the partitions")?;
    Ok(())
}

/// The columns of source `oid` whose collation is not their type's default, with
/// that collation (quoted by the server): a buffer column has the same, so the
/// delta compares the changed rows as the query compares the table's (a column under
/// a case-insensitive collation, `'Bob' = 'bob'`).
async fn collations(
    conn: &mut PgConnection,
    oid: u32,
) -> std::result::Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.attname::text, pg_catalog.format('%I.%I', n.nspname, co.collname)
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
           JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
           JOIN pg_catalog.pg_namespace n ON n.oid = co.collnamespace
          WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
            AND a.attcollation <> t.typcollation",
    )
    .bind(Oid(oid))
    .fetch_all(conn)
    .await
}

/// A buffer column for the source's column `c`: its type (`format_type`'s text) and
/// its collation when it has one of its own (`collations`, server-quoted).
fn buffer_column(c: &pgstream_core::Column, collations: &[(String, String)]) -> ColumnDef {
    let mut def = ColumnDef::new(Alias::new(&c.name));
    def.custom(Alias::new(&c.sql_type));
    if let Some((_, coll)) = collations.iter().find(|(n, _)| *n == c.name) {
        def.extra(format!("COLLATE {coll}"));
    }
    def
}

/// The change buffer of a source with the columns `needed` (in the table's order)
/// and its autovacuum settings, built with sea-query. sea-query has no `GENERATED ALWAYS AS IDENTITY` nor `xid8`: the
/// identity goes through `ColumnDef::extra` and the types through `custom` (the type
/// text is PostgreSQL's own `format_type`, not user input).
pub(crate) fn buffer_ddl(
    source: &Table,
    oid: u32,
    needed: &[String],
    collations: &[(String, String)],
) -> Vec<String> {
    let buffer = buffer_table(oid);
    let mut create = sea_query::Table::create();
    create
        .table((Alias::new(CHANGES_SCHEMA), Alias::new(&buffer)))
        .col(
            ColumnDef::new(Alias::new(CHANGE_ID))
                .big_integer()
                .not_null()
                .extra("GENERATED ALWAYS AS IDENTITY"),
        )
        .col(
            ColumnDef::new(Alias::new(XID))
                .custom(Alias::new("xid8"))
                .not_null()
                .default(Expr::cust("pg_catalog.pg_current_xact_id()")),
        )
        .col(
            ColumnDef::new(Alias::new(WEIGHT))
                .small_integer()
                .not_null(),
        );
    for c in source.columns.iter().filter(|c| needed.contains(&c.name)) {
        create.col(buffer_column(c, collations));
    }
    // No index: maintaining a b-tree on the xid cost ~35% of a bulk write (measured,
    // docs/BENCHMARKS.md), while a trimmed buffer holds little more than the next
    // window, which a sequential scan reads at the same cost. Its dead rows (trimmed
    // changes) are what a scan also reads, so autovacuum visits a buffer after 1,000
    // of them rather than after 20% of its size.
    let storage = format!(
        "ALTER TABLE {}.{} SET (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0, \
         autovacuum_vacuum_insert_threshold = 10000, autovacuum_vacuum_insert_scale_factor = 0, \
         autovacuum_analyze_threshold = 1000, autovacuum_analyze_scale_factor = 0)",
        quote_ident(CHANGES_SCHEMA),
        quote_ident(&buffer)
    );
    vec![create.to_string(PostgresQueryBuilder), storage]
}

/// The four capture triggers of a source: `(name, DDL)`. Trigger DDL is beyond
/// sea-query; identifiers go through `quote_ident`. PostgreSQL allows one event per
/// trigger with transition tables, hence one trigger each.
pub(crate) fn trigger_ddl(source: &Table, oid: u32) -> Vec<(&'static str, String)> {
    let table = quote_qualified(&source.name);
    let func = format!(
        "{}.{}()",
        quote_ident(CHANGES_SCHEMA),
        quote_ident(&format!("capture_{oid}"))
    );
    let t = |name: &'static str, rest: String| {
        (name, format!("CREATE TRIGGER {} {rest}", quote_ident(name)))
    };
    vec![
        t(
            TRIGGER_INSERT,
            format!("AFTER INSERT ON {table} REFERENCING NEW TABLE AS __pgs_new FOR EACH STATEMENT EXECUTE FUNCTION {func}"),
        ),
        t(
            TRIGGER_UPDATE,
            format!(
                "AFTER UPDATE ON {table} REFERENCING OLD TABLE AS __pgs_old NEW TABLE AS __pgs_new \
                 FOR EACH STATEMENT EXECUTE FUNCTION {func}"
            ),
        ),
        t(
            TRIGGER_DELETE,
            format!("AFTER DELETE ON {table} REFERENCING OLD TABLE AS __pgs_old FOR EACH STATEMENT EXECUTE FUNCTION {func}"),
        ),
        t(
            TRIGGER_TRUNCATE,
            format!("AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION pgstream._on_truncate()"),
        ),
    ]
}
