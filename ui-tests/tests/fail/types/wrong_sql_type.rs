// COUNT is a bigint and SUM of numeric a numeric: `i32` and `f64` cannot read them.
#[pgstream::stream_table(
    query = "
        SELECT d.id AS department_id, COUNT(e.id) AS headcount,
               COALESCE(SUM(e.salary), 0) AS total_salary
        FROM departments d
        LEFT JOIN employees e ON e.department_id = d.id
        GROUP BY d.id",
    schedule = "30s"
)]
pub struct DepartmentStats {
    pub department_id: i32,
    pub headcount: i32,
    pub total_salary: f64,
}

fn main() {}
