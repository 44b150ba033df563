// The query read from a file; schedule, mode and name left to their defaults; a raw
// identifier field.
use pgstream::StreamTable;

#[pgstream::stream_table(query_file = "queries/well_paid.sql")]
struct HighEarners {
    id: i32,
    r#name: String,
    salary: rust_decimal::Decimal,
}

pub fn check() {
    let def = HighEarners::DEF;
    assert_eq!(def.name, "high_earners");
    assert_eq!(def.schedule, "1m");
    assert_eq!(def.mode, pgstream::Mode::Differential);
    assert_eq!(def.query, include_str!("../../queries/well_paid.sql"));
    let _ = |row: HighEarners| (row.id, row.name, row.salary);
}
