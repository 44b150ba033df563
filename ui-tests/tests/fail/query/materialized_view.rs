// A materialized view changes only on REFRESH MATERIALIZED VIEW, which no trigger
// captures: rejected, with the stream-table alternative.
#[pgstream::stream_table(query = "SELECT department_id, total FROM payroll")]
struct Payroll {
    department_id: i32,
    total: rust_decimal::Decimal,
}

fn main() {}
