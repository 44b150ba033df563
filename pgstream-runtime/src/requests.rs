//! Requests from SQL: `pgstream.create_stream_table` and `pgstream.alter_stream_table`
//! record a row in `pgstream.pgs_requests` and notify the channel
//! [`CHANNEL`] at commit. A running runtime carries each pending request out here,
//! exactly as the command line would, and records the outcome in the same row
//! (`created`, `altered` or `failed` with the full message), which
//! `pgstream.wait_for_stream_table` waits for.
//!
//! - **One runtime per request.** The request row is locked `FOR UPDATE SKIP LOCKED`
//!   for the whole transaction, so racing runtimes take different requests; creations
//!   of one name are serialised by the creation lock (see `create/mod.rs`), so two requests
//!   for one name give one stream table and, for the second, either nothing to do (the
//!   same definition) or a clear error.
//! - **All or nothing.** The work runs in a savepoint of the transaction that records
//!   the outcome: a failure rolls the work back and records `failed`; a lost
//!   connection leaves the request pending for the next pass.
//! - **The requesting role's privileges, not the runtime's.** A role may request a
//!   stream table only over sources it may read (`SELECT` on every table and view the
//!   query reads, no row-level security it is subject to) in a schema where it may
//!   create tables; it is granted `SELECT` on the stream table and recorded as its
//!   requester, which may alter it. The storage table stays owned by the runtime's role:
//!   an owner could attach triggers, rules or index expressions that every refresh,
//!   run by the runtime's (often superuser) role, would execute (docs/SECURITY.md).

use crate::catalog::{compile_live, display_name, stored_definition, StoredDefinition};
use crate::create::create_in;
use crate::error::{Error, Result, Step};
use crate::refresh::is_transient;
use pgstream_core::{quote_qualified, Mode, QualifiedName, StreamTableSpec};
use sqlx::{Connection, PgConnection, PgPool};

/// The channel `pgstream.create_stream_table` and `alter_stream_table` notify.
pub const CHANNEL: &str = "pgstream_requests";

#[derive(Debug, sqlx::FromRow)]
struct Request {
    id: i64,
    kind: String,
    name: String,
    query: Option<String>,
    schedule: Option<String>,
    refresh_mode: Option<String>,
    requested_by: String,
    /// The requesting session's result-changing settings (`pgstream._result_settings`),
    /// as jsonb text: the stream table is created, and records, with them.
    settings: Option<String>,
}

/// Carry out every pending request from SQL, oldest first; returns how many this
/// call processed (created, altered or failed). Requests another runtime is working
/// on are skipped. Errors only when the database cannot be used (the request then
/// stays pending); a request that cannot be carried out is recorded as `failed`.
pub async fn process_requests(pool: &PgPool) -> Result<usize> {
    let mut done = 0;
    while process_one(pool).await? {
        done += 1;
    }
    Ok(done)
}

/// Take one pending request, carry it out and record the outcome. `false` when none
/// is pending (or all are taken by other runtimes).
async fn process_one(pool: &PgPool) -> Result<bool> {
    const STEP: &str = "processing a request from SQL";
    let mut tx = pool.begin().await.step(None, STEP)?;
    crate::pin::script(
        &mut tx,
        "SET LOCAL search_path TO pg_catalog, pg_temp; SET LOCAL jit = off",
    )
    .await
    .step(None, STEP)?;
    let request: Option<Request> = sqlx::query_as(
        "SELECT q.id, q.kind, q.name, q.query, q.schedule, q.refresh_mode, q.requested_by::text AS requested_by,
                q.settings::text AS settings
           FROM pgstream.pgs_requests q
          WHERE q.state = 'pending'
          ORDER BY q.id
          LIMIT 1
          FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *tx)
    .await
    .step(None, STEP)?;
    let Some(request) = request else {
        return Ok(false);
    };
    let outcome = {
        let mut work = Connection::begin(&mut *tx).await.step(None, STEP)?;
        match carry_out(&mut work, &request).await {
            Ok(state) => work.commit().await.step(None, STEP).map(|()| state),
            Err(e) => {
                work.rollback().await.step(None, STEP)?;
                Err(e)
            }
        }
    };
    let (state, message, hint) = match outcome {
        Ok(state) => {
            tracing::info!(stream_table = %request.name, request = request.id, state, "request from SQL carried out");
            (state, None, None)
        }
        Err(e) if is_transient(&e) => return Err(e),
        Err(e) => {
            tracing::warn!(stream_table = %request.name, request = request.id, error = %e, "request from SQL failed");
            let hint = hint_of(&e);
            ("failed", Some(e.to_string()), hint)
        }
    };
    sqlx::query(
        "UPDATE pgstream.pgs_requests
            SET state = $2, message = $3, hint = $4, processed_at = now(),
                processed_by = pg_catalog.format('%s (pid %s)',
                    coalesce(nullif(pg_catalog.current_setting('application_name'), ''), 'pgstream'),
                    pg_catalog.pg_backend_pid())
          WHERE id = $1",
    )
    .bind(request.id)
    .bind(state)
    .bind(message)
    .bind(hint)
    .execute(&mut *tx)
    .await
    .step(None, STEP)?;
    tx.commit().await.step(None, STEP)?;
    Ok(true)
}

