#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = "30 seconds")]
struct Ids {
    id: i32,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = "30")]
struct NoUnit {
    id: i32,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = "on comit")]
struct Misspelt {
    id: i32,
}

fn main() {}
