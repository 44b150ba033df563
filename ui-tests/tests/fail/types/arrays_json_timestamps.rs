// Arrays read into Vec of the element type, jsonb into serde_json::Value, and
// timestamptz into DateTime<Utc> (NaiveDateTime is `timestamp without time zone`).
use sqlx::types::chrono::NaiveDateTime;

#[pgstream::stream_table(query = "SELECT id, tags, attrs, taken_at FROM readings")]
pub struct Reading {
    pub id: i64,
    pub tags: Vec<i32>,
    pub attrs: String,
    pub taken_at: NaiveDateTime,
}

fn main() {}
