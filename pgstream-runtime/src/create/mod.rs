//! Creating and dropping stream tables, and installing change capture on sources.
//!
//! A creation runs in ONE transaction: capture (triggers first), catalog row,
//! frontier rows, storage table, initial full refresh, stats row. Any failure rolls
//! everything back, so nothing is ever half-installed. The steps live in the
//! submodules: the checks that refuse a query or a source before anything is
//! installed ([`checks`]), change capture on the sources ([`capture`]), and what the
//! catalog records for drift detection ([`record`]).

mod capture;
mod checks;
mod guard;
mod record;

use capture::install_capture;
pub(crate) use checks::source_oid;
use checks::{
    check_cycle, check_hierarchy, check_not_citus, check_not_foreign, reject_volatile_functions,
};
pub(crate) use guard::upgrade_guards;
use guard::{GUARD_TRIGGER_ACTION, GUARD_TRIGGER_TAIL};
pub(crate) use record::{backfill_source_columns, backfill_views};
use record::{store_source_columns, store_views, used_columns};

use crate::catalog::{compile_live, display_name, stored_definition};
use crate::error::{Error, Result, Step};
use crate::install::{install, CREATE_LOCK_CLASS};
use pgstream_core::contract::{self};
use pgstream_core::{quote_ident, quote_qualified, RenderContext, SourceBinding, StreamTableSpec};
use sqlx::postgres::types::Oid;
use sqlx::{PgConnection, PgPool};

/// Appended to an unknown-table error of a registered struct at start-up.
const MIGRATIONS_NOT_APPLIED: &str = "\n  = note: the query was checked against the crate's \
    migrations when it was compiled, but this database does not have the table: apply the \
    migrations (`sqlx::migrate!().run(&pool)`) before `Runtime::start`";

/// Create a stream table: compile its query against the live schema, install change
/// capture on its sources, create and populate the storage table, register it.
///
/// Installs the catalog first if needed. All in one transaction: on error nothing
/// is left behind.
pub async fn create_stream_table(pool: &PgPool, spec: &StreamTableSpec) -> Result<()> {
    create_checked(pool, spec, None).await
}

/// [`create_stream_table`], refusing (before anything is installed) when the query
/// compiles against the live schema to other output columns than `expected` (those
/// compiled into the program: the schema drifted).
pub(crate) async fn create_checked(
    pool: &PgPool,
    spec: &StreamTableSpec,
    expected: Option<&[&str]>,
) -> Result<()> {
    install(pool).await?;
    let name = display_name(&spec.name);
    let mut tx = begin_ddl(pool, &name, "starting the creation").await?;
    create_in(&mut tx, spec, &name, expected).await?;
    tx.commit()
        .await
        .step(Some(&name), "committing the creation")?;
    tracing::info!(stream_table = %name, "created stream table");
    Ok(())
}

