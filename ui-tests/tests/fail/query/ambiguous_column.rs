// `id` is a column of both tables of the join: the query must say which.
#[pgstream::stream_table(
    query = "SELECT id, d.name FROM departments d JOIN employees e ON e.department_id = d.id"
)]
pub struct Staffed {
    pub id: i32,
    pub name: String,
}

fn main() {}
