#[pgstream::stream_table(query = "SELECT id, name FROM employees")]
struct Pair(i32, String);

fn main() {}
