// Set-returning functions in FROM in DIFFERENTIAL mode: the macro infers their
// output types (an array element can be NULL: `Option`; the ordinality and
// `jsonb_each`'s key cannot; `LEFT JOIN LATERAL` pads with NULL).
use pgstream::StreamTable;
use sqlx::types::JsonValue;

#[pgstream::stream_table(query = "SELECT r.id, t.tag, t.n
             FROM readings r CROSS JOIN LATERAL unnest(r.tags) WITH ORDINALITY AS t(tag, n)")]
pub struct ReadingTags {
    pub id: i64,
    pub tag: Option<String>,
    pub n: i64,
}

#[pgstream::stream_table(query = "SELECT r.id, e.key, e.value, g
             FROM readings r, jsonb_each(r.attrs) AS e, generate_series(1, 3) AS g")]
pub struct ReadingAttrs {
    pub id: i64,
    pub key: String,
    pub value: JsonValue,
    pub g: i32,
}

#[pgstream::stream_table(query = "SELECT r.id, x.unit, count(*) AS n
             FROM readings r
             LEFT JOIN LATERAL jsonb_to_recordset(r.attrs -> 'items') AS x(unit text, qty int) ON true
             GROUP BY r.id, x.unit")]
pub struct ReadingUnits {
    pub id: i64,
    pub unit: Option<String>,
    pub n: i64,
}

pub fn check() {
    assert_eq!(ReadingTags::DEF.columns, ["id", "tag", "n"]);
    assert_eq!(ReadingAttrs::DEF.columns, ["id", "key", "value", "g"]);
    assert_eq!(ReadingUnits::DEF.columns, ["id", "unit", "n"]);
}