/// The hint to show beside a failure's message, when it has one of its own.
fn hint_of(e: &Error) -> Option<String> {
    match e {
        Error::Compile { source, .. } => source.diagnostic().and_then(|d| d.help.clone()),
        Error::AlreadyExists(name) => Some(format!(
            "Drop it first (SELECT pgstream.drop_stream_table('{name}')), or change it with pgstream.alter_stream_table."
        )),
        _ => None,
    }
}

/// Carry out one request in `conn` (a savepoint); the state to record.
async fn carry_out(conn: &mut PgConnection, r: &Request) -> Result<&'static str> {
    // Compute (and record) with the requester's settings, not the runtime's.
    sqlx::query("SELECT pgstream._pin_settings($1::jsonb)")
        .bind(r.settings.as_deref())
        .execute(&mut *conn)
        .await
        .step(Some(&r.name), "setting the requester's settings")?;
    match r.kind.as_str() {
        "create" => {
            let spec = crate::runtime::spec(
                &r.name,
                r.query.as_deref().unwrap_or_default(),
                r.schedule.as_deref().unwrap_or("1m"),
                mode_of(r.refresh_mode.as_deref().unwrap_or("DIFFERENTIAL"))?,
            )?;
            create(conn, &spec, &r.requested_by).await?;
            Ok("created")
        }
        "alter" => {
            alter(conn, r).await?;
            Ok("altered")
        }
        "replace" => {
            replace(conn, r).await?;
            Ok("replaced")
        }
        other => Err(Error::Invalid(format!("unknown request kind `{other}`"))),
    }
}

fn mode_of(text: &str) -> Result<Mode> {
    text.parse().map_err(Error::Invalid)
}

/// Create a stream table for `requester`, after checking its privileges. A stream
/// table of that name with the same definition already there (a second request for
/// it) is no error.
async fn create(conn: &mut PgConnection, spec: &StreamTableSpec, requester: &str) -> Result<()> {
    let name = display_name(&spec.name);
    // The creation lock first (create_in takes it again): a runtime carrying out
    // another request for this name commits before the check below.
    sqlx::query("SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2))")
        .bind(crate::install::CREATE_LOCK_CLASS)
        .bind(spec.name.to_string())
        .execute(&mut *conn)
        .await
        .step(Some(&name), "locking the name")?;
    if let Some(existing) = stored_definition(conn, &spec.name).await? {
        if existing.query == spec.query && existing.mode == spec.mode.as_str() {
            return Ok(());
        }
        return Err(Error::AlreadyExists(name));
    }
    check_privileges(conn, spec, requester).await?;
    create_in(conn, spec, &name, None).await?;
    record_requester(conn, &spec.name, requester, Some(&name)).await?;
    grant_select(conn, &spec.name, requester).await
}

/// Record `requester` as the role that requested stream table `name`
/// (`pgs_stream_tables.requested_by`: it may alter, replace and drop it).
pub(crate) async fn record_requester(
    conn: &mut PgConnection,
    name: &QualifiedName,
    requester: &str,
    subject: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE pgstream.pgs_stream_tables SET requested_by = $3
          WHERE schema_name = $1 AND table_name = $2",
    )
    .bind(&name.schema)
    .bind(&name.name)
    .bind(requester)
    .execute(&mut *conn)
    .await
    .step(subject, "recording the requesting role")?;
    Ok(())
}

