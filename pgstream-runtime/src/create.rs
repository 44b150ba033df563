//! Creating and dropping stream tables, and installing change capture on sources.
//!
//! A creation runs in ONE transaction: capture (triggers first), catalog row,
//! frontier rows, storage table, initial full refresh, stats row. Any failure rolls
//! everything back, so nothing is ever half-installed.

use crate::catalog::{display_name, load_catalog, load_catalog_for, stored_definition};
use crate::error::{Error, Result, Step};
use crate::install::{install, CREATE_LOCK_CLASS};
use pgstream_core::contract::{self, buffer_table, CHANGES_SCHEMA, CHANGE_ID, WEIGHT, XID};
use pgstream_core::{
    compile, quote_ident, quote_qualified, Catalog, Compiled, QualifiedName, RenderContext,
    Schedule, SourceBinding, Strategy, StreamTableSpec, Table,
};
use sea_query::{Alias, ColumnDef, Expr, PostgresQueryBuilder};
use sqlx::postgres::types::Oid;
use sqlx::{Connection, PgConnection, PgPool};

/// Names of the capture triggers pgstream installs on a source table (also used by
/// `pgstream._drop_capture`).
pub(crate) const TRIGGER_INSERT: &str = "__pgs_capture_ins";
pub(crate) const TRIGGER_UPDATE: &str = "__pgs_capture_upd";
pub(crate) const TRIGGER_DELETE: &str = "__pgs_capture_del";
pub(crate) const TRIGGER_TRUNCATE: &str = "__pgs_capture_trunc";

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
    let mut catalog = load_catalog_for(conn, &spec.query).await?;
    let compiled = match compile(spec, &catalog) {
        Ok(c) => c,
        Err(_) => {
            catalog = load_catalog(conn).await?;
            compile(spec, &catalog).map_err(|e| {
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
            })?
        }
    };
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
    .bind(schedule_kind(&spec.schedule))
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
        crate::pin::script(&mut *conn, function)
            .await
            .step(subject, "creating the refresh function")?;
        sqlx::query("SELECT pgstream._pin_function_settings($1)")
            .bind(id)
            .execute(&mut *conn)
            .await
            .step(subject, "creating the refresh function")?;
    }

    // Only refreshes may write to the storage table (PRIOR_ART #21).
    let storage = quote_qualified(&spec.name);
    crate::pin::script(
        &mut *conn,
        &format!(
        "CREATE TRIGGER \"__pgs_guard\" BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {storage} \
         FOR EACH STATEMENT EXECUTE FUNCTION pgstream._guard_storage()"
    ),
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

pub(crate) async fn source_oid(conn: &mut PgConnection, source: &Table, name: &str) -> Result<u32> {
    if let Some(oid) = source.oid {
        return Ok(oid);
    }
    let oid: Option<Oid> = sqlx::query_scalar("SELECT to_regclass($1)::oid")
        .bind(quote_qualified(&source.name))
        .fetch_one(&mut *conn)
        .await
        .step(Some(name), "resolving a source table")?;
    oid.map(|o| o.0).ok_or_else(|| {
        Error::Invalid(format!(
            "stream table {name}: source table {} does not exist",
            source.name
        ))
    })
}

/// Refuse a foreign table as a source: its rows change on the remote server, where
/// no trigger of this database fires, and PostgreSQL allows no transition tables on
/// a foreign table, so there is nothing to capture (the catalog loads foreign tables
/// so that this error, not "unknown table", is what the user sees).
async fn check_not_foreign(conn: &mut PgConnection, oid: u32, name: &str) -> Result<()> {
    let foreign: Option<String> = sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_catalog.pg_class c WHERE c.oid = $1 AND c.relkind = 'f'",
    )
    .bind(Oid(oid))
    .fetch_optional(&mut *conn)
    .await
    .step(Some(name), "checking the sources' kind")?;
    match foreign {
        Some(table) => Err(Error::Invalid(format!(
            "stream table {name}: source {table} is a foreign table: its rows change on the remote \
             server, where no trigger of this database fires, so pgstream cannot capture its \
             changes (in either mode). Copy it into a local table and read that"
        ))),
        None => Ok(()),
    }
}

