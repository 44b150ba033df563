//! Installation and upgrade of the `pgstream` catalog schema and SQL functions.
//!
//! Idempotent: the schemas and `pgstream.pgs_meta` are created with `IF NOT EXISTS`
//! under a transaction-scoped advisory lock, so concurrent installers (several
//! application replicas starting at once) run one after the other; the versioned
//! part runs only when `pgs_meta.schema_version` is older than [`SCHEMA_VERSION`].
//! The SQL functions (the scripts of `sql/functions/`, [`FUNCTION_SCRIPTS`]) are
//! installed again whenever they differ from
//! the ones in the database (a release can change them without a schema change):
//! `pgstream._functions_hash()` records the hash of the installed text. Functions of
//! neighbouring releases are compatible with the same schema version, so replicas of
//! two releases can run side by side; the functions are those of the last runtime
//! that started.

use crate::error::{Error, Result, Step};
use sqlx::PgPool;

/// The version of the catalog schema this runtime installs.
pub const SCHEMA_VERSION: i32 = 10;

/// First key of every pgstream advisory lock (`'pgst'`); the second key is the
/// stream table id, or 0 for installation.
pub(crate) const LOCK_CLASS: i32 = 0x7067_7374;
/// First key of the advisory lock that serialises creations of one name.
pub(crate) const CREATE_LOCK_CLASS: i32 = LOCK_CLASS + 1;
/// First key of the shared advisory lock a running runtime holds (second key 0) on
/// the connection that listens for requests from SQL: `pgstream._runtime_running()`
/// looks for it in `pg_locks`.
pub(crate) const RUNTIME_LOCK_CLASS: i32 = LOCK_CLASS + 2;
/// First key of the advisory lock of one stream table (second key: its id mod 2^31),
/// which serialises its refreshes, drops, subscriptions and IMMEDIATE writers
/// (`pgstream._lock_stream_table`, and `_advance_unaffected` per row).
pub(crate) const STREAM_TABLE_LOCK_CLASS: i32 = LOCK_CLASS + 0x400;

/// The constants that the function scripts name `{{NAME}}`, substituted at
/// installation (written in the installed functions as numbers: their plans are
/// those of literals).
const SCRIPT_CONSTANTS: [(&str, i32); 3] = [
    ("{{LOCK_CLASS}}", LOCK_CLASS),
    ("{{RUNTIME_LOCK_CLASS}}", RUNTIME_LOCK_CLASS),
    ("{{STREAM_TABLE_LOCK_CLASS}}", STREAM_TABLE_LOCK_CLASS),
];

const BOOTSTRAP: &str = "
CREATE SCHEMA IF NOT EXISTS pgstream;
CREATE SCHEMA IF NOT EXISTS pgstream_changes;
CREATE TABLE IF NOT EXISTS pgstream.pgs_meta (schema_version integer NOT NULL);
";

/// The versioned migrations: `(version, script)`, applied in order. To change only
/// the SQL functions, bump [`SCHEMA_VERSION`] and add an empty script: the functions
/// are recreated at every upgrade and only then.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("sql/schema_v1.sql")),
    (2, include_str!("sql/schema_v2.sql")),
    (3, include_str!("sql/schema_v3.sql")),
    (4, include_str!("sql/schema_v4.sql")),
    (5, include_str!("sql/schema_v5.sql")),
    (6, include_str!("sql/schema_v6.sql")),
    (7, include_str!("sql/schema_v7.sql")),
    (8, include_str!("sql/schema_v8.sql")),
    (9, include_str!("sql/schema_v9.sql")),
    (10, include_str!("sql/schema_v10.sql")),
];

