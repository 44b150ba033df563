#[pgstream::stream_table(query = "SELECT id, name FROM employees WHERE salary >")]
struct Broken {
    id: i32,
    name: String,
}

fn main() {}
