// An expression without an alias gets a name no field can have.
#[pgstream::stream_table(
    query = "SELECT department_id, COUNT(*) + 1 FROM employees GROUP BY department_id"
)]
pub struct Spread {
    pub department_id: i32,
}

fn main() {}
