#[pgstream::stream_table(
    query = "
        SELECT d.id AS department_id, d.name AS department_name, COUNT(e.id) AS headcount
        FROM departments d
        LEFT JOIN employees e ON e.department_id = d.id
        GROUP BY d.id, d.name",
    schedule = "30s"
)]
pub struct DepartmentStats {
    pub department_id: i32,
    pub department_name: String,
}

fn main() {}
