//! Recording a stream table's schedule in the catalog: its text, its nominal
//! interval and its kind.

use crate::error::{Result, Step};
use pgstream_core::{Schedule, StreamTableSpec};
use sqlx::PgConnection;

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