/// The SQL functions, views and catalog triggers, one script per concern, in the
/// order they are installed (a SQL-language function, a view or a trigger needs what it
/// names to exist already): `(file, script)`. Recreated at every upgrade, and whenever
/// their text differs from the installed one.
const FUNCTION_SCRIPTS: &[(&str, &str)] = &[
    ("base.sql", include_str!("sql/functions/base.sql")),
    ("refresh.sql", include_str!("sql/functions/refresh.sql")),
    (
        "member_capture.sql",
        include_str!("sql/functions/member_capture.sql"),
    ),
    (
        "drop_resume.sql",
        include_str!("sql/functions/drop_resume.sql"),
    ),
    ("drift.sql", include_str!("sql/functions/drift.sql")),
    ("capture.sql", include_str!("sql/functions/capture.sql")),
    ("status.sql", include_str!("sql/functions/status.sql")),
    ("requests.sql", include_str!("sql/functions/requests.sql")),
    ("inherit.sql", include_str!("sql/functions/inherit.sql")),
    ("subscribe.sql", include_str!("sql/functions/subscribe.sql")),
    ("immediate.sql", include_str!("sql/functions/immediate.sql")),
];

/// The function scripts as installed: [`FUNCTION_SCRIPTS`] with the
/// [`SCRIPT_CONSTANTS`] substituted, in order.
fn function_scripts() -> &'static [String] {
    static SCRIPTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| {
        FUNCTION_SCRIPTS
            .iter()
            .map(|(_, script)| {
                SCRIPT_CONSTANTS
                    .iter()
                    .fold((*script).to_owned(), |text, (name, value)| {
                        text.replace(name, &value.to_string())
                    })
            })
            .collect()
    })
}

const STEP: &str = "installing the pgstream catalog";

/// Install or upgrade the `pgstream` catalog in the database: the schemas
/// `pgstream` and `pgstream_changes`, the catalog tables and the SQL functions
/// (`pgstream.refresh_stream_table`, `pgstream.drop_stream_table`,
/// `pgstream.pgs_status`, the view `pgstream.pg_stat_stream_tables`).
///
/// Safe to call any number of times, also concurrently.
pub async fn install(pool: &PgPool) -> Result<()> {
    // search_path pinned: the scripts' DO blocks and the views are resolved under it.
    let mut tx = crate::pin::begin(pool).await.step(None, STEP)?;
    // `CREATE SCHEMA IF NOT EXISTS` and friends say "already exists, skipping" as
    // NOTICEs, which sqlx logs at INFO: not news to the application's log.
    sqlx::query("SET LOCAL client_min_messages = warning")
        .execute(&mut *tx)
        .await
        .step(None, STEP)?;
    crate::pin::execute(&mut tx, "SELECT pg_advisory_xact_lock($1, 0)", LOCK_CLASS)
        .await
        .step(None, STEP)?;
    crate::pin::script(&mut tx, BOOTSTRAP)
        .await
        .step(None, STEP)?;
    let current: Option<i32> =
        sqlx::query_scalar("SELECT max(schema_version) FROM pgstream.pgs_meta")
            .fetch_one(&mut *tx)
            .await
            .step(None, STEP)?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(Error::Invalid(format!(
            "the pgstream catalog in this database has schema version {current}, newer than \
             this runtime's {SCHEMA_VERSION}: upgrade the application"
        )));
    }
    let hash = functions_hash();
    let installed: Option<String> = sqlx::query_scalar(
        "SELECT p.prosrc FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'pgstream' AND p.proname = '_functions_hash'",
    )
    .fetch_optional(&mut *tx)
    .await
    .step(None, STEP)?;
    let functions_current = installed.as_deref() == Some(hash_function_body(&hash).as_str());
    if current == SCHEMA_VERSION && !functions_current {
        tracing::info!("installing this release's pgstream SQL functions");
        install_functions(&mut tx, &hash).await?;
    }
    if current < SCHEMA_VERSION {
        // Collected first: a `filter` closure held across the awaits would make this
        // future not `Send` for rustc (higher-ranked lifetimes), and with it every
        // future that installs (`Runtime::start`, `create_stream_table`).
        let pending: Vec<(i32, &str)> = MIGRATIONS
            .iter()
            .copied()
            .filter(|(v, _)| *v > current)
            .collect();
        for (version, script) in pending {
            tracing::info!(version, "upgrading the pgstream catalog");
            crate::pin::script(&mut tx, script).await.step(None, STEP)?;
        }
        install_functions(&mut tx, &hash).await?;
        sqlx::query("DELETE FROM pgstream.pgs_meta")
            .execute(&mut *tx)
            .await
            .step(None, STEP)?;
        let record = "INSERT INTO pgstream.pgs_meta (schema_version) VALUES ($1)";
        crate::pin::execute(&mut tx, record, SCHEMA_VERSION)
            .await
            .step(None, STEP)?;
    }
    // The capture functions check the table's shape at every statement only when no
    // event trigger rebuilds them after DDL (see `_build_capture`). The trigger may have
    // been dropped, disabled or created since they were built: rebuild those whose
    // guard does not match, so that a write never fails (no trigger, no guard) and no
    // write pays for a check it does not need (trigger, guard).
    sqlx::query(
        "SELECT pgstream._build_capture(s.source_oid)
           FROM pgstream.pgs_sources s
           JOIN pg_catalog.pg_proc p
             ON p.proname = 'capture_' || s.source_oid
            AND p.pronamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n
                                   WHERE n.nspname = 'pgstream_changes')
          WHERE (p.prosrc LIKE '%no event trigger rebuilt this function%')
              = EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger e
                         WHERE e.evtname = 'pgstream_ddl' AND e.evtenabled <> 'D')",
    )
    .execute(&mut *tx)
    .await
    .step(None, STEP)?;
    tx.commit().await.step(None, STEP)?;
    if !event_trigger_installed(pool).await? {
        tracing::warn!(
            "the pgstream DDL event trigger (pgstream_ddl) is not installed: only a superuser \
             can create it. Without it, schema drift of a source (a column or view a stream \
             table reads dropped, renamed or retyped) is found at the next refresh or start-up \
             instead of at the DDL, partitions created or attached later are found at the next \
             refresh, and the capture functions check the shape of the table at every write \
             statement (docs/ARCHITECTURE.md, \"Privileges\")"
        );
    }
    Ok(())
}

