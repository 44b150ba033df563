#[pgstream::stream_table(query = "SELECT id, name AS employee_name FROM employees")]
pub struct Staff {
    pub id: i32,
    pub employe_name: String,
}

fn main() {}
