// IMMEDIATE mode maintains what DIFFERENTIAL mode maintains; the rest is a compile
// error in IMMEDIATE's own words.
#[pgstream::stream_table(
    query = "SELECT DISTINCT department_id, count(*) AS n FROM employees GROUP BY department_id, salary",
    mode = "immediate"
)]
struct Mixed {
    department_id: Option<i32>,
    n: i64,
}

fn main() {}