/// Whether the DDL event trigger `pgstream_ddl` exists and is enabled. It is
/// installed only when the installing role is a superuser.
pub async fn event_trigger_installed(pool: &PgPool) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger e
                         WHERE e.evtname = 'pgstream_ddl' AND e.evtenabled <> 'D')",
    )
    .fetch_one(pool)
    .await
    .step(None, STEP)
}

/// FNV-1a (64 bits) of the function scripts as installed, in hex: identifies the
/// installed functions.
fn functions_hash() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in function_scripts().iter().flat_map(|script| script.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The body of `pgstream._functions_hash()` for a hash (hex digits only).
fn hash_function_body(hash: &str) -> String {
    format!("SELECT '{hash}'::text")
}

/// Install the function scripts and pin their `search_path` ([`pin_search_path`]),
/// rebuild the capture functions of the sources (their text comes from
/// `pgstream._build_capture`), and record the hash.
async fn install_functions(tx: &mut sqlx::PgConnection, hash: &str) -> Result<()> {
    for script in function_scripts() {
        crate::pin::script(&mut *tx, script)
            .await
            .step(None, STEP)?;
    }
    pin_search_path(&mut *tx).await?;
    sqlx::query("SELECT pgstream._build_capture(s.source_oid) FROM pgstream.pgs_sources s")
        .execute(&mut *tx)
        .await
        .step(None, STEP)?;
    // Stream tables created before catalog v7 recorded no settings: they get the
    // values a new session gets, which is what most of their refreshes ran with.
    sqlx::query(
        "UPDATE pgstream.pgs_stream_tables SET settings = pgstream._result_settings(true)
          WHERE settings IS NULL",
    )
    .execute(&mut *tx)
    .await
    .step(None, STEP)?;
    sqlx::query("SELECT pgstream._pin_function_settings(s.id) FROM pgstream.pgs_stream_tables s")
        .execute(&mut *tx)
        .await
        .step(None, STEP)?;
    let hash_function = format!(
        "CREATE OR REPLACE FUNCTION pgstream._functions_hash() RETURNS text LANGUAGE sql IMMUTABLE \
         SET search_path = pg_catalog, pg_temp AS $h${}$h$",
        hash_function_body(hash)
    );
    crate::pin::script(&mut *tx, hash_function.as_str())
        .await
        .step(None, STEP)?;
    Ok(())
}

/// The start of every function definition in the scripts, followed by the function's
/// name and its arguments.
const FUNCTION_HEAD: &str = "CREATE OR REPLACE FUNCTION pgstream.";

/// The names of the functions the scripts define (each in the schema `pgstream`).
fn script_function_names() -> Vec<&'static str> {
    FUNCTION_SCRIPTS
        .iter()
        .flat_map(|(_, script)| script.lines())
        .filter_map(|line| line.strip_prefix(FUNCTION_HEAD))
        .filter_map(|rest| rest.split_once('(').map(|(name, _)| name))
        .collect()
}