/// Refuse a Citus table (distributed, reference, single-shard or Citus local) as a
/// source, in either mode: its rows are written to its shards, whose writes fire the
/// shards' triggers, so nothing would be captured (docs/SCALING.md, step 0). A source
/// made a Citus table after creation is drift (`pgstream._drift`).
async fn check_not_citus(conn: &mut PgConnection, oid: u32, name: &str) -> Result<()> {
    let refusal: Option<String> = sqlx::query_scalar("SELECT pgstream._citus_refusal($1)")
        .bind(Oid(oid))
        .fetch_one(&mut *conn)
        .await
        .step(Some(name), "checking whether a source is a Citus table")?;
    match refusal {
        Some(why) => Err(Error::Invalid(format!("stream table {name}: {why}"))),
        None => Ok(()),
    }
}

/// Refuse, in DIFFERENTIAL mode, a source whose rows the capture cannot follow
/// exactly: a table with inheritance children (their rows are part of `FROM parent`,
/// its primary key does not span them, and their writes fire their own triggers), and
/// a partition or inheritance child (writes through its parent fire only the
/// parent's statement triggers). A partitioned table is accepted: every member of
/// its tree gets the capture triggers (`pgstream._sync_partitions`).
async fn check_hierarchy(conn: &mut PgConnection, oid: u32, name: &str) -> Result<()> {
    let (source, parent, child): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT $1::oid::regclass::text,
                (SELECT i.inhparent::regclass::text FROM pg_catalog.pg_inherits i
                  WHERE i.inhrelid = $1 ORDER BY i.inhseqno LIMIT 1),
                (SELECT i.inhrelid::regclass::text FROM pg_catalog.pg_inherits i
                   JOIN pg_catalog.pg_class c ON c.oid = i.inhparent AND c.relkind <> 'p'
                  WHERE i.inhparent = $1 ORDER BY i.inhrelid LIMIT 1)",
    )
    .bind(Oid(oid))
    .fetch_one(&mut *conn)
    .await
    .step(Some(name), "checking the sources' inheritance")?;
    if let Some(parent) = parent {
        return Err(Error::Invalid(format!(
            "stream table {name}: source table {source} is a partition or an inheritance child of \
             {parent}, and writes through {parent} fire only {parent}'s statement triggers: \
             DIFFERENTIAL mode cannot capture them for {source}. Read {parent} (with a WHERE on \
             its partition key), or use FULL mode"
        )));
    }
    if let Some(child) = child {
        return Err(Error::Invalid(format!(
            "stream table {name}: source table {source} has inheritance children ({child}): their \
             rows are part of `FROM {source}`, but its primary key does not span them and their \
             writes fire only their own triggers, so DIFFERENTIAL mode cannot maintain it. Use \
             declarative partitioning (PARTITION BY), or FULL mode"
        )));
    }
    Ok(())
}

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
pub(crate) async fn install_capture(
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
    let has_buffer: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&buffer_q)
        .fetch_one(&mut *conn)
        .await
        .step(subject, STEP)?;
    if !has_buffer {
        for ddl in buffer_ddl(source, oid, needed) {
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
                .add_column(ColumnDef::new(Alias::new(&c.name)).custom(Alias::new(&c.sql_type)))
                .to_string(PostgresQueryBuilder);
            crate::pin::script(&mut *conn, &ddl)
                .await
                .step(subject, "extending the change buffer")?;
        }
    }
    sqlx::query("SELECT pgstream._build_capture($1)")
        .bind(Oid(oid))
        .execute(&mut *conn)
        .await
        .step(subject, "creating the capture trigger function")?;

    let existing: Vec<String> =
        sqlx::query_scalar("SELECT tgname::text FROM pg_catalog.pg_trigger WHERE tgrelid = $1")
            .bind(Oid(oid))
            .fetch_all(&mut *conn)
            .await
            .step(subject, STEP)?;
    for (trigger, ddl) in trigger_ddl(source, oid) {
        if !existing.iter().any(|t| t == trigger) {
            crate::pin::script(&mut *conn, &ddl)
                .await
                .step(subject, "creating the capture triggers")?;
        }
    }
    // A partitioned source: the same triggers on every member of its tree.
    sqlx::query("SELECT pgstream._sync_partitions($1)")
        .bind(Oid(oid))
        .execute(&mut *conn)
        .await
        .step(subject, "creating the capture triggers of the partitions")?;
    Ok(())
}

