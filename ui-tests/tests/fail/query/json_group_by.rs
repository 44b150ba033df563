// `json` has no equality operator, so PostgreSQL cannot group by it.
#[pgstream::stream_table(
    query = "SELECT payload, COUNT(*) AS n FROM readings GROUP BY payload",
    mode = "full"
)]
pub struct ByPayload {
    pub payload: Option<sqlx::types::JsonValue>,
    pub n: i64,
}

fn main() {}
