//! IMMEDIATE mode in the runtime. The maintenance itself is SQL (`sql/functions/immediate.sql`:
//! statement triggers on the sources that refresh the stream table in the writing
//! transaction); creating, dropping and replacing an IMMEDIATE stream table take the
//! paths of a DIFFERENTIAL one, and catalog triggers give the sources their
//! IMMEDIATE triggers. This module switches a stream table between DIFFERENTIAL and
//! IMMEDIATE in place.

use crate::error::{Result, Step};
use pgstream_core::Mode;
use sqlx::PgConnection;

/// Whether a stream table stored with mode `stored` switches to `to` without a
/// rebuild: between DIFFERENTIAL and IMMEDIATE, whose stored statements are the same.
pub(crate) fn switches_in_place(stored: &str, to: Mode) -> bool {
    matches!(
        (stored, to),
        ("DIFFERENTIAL", Mode::Immediate) | ("IMMEDIATE", Mode::Differential)
    )
}

/// Switch stream table `id` between DIFFERENTIAL and IMMEDIATE inside `conn`'s
/// transaction (READ COMMITTED, search_path pinned by the caller). Changing the mode
/// in the catalog creates or drops the sources' IMMEDIATE triggers (catalog trigger
/// `__pgs_immediate_mode`), which locks each source against writes until the commit
/// and first waits for the writes in progress. To IMMEDIATE, the stream table is then
/// refreshed here, so it holds every committed change when the first writer maintains
/// it; to DIFFERENTIAL, it is exact as the last writer left it, and the scheduler
/// takes over from its frontiers.
pub(crate) async fn switch_mode(
    conn: &mut PgConnection,
    id: i64,
    name: &str,
    to: Mode,
) -> Result<()> {
    sqlx::query("UPDATE pgstream.pgs_stream_tables SET mode = $2 WHERE id = $1")
        .bind(id)
        .bind(to.as_str())
        .execute(&mut *conn)
        .await
        .step(Some(name), "changing the refresh mode")?;
    if to == Mode::Immediate {
        sqlx::query("SELECT pgstream.refresh_stream_table_by_id($1)")
            .bind(id)
            .execute(&mut *conn)
            .await
            .step(Some(name), "refreshing before IMMEDIATE maintenance starts")?;
    }
    tracing::info!(stream_table = %name, mode = to.as_str(), "changed the refresh mode in place");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::switches_in_place;
    use pgstream_core::Mode;

    #[test]
    fn only_differential_and_immediate_switch_in_place() {
        assert!(switches_in_place("DIFFERENTIAL", Mode::Immediate));
        assert!(switches_in_place("IMMEDIATE", Mode::Differential));
        assert!(!switches_in_place("FULL", Mode::Immediate));
        assert!(!switches_in_place("IMMEDIATE", Mode::Full));
        assert!(!switches_in_place("IMMEDIATE", Mode::Immediate));
        assert!(!switches_in_place("DIFFERENTIAL", Mode::Differential));
    }
}
