#[pgstream::stream_table(query = "SELECT id FROM employees", mode = "incremental")]
struct BadMode {
    id: i32,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", name = "a.b.c")]
struct BadName {
    id: i32,
}

fn main() {}
