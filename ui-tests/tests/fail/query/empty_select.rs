// `SELECT FROM t` is valid SQL, but a stream table needs at least one column.
#[pgstream::stream_table(query = "SELECT FROM employees")]
pub struct Nothing {}

fn main() {}