/// The change buffer of a source with the columns `needed` (in the table's order)
/// and its autovacuum settings, built with sea-query. sea-query has no `GENERATED ALWAYS AS IDENTITY` nor `xid8`: the
/// identity goes through `ColumnDef::extra` and the types through `custom` (the type
/// text is PostgreSQL's own `format_type`, not user input).
pub(crate) fn buffer_ddl(source: &Table, oid: u32, needed: &[String]) -> Vec<String> {
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
        create.col(ColumnDef::new(Alias::new(&c.name)).custom(Alias::new(&c.sql_type)));
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

/// Drop a stream table (see `pgstream.drop_stream_table`): storage table, catalog
/// rows, and the capture of sources no other stream table reads. Fails, naming
/// them, when other stream tables read it; see [`drop_stream_table_cascade`].
pub async fn drop_stream_table(pool: &PgPool, name: &str) -> Result<()> {
    drop_with(pool, name, false).await
}

/// Drop a stream table and, first, every stream table that reads it (recursively).
pub async fn drop_stream_table_cascade(pool: &PgPool, name: &str) -> Result<()> {
    drop_with(pool, name, true).await
}

async fn drop_with(pool: &PgPool, name: &str, cascade: bool) -> Result<()> {
    let r = async {
        let mut tx = crate::pin::begin(pool).await?;
        sqlx::query("SELECT pgstream.drop_stream_table($1, $2)")
            .bind(name)
            .bind(cascade)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await;
    match r {
        Ok(_) => {
            tracing::info!(stream_table = %name, "dropped stream table");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Err(Error::NotFound(name.to_string())),
        Err(e) => Err(Error::db(Some(name), "dropping", e)),
    }
}

/// Whether an error is `pgstream._resolve`'s "stream table X does not exist".
pub(crate) fn is_not_found(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("42P01") && db.message().starts_with("stream table ")
        }
        _ => false,
    }
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

/// Record the source columns the query uses, with their attnum and type, in
/// `pgs_stream_tables.source_columns`: drift checks (`pgstream._drift`) compare them
/// with the live catalog. `oids[i]` is the oid of `compiled.sources[i]`.
async fn store_source_columns(
    conn: &mut PgConnection,
    id: i64,
    compiled: &Compiled,
    oids: &[u32],
    used: &[(QualifiedName, String)],
    name: &str,
) -> Result<()> {
    let (used_oids, used_names): (Vec<i64>, Vec<String>) = used
        .iter()
        .filter_map(|(src, col)| {
            let i = compiled.sources.iter().position(|t| t.name == *src)?;
            Some((i64::from(*oids.get(i)?), col.clone()))
        })
        .unzip();
    sqlx::query(
        "UPDATE pgstream.pgs_stream_tables SET source_columns = (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'oid', a.attrelid::int8, 'table', n.nspname || '.' || c.relname,
                       'attnum', a.attnum, 'column', a.attname::text,
                       'type', pg_catalog.format_type(a.atttypid, a.atttypmod))
                     ORDER BY u.ord), '[]')
              FROM unnest($2::int8[], $3::text[]) WITH ORDINALITY AS u(oid, col, ord)
              JOIN pg_catalog.pg_attribute a
                ON a.attrelid = u.oid::oid AND a.attname = u.col AND NOT a.attisdropped
              JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace)
          WHERE id = $1",
    )
    .bind(id)
    .bind(&used_oids)
    .bind(&used_names)
    .execute(&mut *conn)
    .await
    .step(Some(name), "recording the source columns")?;
    Ok(())
}