/// Create a stream table inside `conn`'s transaction (with `search_path` pinned by
/// the caller); see [`create_stream_table`].
pub(crate) async fn create_in(
    conn: &mut PgConnection,
    spec: &StreamTableSpec,
    name: &str,
    expected: Option<&[&str]>,
) -> Result<()> {
    let subject = Some(name);
    // Serialise creations of one name, so the existence check below is reliable.
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(CREATE_LOCK_CLASS)
        .bind(spec.name.to_string())
        .execute(&mut *conn)
        .await
        .step(subject, "locking the name")?;
    if stored_definition(conn, &spec.name).await?.is_some() {
        return Err(Error::AlreadyExists(name.to_string()));
    }
    let taken: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(quote_qualified(&spec.name))
        .fetch_one(&mut *conn)
        .await
        .step(subject, "checking the storage table name")?;
    if taken {
        return Err(Error::NameTaken(name.to_string()));
    }

    // The relations the query names; the whole catalog only to explain an error
    // (its suggestions, "did you mean ...", look at every table).
    let (catalog, compiled) = compile_live(conn, spec).await?;
    let compiled = compiled.map_err(|e| {
        let mut rendered = e.render(&spec.query);
        if expected.is_some() && rendered.contains("unknown table") {
            // A registered struct: its query was checked against the crate's
            // migrations at compile time, so they have not been applied here.
            rendered.push_str(MIGRATIONS_NOT_APPLIED);
        }
        Error::Compile {
            name: name.to_string(),
            rendered,
            source: Box::new(e),
        }
    })?;
    reject_volatile_functions(conn, spec, name, &compiled).await?;
    if let Some(expected) = expected {
        let found: Vec<&str> = compiled.columns.iter().map(|c| c.name.as_str()).collect();
        check_columns(name, expected, &found)?;
    }
    let used = used_columns(spec, &catalog, &compiled);

    // Capture first: changes committed after the initial refresh's snapshot must
    // land in a buffer (PRIOR_ART: pg_ivm fix #121).
    let mut bindings = Vec::with_capacity(compiled.sources.len());
    for (i, source) in compiled.sources.iter().enumerate() {
        let oid = source_oid(conn, source, name).await?;
        check_not_foreign(conn, oid, name).await?;
        check_not_citus(conn, oid, name).await?;
        if spec.mode.is_incremental() {
            check_hierarchy(conn, oid, name).await?;
        }
        install_capture(conn, source, oid, &compiled.buffer_columns(i), name).await?;
        bindings.push(SourceBinding { oid });
    }
    let source_oids: Vec<u32> = bindings.iter().map(|b| b.oid).collect();
    check_cycle(conn, spec, name, &source_oids).await?;

    let id: i64 = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('pgstream.pgs_stream_tables', 'id'))",
    )
    .fetch_one(&mut *conn)
    .await
    .step(subject, "allocating the stream table id")?;
    let artifacts = compiled.render(&RenderContext {
        st_id: id,
        sources: bindings.clone(),
    });

    sqlx::query(
        "INSERT INTO pgstream.pgs_stream_tables
                (id, schema_name, table_name, query, mode, schedule, schedule_interval,
                 full_refresh_sql, differential_refresh_sql, refresh_function, strategy,
                 settings, schedule_kind)
         VALUES ($1, $2, $3, $4, $5, $6, $7::float8 * interval '1 millisecond', $8, $9, $10, $11,
                 pgstream._result_settings(), $12)",
    )
    .bind(id)
    .bind(&spec.name.schema)
    .bind(&spec.name.name)
    .bind(&spec.query)
    .bind(spec.mode.as_str())
    .bind(spec.schedule.to_string())
    .bind(spec.schedule.nominal_interval().as_secs_f64() * 1000.0)
    .bind(&artifacts.full_refresh)
    .bind(&artifacts.differential_refresh)
    .bind(artifacts.refresh_function.as_ref().map(|_| {
        format!(
            "{}.{}",
            quote_ident(contract::CATALOG_SCHEMA),
            quote_ident(&contract::refresh_function(id))
        )
    }))
    .bind(compiled.strategy_summary())
    .bind(crate::schedule::schedule_kind(&spec.schedule))
    .execute(&mut *conn)
    .await
    .step(subject, "registering the stream table")?;

    let oids: Vec<u32> = bindings.iter().map(|b| b.oid).collect();
    store_source_columns(conn, id, &compiled, &oids, &used, name).await?;
    store_views(conn, id, &compiled, &catalog, name).await?;

    // With the name the stored statements read each source by (see _drift_sources).
    // With its change filter, when the query has one for the source.
    for (i, (b, source)) in bindings.iter().zip(&compiled.sources).enumerate() {
        let filter = compiled.change_filter(i);
        sqlx::query(
            "INSERT INTO pgstream.pgs_frontiers (st_id, source_oid, source_schema, source_name,
                                                 change_filter, change_args)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(Oid(b.oid))
        .bind(&source.name.schema)
        .bind(&source.name.name)
        .bind(filter.as_ref().map(|f| f.template.as_str()))
        .bind(filter.as_ref().map(|f| f.args.clone()))
        .execute(&mut *conn)
        .await
        .step(subject, "registering the frontiers")?;
    }

    for ddl in &artifacts.storage_ddl {
        crate::pin::script(&mut *conn, ddl)
            .await
            .step(subject, "creating storage table")?;
    }

    if let Some(function) = &artifacts.refresh_function {
        create_refresh_function(conn, function, id, subject).await?;
    }

    // Only refreshes may write to the storage table (PRIOR_ART #21).
    let storage = quote_qualified(&spec.name);
    crate::pin::script(
        &mut *conn,
        &format!("CREATE TRIGGER \"__pgs_guard\" {GUARD_TRIGGER_TAIL} ON {storage} {GUARD_TRIGGER_ACTION}"),
    )
    .await
    .step(subject, "creating the storage guard trigger")?;
    // `no_own_rows` off: the population looks for this transaction's own buffer rows
    // (see `pgstream.refresh_stream_table_by_id`).
    sqlx::query(
        "SELECT set_config('pgstream.refreshing', 'on', true), set_config('pgstream.no_own_rows', '', true)",
    )
    .execute(&mut *conn)
    .await
    .step(subject, "initial refresh")?;

    // The initial population sets the frontiers to its own snapshot.
    let started = std::time::Instant::now();
    let rows: Option<i64> = sqlx::query_scalar(&artifacts.full_refresh)
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
        .step(subject, "initial refresh")?;
    let population_ms = started.elapsed().as_secs_f64() * 1000.0;
    sqlx::query("SELECT set_config('pgstream.refreshing', '', true)")
        .execute(&mut *conn)
        .await
        .step(subject, "initial refresh")?;
    tracing::debug!(stream_table = %name, rows = rows.unwrap_or(0), "initial refresh");

    sqlx::query(
        "UPDATE pgstream.pgs_stream_tables SET last_refresh_at = now(), data_timestamp = now()
          WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *conn)
    .await
    .step(subject, "registering the stream table")?;
    // The population is a full refresh: its duration seeds the cost model of the
    // adaptive switch (`full_ms_avg`), which would otherwise learn the cost of a full
    // refresh only from the first one it chose with the fallback ratio.
    sqlx::query("INSERT INTO pgstream.pgs_refresh_stats (st_id, full_ms_avg) VALUES ($1, $2)")
        .bind(id)
        .bind(population_ms)
        .execute(&mut *conn)
        .await
        .step(subject, "registering the stream table")?;
    Ok(())
}

