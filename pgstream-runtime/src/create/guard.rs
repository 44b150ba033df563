//! The storage guard: a statement trigger on every storage table that rejects writes
//! other than refreshes (PRIOR_ART #21), and its upgrade from earlier releases.

use crate::error::{Result, Step};
use sqlx::{Connection, PgPool};

/// The storage guard trigger's events (what comes between its name and `ON`), and
/// its condition and function (what follows the table). The condition lets a refresh
/// (`pgstream.refreshing` on) through without calling the function: PL/pgSQL compiles
/// a trigger function once per table it fires on and keeps it with its cached plans
/// for the session, so a session that refreshed or created 10,000 stream tables held
/// 10,000 copies, and every invalidation message (any DDL, an ANALYZE) walked all
/// their plans. Triggers of earlier releases get the condition at start-up ([`upgrade_guards`]).
pub(crate) const GUARD_TRIGGER_TAIL: &str = "BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE";
/// See [`GUARD_TRIGGER_TAIL`].
pub(crate) const GUARD_TRIGGER_ACTION: &str = "FOR EACH STATEMENT \
     WHEN (COALESCE(pg_catalog.current_setting('pgstream.refreshing', true), '') <> 'on') \
     EXECUTE FUNCTION pgstream._guard_storage()";

/// Stream tables per transaction in [`upgrade_guards`]: `DROP TRIGGER` locks its table
/// to the commit, and each lock takes a slot of the server's shared lock table.
const UPGRADE_BATCH: i64 = 500;

/// Give the storage guards of stream tables created by releases before catalog
/// version 10 the condition of [`GUARD_TRIGGER_ACTION`], at most [`UPGRADE_BATCH`]
/// stream tables per transaction. A guard that cannot be replaced (a storage table
/// another role owns) keeps working without the condition: logged, not an error.
/// Once done, one scan of the guard triggers finds nothing to do.
pub(crate) async fn upgrade_guards(pool: &PgPool) -> Result<()> {
    const STEP: &str = "upgrading the storage guard triggers";
    let mut after = 0_i64;
    loop {
        let mut tx = crate::pin::begin(pool).await.step(None, STEP)?;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT s.id, pg_catalog.format('%I.%I', s.schema_name, s.table_name)
               FROM pg_catalog.pg_trigger t
               JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pgstream.pgs_stream_tables s
                 ON s.schema_name = n.nspname::text COLLATE \"default\"
                AND s.table_name = c.relname::text COLLATE \"default\"
              WHERE t.tgname = '__pgs_guard' AND t.tgqual IS NULL AND s.id > $1
              ORDER BY s.id
              LIMIT $2",
        )
        .bind(after)
        .bind(UPGRADE_BATCH)
        .fetch_all(&mut *tx)
        .await
        .step(None, STEP)?;
        let Some(&(last, _)) = rows.last() else {
            return Ok(());
        };
        for (_, storage) in &rows {
            let mut sp = tx.begin().await.step(Some(storage), STEP)?;
            let replaced = crate::pin::script(
                &mut sp,
                &format!(
                    "DROP TRIGGER \"__pgs_guard\" ON {storage}; \
                     CREATE TRIGGER \"__pgs_guard\" {GUARD_TRIGGER_TAIL} ON {storage} {GUARD_TRIGGER_ACTION}"
                ),
            )
            .await;
            match replaced {
                Ok(()) => sp.commit().await.step(Some(storage), STEP)?,
                Err(e) => {
                    sp.rollback().await.step(Some(storage), STEP)?;
                    tracing::warn!(stream_table = %storage, error = %e, "pgstream: storage guard kept as an earlier release created it");
                }
            }
        }
        tx.commit().await.step(None, STEP)?;
        after = last;
    }
}
