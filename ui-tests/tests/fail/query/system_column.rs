// System columns are not data: they change when a row is rewritten and are not captured.
#[pgstream::stream_table(query = "SELECT id, xmin FROM employees")]
pub struct Versions {
    pub id: i32,
    pub xmin: String,
}

fn main() {}
