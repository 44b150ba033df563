// `e.name` is NOT NULL in `employees`, but a department without employees gets a row
// padded with NULL by the LEFT JOIN.
#[pgstream::stream_table(
    query = "
        SELECT d.id AS department_id, e.id AS employee_id, e.name AS employee_name
        FROM departments d
        LEFT JOIN employees e ON e.department_id = d.id",
    mode = "full"
)]
pub struct Roster {
    pub department_id: i32,
    pub employee_id: Option<i32>,
    pub employee_name: String,
}

fn main() {}
