//! Replacing a stream table's definition (issue 16): [`replace_stream_table`], the
//! builder's [`replace_changed`](crate::RuntimeBuilder::replace_changed), `pgstream
//! replace` and `pgstream.replace_stream_table` all end in [`replace_in`].
//!
//! **One transaction.** The new stream table is built beside the old one, under a
//! name of its own (`pgs_replacing_<old id>`): compiled against the live schema,
//! capture installed, storage created and populated; readers of the old storage table
//! are not blocked meanwhile. Then, in the same transaction, the old stream table is
//! dropped, the new storage table renamed to the name, and the stored statements
//! (which name the storage table) rendered again for it. Readers that come after the
//! drop's lock wait for the commit (a rename and a few catalog updates), then read the
//! new table, complete: a reader never sees an empty or half-built table (PostgreSQL
//! looks a table's name up again after waiting for its lock). Any failure rolls
//! everything back and the old stream table stays as it was.
//!
//! **What is kept.** The name, the role that requested it from SQL
//! (`requested_by`), and the grants on the old storage table, table-level and per
//! column, which are given again on the new one by the runtime's role
//! ([`crate::grants`]; a column grant on a column the new query lacks is dropped with
//! a WARN).
//!
//! **Rolling deploys.** The old definition is recorded in `pgstream.pgs_superseded`.
//! A runtime that registers a definition recorded there (an older application
//! version still running, or started again, after a newer one replaced the stream
//! table) leaves the stream table alone and logs a WARN: it never replaces the new
//! definition back. Only an explicit replace (`pgstream replace`,
//! [`replace_stream_table`], `pgstream.replace_stream_table`) may go back to an
//! earlier definition, which removes it from the list. Dropping a stream table
//! forgets its history.

use crate::catalog::{compile_live, display_name, stored_definition};
use crate::error::{Error, Result, Step};
use pgstream_core::contract;
use pgstream_core::{
    quote_ident, quote_qualified, QualifiedName, RenderContext, SourceBinding, StreamTableSpec,
};
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection, PgPool};

/// What [`replace_in`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The definition differed: the stream table was rebuilt with the new one (or,
    /// for a switch between DIFFERENTIAL and IMMEDIATE of the same query, switched in
    /// place).
    Rebuilt,
    /// The stream table already had this query and mode (a changed schedule was
    /// updated).
    Unchanged,
    /// Not explicit, and the definition is one the stream table had before it was
    /// replaced: left alone.
    Superseded,
}

/// Replace the query (and mode and schedule) of an existing stream table with
/// `spec`'s: the new storage table is built and populated, and swapped for the old
/// one, in one transaction (readers see the old rows or the new ones, never an empty
/// table). The grants on the old storage table (table-level and per column) are given
/// on the new one; a column grant on a column the new query lacks is dropped with a
/// WARN.
///
/// Returns `true` when the stream table was rebuilt, `false` when it already had this
/// query and mode (only a changed schedule is updated). [`Error::NotFound`] when no
/// stream table has that name; stream tables that read this one must be dropped first
/// ([`Error::HasReaders`] names them). Nothing changes on error.
pub async fn replace_stream_table(pool: &PgPool, spec: &StreamTableSpec) -> Result<bool> {
    Ok(replace_checked(pool, spec, None, true).await? == Outcome::Rebuilt)
}

/// [`replace_stream_table`] in its own transaction; `expected`: the output columns
/// compiled into the program; `explicit`: see [`replace_in`].
pub(crate) async fn replace_checked(
    pool: &PgPool,
    spec: &StreamTableSpec,
    expected: Option<&[&str]>,
    explicit: bool,
) -> Result<Outcome> {
    crate::install::install(pool).await?;
    let name = display_name(&spec.name);
    let mut tx = crate::create::begin_ddl(pool, &name, "starting the replacement").await?;
    let done = replace_in(&mut tx, spec, &name, expected, explicit).await?;
    tx.commit()
        .await
        .step(Some(&name), "committing the replacement")?;
    if done == Outcome::Rebuilt {
        tracing::info!(stream_table = %name, mode = spec.mode.as_str(), "replaced the stream table's definition");
    }
    Ok(done)
}

