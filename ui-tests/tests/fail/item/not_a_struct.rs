#[pgstream::stream_table(query = "SELECT id FROM employees")]
enum Ids {
    One,
}

#[pgstream::stream_table(query = "SELECT id FROM employees")]
struct Generic<T> {
    id: T,
}

#[pgstream::stream_table(query = "SELECT id FROM employees")]
fn not_an_item() {}

fn main() {}
