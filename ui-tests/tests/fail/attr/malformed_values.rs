#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = 30)]
struct NotAString {
    id: i32,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", mode)]
struct NoValue {
    id: i32,
}

fn main() {}