/// Whether `spec`'s query and mode are a definition its stream table had before a
/// replacement (see the module's documentation).
pub(crate) async fn is_superseded(conn: &mut PgConnection, spec: &StreamTableSpec) -> Result<bool> {
    const STEP: &str = "reading the replaced definitions";
    let subject = Some(display_name(&spec.name));
    let key = definition_key(&spec.name, spec.mode.as_str(), &spec.query);
    sqlx::query_scalar_with(
        "SELECT EXISTS (SELECT 1 FROM pgstream.pgs_superseded x
                         WHERE x.schema_name = $1 AND x.table_name = $2 AND x.mode = $3
                           AND x.query_md5 = pg_catalog.md5($4))",
        key.step(subject.as_deref(), STEP)?,
    )
    .fetch_one(&mut *conn)
    .await
    .step(subject.as_deref(), STEP)
}

/// `$1` to `$4` of the statements on `pgstream.pgs_superseded`: the stream table's
/// schema and name, a mode and a defining query (the key, with the query's md5).
fn definition_key(
    name: &QualifiedName,
    mode: &str,
    query: &str,
) -> std::result::Result<PgArguments, sqlx::Error> {
    let mut key = PgArguments::default();
    for value in [name.schema.as_str(), name.name.as_str(), mode, query] {
        key.add(value).map_err(sqlx::Error::Encode)?;
    }
    Ok(key)
}

