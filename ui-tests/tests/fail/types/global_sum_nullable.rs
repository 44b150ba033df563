// Without GROUP BY the stream table has one row even when `employees` is empty, and
// SUM over no rows is NULL.
#[pgstream::stream_table(query = "SELECT COUNT(*) AS staff, SUM(salary) AS payroll FROM employees")]
pub struct Payroll {
    pub staff: i64,
    pub payroll: rust_decimal::Decimal,
}

fn main() {}