/// Pins `search_path` to [`crate::pin::SEARCH_PATH`] on every function the scripts
/// define: the scripts write no `SET search_path` clause of their own (one place for
/// all of them), and `CREATE OR REPLACE` leaves a function without one, so this runs
/// after every installation of the scripts, in its transaction (no other session
/// sees a function unpinned). An overload of one of their names left by an older
/// release gets it too, unless it has a `search_path` already.
async fn pin_search_path(tx: &mut sqlx::PgConnection) -> Result<()> {
    let statements: Option<String> = sqlx::query_scalar(
        "SELECT pg_catalog.string_agg(pg_catalog.format('ALTER FUNCTION %s SET search_path = %s;',
                                                        p.oid::pg_catalog.regprocedure, $2), ' ')
           FROM pg_catalog.pg_proc p
          WHERE p.pronamespace = 'pgstream'::pg_catalog.regnamespace AND p.proname = ANY ($1)
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) c
                             WHERE c LIKE 'search_path=%')",
    )
    .bind(script_function_names())
    .bind(crate::pin::SEARCH_PATH)
    .fetch_one(&mut *tx)
    .await
    .step(None, STEP)?;
    if let Some(statements) = statements {
        crate::pin::script(&mut *tx, &statements)
            .await
            .step(None, STEP)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{
        function_scripts, script_function_names, FUNCTION_HEAD, FUNCTION_SCRIPTS,
        RUNTIME_LOCK_CLASS, SCRIPT_CONSTANTS,
    };

    /// Every function the scripts define is named by [`script_function_names`], and so
    /// gets its `search_path` pinned.
    #[test]
    fn script_functions_are_all_found() {
        let defined: usize = FUNCTION_SCRIPTS
            .iter()
            .map(|(_, script)| script.matches("CREATE OR REPLACE FUNCTION").count())
            .sum();
        let names = script_function_names();
        // One definition is written by `_build_capture` (in `pgstream_changes`, with
        // its own `search_path`), not by the scripts.
        assert_eq!(names.len(), defined - 1, "{FUNCTION_HEAD}");
        for name in names {
            assert!(
                !name.is_empty() && name.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric()),
                "{name:?}"
            );
        }
    }

    /// Every `{{NAME}}` of the function scripts is a known constant, and is substituted.
    #[test]
    fn function_scripts_have_every_constant_substituted() {
        for (script, (file, _)) in function_scripts().iter().zip(FUNCTION_SCRIPTS) {
            assert!(
                !script.contains("{{"),
                "{file}: a `{{{{NAME}}}}` with no constant"
            );
        }
        for (name, _) in SCRIPT_CONSTANTS {
            assert!(
                FUNCTION_SCRIPTS
                    .iter()
                    .any(|(_, script)| script.contains(name)),
                "{name} is named by no script"
            );
        }
    }

    /// `pgstream._runtime_running()` looks for the runtime's lock by its number.
    #[test]
    fn functions_name_the_runtime_lock_class() {
        assert!(function_scripts()
            .iter()
            .any(|script| script.contains(&format!("l.classid = {RUNTIME_LOCK_CLASS} "))));
    }

    /// The stream table lock's number, as the functions written before it was a
    /// constant had it: an installation of an older release and one of this release
    /// running side by side take the same lock.
    #[test]
    fn stream_table_lock_class_is_unchanged() {
        assert_eq!(super::STREAM_TABLE_LOCK_CLASS, 1_885_828_980);
    }
}