/// Replace inside `conn`'s transaction (search_path pinned by the caller). Without
/// `explicit` (the builder's `replace_changed`), a superseded definition is left
/// alone ([`Outcome::Superseded`]); with it, it is reinstated.
pub(crate) async fn replace_in(
    conn: &mut PgConnection,
    spec: &StreamTableSpec,
    name: &str,
    expected: Option<&[&str]>,
    explicit: bool,
) -> Result<Outcome> {
    let subject = Some(name);
    // The creation lock: replicas replacing (or creating) this name go one at a time,
    // and the second finds the definition already in place.
    sqlx::query("SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2))")
        .bind(crate::install::CREATE_LOCK_CLASS)
        .bind(spec.name.to_string())
        .execute(&mut *conn)
        .await
        .step(subject, "locking the name")?;
    let Some(stored) = stored_definition(conn, &spec.name).await? else {
        return Err(Error::NotFound(name.to_string()));
    };
    if stored.query == spec.query && stored.mode == spec.mode.as_str() {
        crate::schedule::update_schedule(conn, stored.id, &stored.schedule, spec, subject).await?;
        return Ok(Outcome::Unchanged);
    }
    if stored.query == spec.query && crate::immediate::switches_in_place(&stored.mode, spec.mode) {
        // DIFFERENTIAL <-> IMMEDIATE: the same statements, switched without a rebuild.
        crate::immediate::switch_mode(conn, stored.id, name, spec.mode).await?;
        crate::schedule::update_schedule(conn, stored.id, &stored.schedule, spec, subject).await?;
        return Ok(Outcome::Rebuilt);
    }
    if !explicit && is_superseded(conn, spec).await? {
        return Ok(Outcome::Superseded);
    }

    let dependants: Option<String> = sqlx::query_scalar(
        "SELECT pg_catalog.string_agg(DISTINCT pgstream._display_name(d.schema_name, d.table_name), ', ')
           FROM pgstream.pgs_stream_tables d
           JOIN pgstream.pgs_frontiers f ON f.st_id = d.id
          WHERE f.source_oid = pg_catalog.to_regclass($1) AND d.id <> $2",
    )
    .bind(quote_qualified(&spec.name))
    .bind(stored.id)
    .fetch_one(&mut *conn)
    .await
    .step(subject, "looking for stream tables that read it")?;
    if let Some(readers) = dependants {
        return Err(Error::HasReaders {
            name: name.to_string(),
            readers,
        });
    }

    let requested_by: Option<String> = sqlx::query_scalar(
        "SELECT requested_by::text FROM pgstream.pgs_stream_tables WHERE id = $1",
    )
    .bind(stored.id)
    .fetch_one(&mut *conn)
    .await
    .step(subject, "reading the stream table catalog")?;
    // Table-level and column grants other than the owner's own.
    let grants = crate::grants::read(conn, &quote_qualified(&spec.name), subject).await?;

    // The new query must compile under the final name (which also refuses a query
    // reading the stream table itself) before anything is built.
    compile_live(conn, spec)
        .await?
        .1
        .map_err(|e| Error::compile(name, &spec.query, e))?;

    // 1. The new stream table beside the old one, under a name of its own, complete:
    // capture, catalog rows, storage, initial population. Readers of the old storage
    // table are not blocked meanwhile. Errors name the stream table being replaced.
    let beside = QualifiedName::new(
        spec.name.schema.clone(),
        format!("pgs_replacing_{}", stored.id),
    );
    let taken: bool = sqlx::query_scalar("SELECT pg_catalog.to_regclass($1) IS NOT NULL")
        .bind(quote_qualified(&beside))
        .fetch_one(&mut *conn)
        .await
        .step(
            subject,
            "checking the name to build the new definition under",
        )?;
    if taken {
        return Err(Error::Invalid(format!(
            "stream table {name}: the replacement is built beside it as {}, and a table of that \
             name exists: rename or drop that table",
            quote_qualified(&beside)
        )));
    }
    let beside_spec = StreamTableSpec {
        name: beside.clone(),
        ..spec.clone()
    };
    crate::create::create_in(conn, &beside_spec, name, expected).await?;
    let Some(new) = stored_definition(conn, &beside).await? else {
        return Err(Error::Invalid(format!(
            "stream table {name}: the replacement was not registered"
        )));
    };

    // 2. The swap. Dropping the old stream table takes its storage table's ACCESS
    // EXCLUSIVE lock: from here to the commit, readers wait, then read the new table.
    // The drop keeps the stream table's history (pgs_superseded) for the replacement.
    sqlx::query("SELECT pg_catalog.set_config('pgstream.replacing', 'on', true)")
        .execute(&mut *conn)
        .await
        .step(subject, "dropping the old definition")?;
    sqlx::query("SELECT pgstream.drop_stream_table($1)")
        .bind(name)
        .execute(&mut *conn)
        .await
        .step(subject, "dropping the old definition")?;
    sqlx::query("SELECT pg_catalog.set_config('pgstream.replacing', '', true)")
        .execute(&mut *conn)
        .await
        .step(subject, "dropping the old definition")?;
    crate::pin::script(
        &mut *conn,
        &format!(
            "ALTER TABLE {} RENAME TO {}",
            quote_qualified(&beside),
            quote_ident(&spec.name.name)
        ),
    )
    .await
    .step(subject, "renaming the new storage table")?;

    // 3. The stored statements name the storage table: render them again for the
    // final name (same id, same sources), and the refresh function with them.
    let (_, compiled) = compile_live(conn, spec).await?;
    let compiled = compiled.map_err(|e| Error::compile(name, &spec.query, e))?;
    let mut sources = Vec::with_capacity(compiled.sources.len());
    for source in &compiled.sources {
        sources.push(SourceBinding {
            oid: crate::create::source_oid(conn, source, name).await?,
        });
    }
    let artifacts = compiled.render(&RenderContext {
        st_id: new.id,
        sources,
    });
    sqlx::query(
        "UPDATE pgstream.pgs_stream_tables
            SET table_name = $2, full_refresh_sql = $3, differential_refresh_sql = $4
          WHERE id = $1",
    )
    .bind(new.id)
    .bind(&spec.name.name)
    .bind(&artifacts.full_refresh)
    .bind(&artifacts.differential_refresh)
    .execute(&mut *conn)
    .await
    .step(subject, "registering the new definition")?;
    if let Some(function) = &artifacts.refresh_function {
        crate::pin::script(
            &mut *conn,
            &format!(
                "DROP FUNCTION IF EXISTS {}.{}(bigint)",
                quote_ident(contract::CATALOG_SCHEMA),
                quote_ident(&contract::refresh_function(new.id))
            ),
        )
        .await
        .step(subject, "creating the refresh function")?;
        crate::create::create_refresh_function(conn, function, new.id, subject).await?;
    }

    // The old definition is superseded, the new one no longer is.
    const RECORDING: &str = "recording the replaced definition";
    let old_key = definition_key(&spec.name, &stored.mode, &stored.query);
    sqlx::query_with(
        "INSERT INTO pgstream.pgs_superseded (schema_name, table_name, mode, query_md5, query)
         VALUES ($1, $2, $3, pg_catalog.md5($4), $4)
         ON CONFLICT (schema_name, table_name, mode, query_md5) DO UPDATE SET replaced_at = now()",
        old_key.step(subject, RECORDING)?,
    )
    .execute(&mut *conn)
    .await
    .step(subject, RECORDING)?;
    let new_key = definition_key(&spec.name, spec.mode.as_str(), &spec.query);
    sqlx::query_with(
        "DELETE FROM pgstream.pgs_superseded
          WHERE schema_name = $1 AND table_name = $2 AND mode = $3 AND query_md5 = pg_catalog.md5($4)",
        new_key.step(subject, RECORDING)?,
    )
    .execute(&mut *conn)
    .await
    .step(subject, RECORDING)?;
    if let Some(requester) = &requested_by {
        crate::requests::record_requester(conn, &spec.name, requester, subject).await?;
    }
    crate::grants::apply(conn, &spec.name, &grants, subject).await?;
    Ok(Outcome::Rebuilt)
}