/// Record the views the query reads (expanded into it: [`Compiled::views`]) in
/// `pgstream.pgs_views`: oid, name, column names, the xmin of the `_RETURN` rule and
/// the definition as compiled (`pg_get_viewdef`, from `catalog`), and mark the stream
/// table's views as recorded: `pgstream._drift` reports a view redefined, renamed or
/// dropped since. Runs in the caller's transaction, whose settings it pins like
/// `_drift` does (`search_path`, `quote_all_identifiers`: `pg_get_viewdef`'s text
/// depends on them). A view whose definition now differs from the one compiled (it was
/// replaced since the catalog was read) fails the creation.
async fn store_views(
    conn: &mut PgConnection,
    id: i64,
    compiled: &Compiled,
    catalog: &Catalog,
    name: &str,
) -> Result<()> {
    let step = "recording the views the query reads";
    let mut schemas = Vec::new();
    let mut names = Vec::new();
    let mut definitions = Vec::new();
    for v in &compiled.views {
        let Some(view) = catalog.lookup_view(Some(&v.schema), &v.name) else {
            return Err(Error::Invalid(format!(
                "stream table {name}: the view {v} it reads is not in the catalog"
            )));
        };
        schemas.push(v.schema.clone());
        names.push(v.name.clone());
        definitions.push(view.query.clone());
    }
    sqlx::query(
        "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),
                pg_catalog.set_config('quote_all_identifiers', 'off', true)",
    )
    .execute(&mut *conn)
    .await
    .step(Some(name), step)?;
    // `regclass` fails with "relation does not exist" if a view was dropped meanwhile.
    let changed: Option<String> = sqlx::query_scalar(
        "WITH u AS (
             SELECT pg_catalog.format('%I.%I', u.s, u.n)::regclass::oid AS oid, u.s, u.n, u.d, u.ord
               FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(s, n, d, ord)),
         ins AS (
             INSERT INTO pgstream.pgs_views
                    (st_id, view_oid, ord, schema_name, view_name, definition, columns, rule_xmin)
             SELECT $1, u.oid, u.ord, u.s, u.n, u.d,
                    ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                           WHERE a.attrelid = u.oid AND a.attnum > 0 AND NOT a.attisdropped
                           ORDER BY a.attnum),
                    (SELECT r.xmin FROM pg_catalog.pg_rewrite r
                      WHERE r.ev_class = u.oid AND r.rulename = '_RETURN')
               FROM u
             ON CONFLICT DO NOTHING)
         SELECT u.s || '.' || u.n FROM u
          WHERE pg_catalog.pg_get_viewdef(u.oid) IS DISTINCT FROM u.d
          ORDER BY u.ord LIMIT 1",
    )
    .bind(id)
    .bind(&schemas)
    .bind(&names)
    .bind(&definitions)
    .fetch_optional(&mut *conn)
    .await
    .step(Some(name), step)?;
    if let Some(view) = changed {
        return Err(Error::Invalid(format!(
            "stream table {name}: the view {view} was redefined while the stream table was \
             being created; create it again"
        )));
    }
    sqlx::query("UPDATE pgstream.pgs_stream_tables SET views_recorded = true WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .step(Some(name), step)?;
    Ok(())
}

/// Stream tables created before catalog version 6 have no recorded views: compile
/// each one's stored query against the live schema and record the views it reads with
/// their definitions of now (a redefinition made before the upgrade cannot be known),
/// so that later ones are detected. A query that no longer compiles is left as it is
/// (logged) and tried again at the next start-up.
pub(crate) async fn backfill_views(pool: &PgPool) -> Result<()> {
    const STEP: &str = "recording the views the queries read";
    let mut conn = crate::pin::begin(pool).await.step(None, STEP)?;
    let rows: Vec<(i64, String, String, String, String, String)> = sqlx::query_as(
        "SELECT s.id, s.schema_name, s.table_name, s.query, s.mode, s.schedule
           FROM pgstream.pgs_stream_tables s
          WHERE NOT s.views_recorded",
    )
    .fetch_all(&mut *conn)
    .await
    .step(None, "reading the stream table catalog")?;
    if rows.is_empty() {
        return Ok(());
    }
    let catalog = load_catalog(&mut conn).await?;
    for (id, schema, table, query, mode, schedule) in rows {
        let Some((name, spec)) = stored_spec(schema, table, query, &mode, &schedule) else {
            continue;
        };
        match compile(&spec, &catalog) {
            Ok(compiled) => {
                // In a savepoint of its own: store_views pins settings for it.
                let mut tx = conn.begin().await.step(Some(&name), STEP)?;
                store_views(&mut tx, id, &compiled, &catalog, &name).await?;
                tx.commit().await.step(Some(&name), STEP)?;
            }
            Err(e) => {
                tracing::warn!(stream_table = %name, error = %e.render(&spec.query),
                    "cannot record the views the query reads: the query does not compile");
            }
        }
    }
    conn.commit().await.step(None, STEP)?;
    Ok(())
}

