// In a multi-line query the error quotes the offending line and underlines the fragment.
#[pgstream::stream_table(
    query = "
        SELECT d.id AS department_id,
               COUNT(e.id) AS headcount,
               COALESCE(SUM(e.salry), 0) AS total_salary
        FROM departments d
        LEFT JOIN employees e ON e.department_id = d.id
        GROUP BY d.id",
    schedule = "30s"
)]
pub struct Budget {
    pub department_id: i32,
    pub headcount: i64,
    pub total_salary: rust_decimal::Decimal,
}

fn main() {}
