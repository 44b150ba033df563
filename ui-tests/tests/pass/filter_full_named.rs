// A filter in FULL mode, stored under an explicit schema-qualified name; fields may be
// declared in any order.
use pgstream::StreamTable;

#[pgstream::stream_table(
    query = "SELECT id, name, salary FROM employees WHERE salary > 100000",
    name = "reporting.well_paid",
    mode = "full",
    schedule = "5m"
)]
pub struct WellPaid {
    pub name: String,
    pub id: i32,
    pub salary: rust_decimal::Decimal,
}

fn assert_from_row<T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>>() {}

pub fn check() {
    assert_from_row::<WellPaid>();
    assert_eq!(WellPaid::DEF.schema, "reporting");
    assert_eq!(WellPaid::DEF.name, "well_paid");
    assert_eq!(WellPaid::DEF.mode, pgstream::Mode::Full);
    assert_eq!(WellPaid::DEF.schedule, "5m");
    assert_eq!(WellPaid::DEF.columns, ["id", "name", "salary"]);
}
