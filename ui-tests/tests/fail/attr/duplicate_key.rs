#[pgstream::stream_table(
    query = "SELECT id FROM employees",
    mode = "full",
    mode = "differential"
)]
struct Ids {
    id: i32,
}

fn main() {}