/// `GRANT SELECT` on the storage table to the requesting role, unless it is the
/// runtime's own.
async fn grant_select(
    conn: &mut PgConnection,
    name: &QualifiedName,
    requester: &str,
) -> Result<()> {
    const STEP: &str = "granting SELECT to the requesting role";
    let subject = display_name(name);
    let subject = Some(subject.as_str());
    let same: bool = sqlx::query_scalar("SELECT $1 = current_user::text")
        .bind(requester)
        .fetch_one(&mut *conn)
        .await
        .step(subject, STEP)?;
    if same {
        return Ok(());
    }
    crate::pin::script(
        &mut *conn,
        &format!(
            "GRANT SELECT ON {} TO {}",
            quote_qualified(name),
            pgstream_core::quote_ident(requester)
        ),
    )
    .await
    .step(subject, STEP)?;
    Ok(())
}

/// The requesting role must be able to read every table and view the query reads
/// (the runtime reads the tables a view's body reads directly, so it asks for both),
/// must not be subject to row-level security on any of them (the stream table would
/// hold every row), and must be able to create tables in the target schema.
async fn check_privileges(
    conn: &mut PgConnection,
    spec: &StreamTableSpec,
    requester: &str,
) -> Result<()> {
    let name = display_name(&spec.name);
    // Only the relations the query can read: creation number 10,000 does not load the
    // other 9,999 stream tables' storage.
    let (_, compiled) = compile_live(conn, spec).await?;
    let compiled = compiled.map_err(|e| Error::compile(&name, &spec.query, e))?;
    // Every refresh runs the query as the runtime's role (often a superuser): a
    // function or operator outside pg_catalog that the requesting role wrote would run
    // with those privileges. Only a superuser (or the runtime's own role) may ask for one.
    let trusted: bool = sqlx::query_scalar(
        "SELECT $1 = current_user::text
             OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles q WHERE q.rolname = $1 AND q.rolsuper)",
    )
    .bind(requester)
    .fetch_one(&mut *conn)
    .await
    .step(Some(&name), "checking the requesting role's privileges")?;
    if !trusted {
        let foreign = compiled
            .functions
            .iter()
            .find(|(schema, _)| schema.as_deref().is_some_and(|s| s != "pg_catalog"))
            .map(|(s, n)| format!("function {}.{n}", s.as_deref().unwrap_or_default()))
            .or_else(|| {
                spec.query
                    .to_ascii_uppercase()
                    .contains("OPERATOR(")
                    .then(|| "an operator named with OPERATOR(...)".to_string())
            });
        if let Some(what) = foreign {
            return Err(Error::Invalid(format!(
                "stream table {name}: the query calls {what}, outside pg_catalog; every refresh \
                 would run it as the runtime's role on behalf of role {requester}, so only a \
                 superuser may request it (or create it with `pgstream create`)"
            )));
        }
    }
    let relations: Vec<String> = compiled
        .sources
        .iter()
        .map(|t| quote_qualified(&t.name))
        .chain(compiled.views.iter().map(quote_qualified))
        .collect();
    let denied: Vec<(String, bool)> = sqlx::query_as(
        "SELECT r.rel::regclass::text,
                NOT pg_catalog.has_table_privilege($1::name, r.rel::regclass, 'SELECT')
           FROM pg_catalog.unnest($2::text[]) AS r(rel)
          WHERE NOT pg_catalog.has_table_privilege($1::name, r.rel::regclass, 'SELECT')
             OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles o ON o.oid = c.relowner
                         WHERE c.oid = r.rel::regclass AND c.relrowsecurity
                           AND NOT pg_catalog.pg_has_role($1::name, o.oid, 'USAGE')
                           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles q
                                            WHERE q.rolname = $1 AND (q.rolsuper OR q.rolbypassrls)))",
    )
    .bind(requester)
    .bind(&relations)
    .fetch_all(&mut *conn)
    .await
    .step(Some(&name), "checking the requesting role's privileges")?;
    if let Some((rel, no_select)) = denied.first() {
        return Err(Error::Invalid(if *no_select {
            format!(
                "stream table {name}: role {requester} may not read {rel} (SELECT privilege), \
                 which the query reads"
            )
        } else {
            format!(
                "stream table {name}: {rel} has row-level security, and role {requester} would \
                 see every row through the stream table"
            )
        }));
    }
    let may_create: bool = sqlx::query_scalar(
        "SELECT pg_catalog.has_schema_privilege($1::name, n.oid, 'CREATE')
           FROM pg_catalog.pg_namespace n WHERE n.nspname = $2",
    )
    .bind(requester)
    .bind(&spec.name.schema)
    .fetch_optional(&mut *conn)
    .await
    .step(Some(&name), "checking the requesting role's privileges")?
    .ok_or_else(|| {
        Error::Invalid(format!(
            "stream table {name}: schema {} does not exist",
            spec.name.schema
        ))
    })?;
    if !may_create {
        return Err(Error::Invalid(format!(
            "stream table {name}: role {requester} may not create tables in schema {}",
            spec.name.schema
        )));
    }
    Ok(())
}