/// The display name and spec of a stream table from its catalog row (`None` when the
/// stored mode or schedule no longer parses).
fn stored_spec(
    schema: String,
    table: String,
    query: String,
    mode: &str,
    schedule: &str,
) -> Option<(String, StreamTableSpec)> {
    let name = QualifiedName::new(schema, table);
    let spec = StreamTableSpec {
        name: name.clone(),
        query,
        schedule: schedule.parse().ok()?,
        mode: mode.parse().ok()?,
    };
    Some((display_name(&name), spec))
}

/// Stream tables created before catalog version 2 have no recorded source columns:
/// compile each one's stored query against the live schema and record them, so that
/// drift is detected from now on. A query that no longer compiles is left as it is
/// (logged); its next refresh reports the failure.
pub(crate) async fn backfill_source_columns(pool: &PgPool) -> Result<()> {
    let mut conn = crate::pin::begin(pool)
        .await
        .step(None, "recording the source columns")?;
    let rows: Vec<(i64, String, String, String, String, String)> = sqlx::query_as(
        "SELECT s.id, s.schema_name, s.table_name, s.query, s.mode, s.schedule
           FROM pgstream.pgs_stream_tables s
          WHERE s.source_columns = '[]'::jsonb
            AND EXISTS (SELECT 1 FROM pgstream.pgs_frontiers f WHERE f.st_id = s.id)",
    )
    .fetch_all(&mut *conn)
    .await
    .step(None, "reading the stream table catalog")?;
    if rows.is_empty() {
        return Ok(());
    }
    let catalog = load_catalog(&mut conn).await?;
    for (id, schema, table, query, mode, schedule) in rows {
        let Some((name, spec)) = stored_spec(schema, table, query, &mode, &schedule) else {
            continue;
        };
        let compiled = match compile(&spec, &catalog) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(stream_table = %name, error = %e.render(&spec.query),
                    "cannot record the source columns: the query does not compile");
                continue;
            }
        };
        let oids: Vec<u32> = compiled
            .sources
            .iter()
            .map(|t| t.oid.unwrap_or(0))
            .collect();
        let used = used_columns(&spec, &catalog, &compiled);
        store_source_columns(&mut conn, id, &compiled, &oids, &used, &name).await?;
    }
    conn.commit()
        .await
        .step(None, "recording the source columns")?;
    Ok(())
}

/// The `(source table, column)` pairs the defining query uses. Maintained
/// incrementally: the buffer columns of each source (the columns the query reads and
/// the primary key). Otherwise the query may be bound only partly by the compiler: a
/// column is used when the query no longer compiles, or compiles to other output
/// columns, once that column is removed from the catalog, or when its name occurs in
/// the query (with the views it reads expanded) as a word (conservative: a false
/// positive only makes drift checks stricter).
fn used_columns(
    spec: &StreamTableSpec,
    catalog: &Catalog,
    compiled: &Compiled,
) -> Vec<(QualifiedName, String)> {
    // the words of the views' bodies too
    if compiled.strategy == Strategy::Incremental {
        // The delta statements read exactly the buffer columns (what the query uses,
        // and the primary key the window consolidates on): no need to recompile the
        // query once per column to find them (TPC-H Q1: 16 compilations).
        return compiled
            .sources
            .iter()
            .enumerate()
            .flat_map(|(i, source)| {
                compiled
                    .buffer_columns(i)
                    .into_iter()
                    .map(move |c| (source.name.clone(), c))
            })
            .collect();
    }
    let words = query_words(&compiled.expanded_query);
    let mut used = Vec::new();
    for source in &compiled.sources {
        for col in &source.columns {
            let mut probe = catalog.clone();
            let mut t = source.clone();
            t.columns.retain(|c| c.name != col.name);
            t.primary_key.retain(|k| *k != col.name);
            probe.add_table(t);
            let uses = match compile(spec, &probe) {
                Err(_) => true,
                Ok(c) => c.columns != compiled.columns,
            } || words.contains(&col.name)
                || words.contains(&col.name.to_lowercase());
            if uses {
                used.push((source.name.clone(), col.name.clone()));
            }
        }
    }
    used
}

/// Identifier-like words of a query, lower-cased, plus quoted identifiers verbatim.
fn query_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = query
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut rest = query;
    while let Some(i) = rest.find('"') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('"') else { break };
        words.push(after[..j].to_string());
        rest = &after[j + 1..];
    }
    words
}

