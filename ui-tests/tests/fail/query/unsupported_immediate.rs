// IMMEDIATE mode maintains what DIFFERENTIAL mode maintains; the rest is a compile
// error in IMMEDIATE's own words.
#[pgstream::stream_table(
    query = "SELECT department_id, salary FROM employees LIMIT 3",
    mode = "immediate"
)]
struct Mixed {
    department_id: Option<i32>,
    salary: Option<rust_decimal::Decimal>,
}

fn main() {}