/// What an `alter` or `replace` request (`what`) changes: the stream table's display
/// name, its stored definition, and the schedule and mode it asks for (the stored
/// ones where it gives none), once the requesting role is found allowed to change it
/// (see [`check_may_change`]).
async fn requested_change(
    conn: &mut PgConnection,
    r: &Request,
    what: &str,
) -> Result<(String, StoredDefinition, String, Mode)> {
    let qname = QualifiedName::parse(&r.name).map_err(Error::Invalid)?;
    let name = display_name(&qname);
    let Some(stored) = stored_definition(conn, &qname).await? else {
        return Err(Error::NotFound(name));
    };
    check_may_change(conn, stored.id, &r.requested_by, &name, what).await?;
    let schedule = r.schedule.clone().unwrap_or(stored.schedule.clone());
    let mode = mode_of(r.refresh_mode.as_deref().unwrap_or(&stored.mode))?;
    Ok((name, stored, schedule, mode))
}

/// Change a stream table's schedule and/or mode. Only the role that requested it, a
/// member of the storage table's owner, or a superuser may. A change between
/// DIFFERENTIAL and IMMEDIATE is made in place (see [`crate::immediate::switch_mode`]);
/// another mode change rebuilds the stream table (drop and create with the new mode,
/// in this transaction: readers see the old table or the new one, never an empty one).
async fn alter(conn: &mut PgConnection, r: &Request) -> Result<()> {
    let (name, stored, schedule, mode) = requested_change(conn, r, "alter").await?;
    // Validates the schedule (and the mode) before anything changes.
    let spec = crate::runtime::spec(&r.name, &stored.query, &schedule, mode)?;
    if crate::immediate::switches_in_place(&stored.mode, mode) {
        // DIFFERENTIAL <-> IMMEDIATE: the same statements; no rebuild.
        crate::immediate::switch_mode(conn, stored.id, &name, mode).await?;
        crate::schedule::update_schedule(conn, stored.id, &stored.schedule, &spec, Some(&name))
            .await?;
    } else if mode.as_str() != stored.mode {
        let requested_by: Option<String> = sqlx::query_scalar(
            "SELECT requested_by::text FROM pgstream.pgs_stream_tables WHERE id = $1",
        )
        .bind(stored.id)
        .fetch_one(&mut *conn)
        .await
        .step(Some(&name), "reading the stream table catalog")?;
        sqlx::query("SELECT pgstream.drop_stream_table($1)")
            .bind(&name)
            .execute(&mut *conn)
            .await
            .step(Some(&name), "dropping the stream table to change its mode")?;
        create_in(conn, &spec, &name, None).await?;
        if let Some(requester) = requested_by {
            record_requester(conn, &spec.name, &requester, Some(&name)).await?;
            grant_select(conn, &spec.name, &requester).await?;
        }
    } else {
        crate::schedule::update_schedule(conn, stored.id, &stored.schedule, &spec, Some(&name))
            .await?;
    }
    Ok(())
}

