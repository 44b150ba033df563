// Field types that match their columns: uuid, timestamptz, date, nullable double,
// boolean, text[], jsonb, json, an expression whose nullability follows its inputs,
// a type pgstream cannot infer (accepted), and full paths or short names alike.
use pgstream::StreamTable;
use sqlx::types::chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::{JsonValue, Uuid};

#[pgstream::stream_table(
    query = "
        SELECT id, sensor, taken_at, day, value, ok, tags, attrs, payload,
               value * 2 AS doubled, COALESCE(value, 0) AS value_or_zero,
               attrs ->> 'unit' AS unit, day + 1 AS next_day,
               public.my_function(id) AS opaque
        FROM readings",
    mode = "full"
)]
pub struct Reading {
    pub id: i64,
    pub sensor: Uuid,
    pub taken_at: DateTime<Utc>,
    pub day: NaiveDate,
    pub value: Option<f64>,
    pub ok: bool,
    pub tags: Vec<String>,
    pub attrs: JsonValue,
    pub payload: Option<sqlx::types::Json<JsonValue>>,
    pub doubled: Option<f64>,
    pub value_or_zero: f64,
    pub unit: Option<String>,
    pub next_day: sqlx::types::chrono::NaiveDate,
    pub opaque: Option<i32>,
}

// Aggregates: COUNT is a non-null bigint; MAX of a NOT NULL column in a GROUP BY query
// is never NULL (every group has a row); AVG of double precision is double precision.
#[pgstream::stream_table(
    query = "
        SELECT sensor, COUNT(*) AS n, MAX(taken_at) AS last_at, AVG(value) AS mean
        FROM readings GROUP BY sensor",
    mode = "full"
)]
pub struct SensorStats {
    pub sensor: Uuid,
    pub n: i64,
    pub last_at: DateTime<Utc>,
    pub mean: Option<f64>,
}

pub fn check() {
    assert_eq!(Reading::DEF.columns.len(), 14);
    assert_eq!(SensorStats::DEF.name, "sensor_stats");
}