/// Refuse a creation that would close a cycle of stream tables: walking upstream
/// from the new stream table's sources (a source is a stream table when it is another
/// stream table's storage table) must not come back to the new storage table's name.
async fn check_cycle(
    conn: &mut PgConnection,
    spec: &StreamTableSpec,
    name: &str,
    sources: &[u32],
) -> Result<()> {
    // Edges: (stream table's storage oid, its name, source oid), of the stream tables
    // upstream of the new one's sources only (creating stream table 10,000 does not
    // read the 9,999 others). The catalog's `name` columns cast to text have the
    // collation "C": compared in it, the names cannot use the unique index on
    // (schema_name, table_name) of the default collation, and each step scanned every
    // stream table (9 ms per creation at 6,000); `COLLATE "default"` looks them up.
    let start: Vec<i64> = sources.iter().map(|&o| i64::from(o)).collect();
    let edges: Vec<(Option<i64>, String, i64)> = sqlx::query_as(
        "WITH RECURSIVE up (oid) AS (
             SELECT unnest($1::int8[])
             UNION
             SELECT f.source_oid::int8
               FROM up
               JOIN pg_catalog.pg_class c ON c.oid = up.oid::oid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pgstream.pgs_stream_tables s
                 ON s.schema_name = n.nspname::text COLLATE \"default\"
                AND s.table_name = c.relname::text COLLATE \"default\"
               JOIN pgstream.pgs_frontiers f ON f.st_id = s.id)
         SELECT c.oid::int8, pgstream._display_name(s.schema_name, s.table_name), f.source_oid::int8
           FROM up
           JOIN pg_catalog.pg_class c ON c.oid = up.oid::oid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           JOIN pgstream.pgs_stream_tables s
             ON s.schema_name = n.nspname::text COLLATE \"default\"
                AND s.table_name = c.relname::text COLLATE \"default\"
           JOIN pgstream.pgs_frontiers f ON f.st_id = s.id",
    )
    .bind(&start)
    .fetch_all(&mut *conn)
    .await
    .step(Some(name), "checking for cycles")?;
    let target = quote_qualified(&spec.name);
    let own: Option<i64> = sqlx::query_scalar("SELECT to_regclass($1)::oid::int8")
        .bind(&target)
        .fetch_one(&mut *conn)
        .await
        .step(Some(name), "checking for cycles")?;
    let graph: Vec<(i64, String, i64)> = edges
        .into_iter()
        .filter_map(|(st, n, src)| Some((st?, n, src)))
        .collect();
    if let Some(path) = find_cycle(&graph, own, name, &start, name) {
        return Err(Error::Invalid(format!(
            "stream table {name}: creating it would make a cycle of stream tables: {}",
            path.join(" -> ")
        )));
    }
    Ok(())
}

/// Depth-first search upstream from `start` (source oids). `graph` holds
/// `(storage oid, stream table name, source oid)`. Returns the names on a path that
/// reaches `own` (the new storage table's oid, if the name exists) or a stream table
/// named like the new one, starting and ending with `name`.
pub(crate) fn find_cycle(
    graph: &[(i64, String, i64)],
    own: Option<i64>,
    own_name: &str,
    start: &[i64],
    name: &str,
) -> Option<Vec<String>> {
    fn walk(
        graph: &[(i64, String, i64)],
        own: Option<i64>,
        own_name: &str,
        node: i64,
        path: &mut Vec<String>,
        seen: &mut Vec<i64>,
    ) -> bool {
        if Some(node) == own {
            return true;
        }
        if seen.contains(&node) {
            return false;
        }
        seen.push(node);
        // `node` is a stream table's storage table: continue with its sources.
        let Some((_, n, _)) = graph.iter().find(|(st, _, _)| *st == node) else {
            return false;
        };
        if n == own_name {
            return true;
        }
        path.push(n.clone());
        for (_, _, src) in graph.iter().filter(|(st, _, _)| *st == node) {
            if walk(graph, own, own_name, *src, path, seen) {
                return true;
            }
        }
        path.pop();
        false
    }
    let mut seen = Vec::new();
    for &s in start {
        let mut path = vec![name.to_string()];
        if walk(graph, own, own_name, s, &mut path, &mut seen) {
            path.push(name.to_string());
            return Some(path);
        }
    }
    None
}