/// Only the role that requested a stream table, a member of its storage table's
/// owner, or a superuser may alter or replace it.
async fn check_may_change(
    conn: &mut PgConnection,
    id: i64,
    requester: &str,
    name: &str,
    what: &str,
) -> Result<()> {
    let allowed: bool = sqlx::query_scalar(
        "SELECT s.requested_by = $2::name
             OR pg_catalog.pg_has_role($2::name, c.relowner, 'USAGE')
             OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles q WHERE q.rolname = $2 AND q.rolsuper)
           FROM pgstream.pgs_stream_tables s
           LEFT JOIN pg_catalog.pg_class c
             ON c.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', s.schema_name, s.table_name))
          WHERE s.id = $1",
    )
    .bind(id)
    .bind(requester)
    .fetch_one(&mut *conn)
    .await
    .step(Some(name), "checking the requesting role's privileges")?;
    if !allowed {
        return Err(Error::Invalid(format!(
            "stream table {name}: role {requester} may not {what} it (only the role that \
             requested it, its owner or a superuser may)"
        )));
    }
    Ok(())
}

/// Replace a stream table's query (and, when given, schedule and mode) for the
/// requesting role: it must be allowed to change the stream table and to read the
/// new query's sources (see [`crate::replace_stream_table`]).
async fn replace(conn: &mut PgConnection, r: &Request) -> Result<()> {
    let (name, _, schedule, mode) = requested_change(conn, r, "replace").await?;
    let spec = crate::runtime::spec(
        &r.name,
        r.query.as_deref().unwrap_or_default(),
        &schedule,
        mode,
    )?;
    check_privileges(conn, &spec, &r.requested_by).await?;
    crate::replace::replace_in(conn, &spec, &name, None, true).await?;
    Ok(())
}

/// Listen for requests until `cancel` fires: carry out the pending ones at once, then
/// at every notification, and every `poll` in case a notification was missed (the
/// listening connection was lost). The listening connection holds the shared
/// advisory lock by which `pgstream._runtime_running()` knows a runtime is there.
pub(crate) async fn listen(
    pool: PgPool,
    poll: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut listener: Option<sqlx::postgres::PgListener> = None;
    loop {
        if listener.is_none() {
            listener = connect_listener(&pool).await;
        }
        if let Err(e) = process_off_task(&pool).await {
            tracing::warn!(error = %e, "pgstream: cannot process requests from SQL");
        }
        enum Woken {
            Stop,
            Notified,
            Lost,
            Poll,
        }
        let woken = {
            let wait = async {
                match listener.as_mut() {
                    // `Ok(None)`: the connection was lost; it is opened again (and the
                    // lock taken again) next time round.
                    Some(l) => match l.try_recv().await {
                        Ok(Some(_)) => Woken::Notified,
                        _ => Woken::Lost,
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Woken::Stop,
                w = wait => w,
                _ = tokio::time::sleep(poll) => Woken::Poll,
            }
        };
        match woken {
            Woken::Stop => break,
            Woken::Lost => listener = None,
            Woken::Notified | Woken::Poll => {}
        }
    }
}

/// [`process_requests`] on a blocking thread: the creation's future is too deep for
/// the compiler to prove it `Send` for every lifetime (rustc's higher-ranked auto
/// trait limits), which a task spawned on the runtime would need; `block_on` on a
/// blocking thread needs no `Send`.
async fn process_off_task(pool: &PgPool) -> Result<usize> {
    let pool = pool.clone();
    let handle = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || handle.block_on(process_requests(&pool))).await {
        Ok(r) => r,
        Err(e) => Err(Error::Invalid(format!(
            "pgstream: processing requests from SQL panicked: {e}"
        ))),
    }
}

async fn connect_listener(pool: &PgPool) -> Option<sqlx::postgres::PgListener> {
    let mut l =
        match sqlx::postgres::PgListener::connect_with(&crate::pin::listener_pool(pool)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "pgstream: cannot open the request listener");
                return None;
            }
        };
    let locked = sqlx::query("SELECT pg_catalog.pg_advisory_lock_shared($1, 0)")
        .bind(crate::install::RUNTIME_LOCK_CLASS)
        .execute(&mut l)
        .await;
    if let Err(e) = locked {
        tracing::debug!(error = %e, "pgstream: cannot announce the runtime");
        return None;
    }
    if let Err(e) = l.listen(CHANNEL).await {
        tracing::debug!(error = %e, "pgstream: cannot listen for requests");
        return None;
    }
    Some(l)
}