/// Compare the output columns compiled into the program with the database's.
pub(crate) fn check_columns(name: &str, expected: &[&str], found: &[&str]) -> Result<()> {
    if expected == found {
        return Ok(());
    }
    Err(Error::SchemaDrift {
        name: name.to_string(),
        expected: expected.iter().map(|s| s.to_string()).collect(),
        found: found.iter().map(|s| s.to_string()).collect(),
    })
}

/// Creates the generated refresh function of stream table `id` (its `CREATE
/// FUNCTION`, `function`) and attaches the stream table's recorded settings to it.
pub(crate) async fn create_refresh_function(
    conn: &mut PgConnection,
    function: &str,
    id: i64,
    subject: Option<&str>,
) -> Result<()> {
    const STEP: &str = "creating the refresh function";
    crate::pin::script(&mut *conn, function)
        .await
        .step(subject, STEP)?;
    crate::pin::execute(conn, "SELECT pgstream._pin_function_settings($1)", id)
        .await
        .step(subject, STEP)
}

/// The transaction a creation or replacement runs in: the same `search_path` as
/// every refresh (`crate::pin`), so a query that would fail there fails now and
/// types outside pg_catalog come back schema-qualified from `format_type`; JIT off
/// as in every refresh (see `refresh_stream_table_by_id`).
pub(crate) async fn begin_ddl(
    pool: &PgPool,
    name: &str,
    step: &'static str,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = crate::pin::begin(pool).await.step(Some(name), step)?;
    crate::pin::script(&mut tx, "SET LOCAL jit = off")
        .await
        .step(Some(name), step)?;
    Ok(tx)
}