/// In DIFFERENTIAL mode, a function marked VOLATILE (a user function, or a built-in the
/// compiler does not list) would be re-evaluated inconsistently by delta queries: only
/// the database knows volatility, so it is checked here, before anything is installed.
/// Unqualified names resolve in `pg_catalog`: creation and refreshes pin `search_path`.
async fn reject_volatile_functions(
    conn: &mut PgConnection,
    spec: &StreamTableSpec,
    name: &str,
    compiled: &pgstream_core::Compiled,
) -> Result<()> {
    if !spec.mode.is_incremental() || compiled.functions.is_empty() {
        return Ok(());
    }
    let schemas: Vec<String> = compiled
        .functions
        .iter()
        .map(|(s, _)| s.clone().unwrap_or_else(|| "pg_catalog".to_string()))
        .collect();
    let names: Vec<String> = compiled.functions.iter().map(|(_, n)| n.clone()).collect();
    let volatile: Option<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, p.proname)
           FROM unnest($1::text[], $2::text[]) AS f(schema_name, function_name)
           JOIN pg_catalog.pg_namespace n ON n.nspname = f.schema_name
           JOIN pg_catalog.pg_proc p ON p.pronamespace = n.oid AND p.proname = f.function_name
          WHERE p.provolatile = 'v' AND p.prokind = 'f'
          LIMIT 1",
    )
    .bind(&schemas)
    .bind(&names)
    .fetch_optional(&mut *conn)
    .await
    .step(
        Some(name),
        "checking the volatility of the query's functions",
    )?;
    if let Some(f) = volatile {
        let err = pgstream_core::Error::Unsupported(
            pgstream_core::Diagnostic::new(format!(
                "`{f}` is marked VOLATILE (its value can change between evaluations), so {} mode cannot maintain it",
                spec.mode
            ))
            .with_help("use FULL mode (mode = \"full\"), or mark the function IMMUTABLE or STABLE if it is"),
        );
        return Err(Error::Compile {
            name: name.to_string(),
            rendered: err.render(&spec.query),
            source: Box::new(err),
        });
    }
    Ok(())
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

/// Records `spec`'s schedule for stream table `id` when it differs from `stored`.
pub(crate) async fn update_schedule(
    conn: &mut PgConnection,
    id: i64,
    stored: &str,
    spec: &StreamTableSpec,
    subject: Option<&str>,
) -> Result<()> {
    let schedule = spec.schedule.to_string();
    if stored == schedule {
        return Ok(());
    }
    sqlx::query(
        "UPDATE pgstream.pgs_stream_tables
            SET schedule = $2, schedule_interval = $3::float8 * interval '1 millisecond',
                schedule_kind = $4
          WHERE id = $1",
    )
    .bind(id)
    .bind(&schedule)
    .bind(spec.schedule.nominal_interval().as_secs_f64() * 1000.0)
    .bind(schedule_kind(&spec.schedule))
    .execute(&mut *conn)
    .await
    .step(subject, "updating the schedule")?;
    Ok(())
}

/// How the catalog spells the kind of a schedule (`pgs_stream_tables.schedule_kind`,
/// schema_v9.sql), written with every schedule: the scheduler reads it.
pub(crate) fn schedule_kind(schedule: &Schedule) -> &'static str {
    if schedule.is_cron() {
        "cron"
    } else if schedule.is_on_commit() {
        "on commit"
    } else if schedule.is_inherit() {
        "inherit"
    } else {
        "duration"
    }
}

#[cfg(test)]
mod tests {
    use super::{find_cycle, query_words};

    #[test]
    fn cycles_are_found_with_their_names() {
        // a (oid 10) reads t (1); b (11) reads a; c (12) reads b.
        let g = vec![
            (10, "a".to_string(), 1),
            (11, "b".to_string(), 10),
            (12, "c".to_string(), 11),
        ];
        // A new stream table "a2" reading c: no cycle.
        assert_eq!(find_cycle(&g, None, "a2", &[12], "a2"), None);
        // Re-creating "a" (storage oid 10 exists) to read c closes a -> c -> b -> a.
        assert_eq!(
            find_cycle(&g, Some(10), "a", &[12], "a").unwrap(),
            vec!["a", "c", "b", "a"]
        );
    }

    #[test]
    fn words() {
        let w = query_words("SELECT \"Mixed Case\", sum(x) FROM t WHERE y_1 > 0");
        assert!(w.contains(&"x".to_string()) && w.contains(&"y_1".to_string()));
        assert!(w.contains(&"Mixed Case".to_string()));
    }
}
