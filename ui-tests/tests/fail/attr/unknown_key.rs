#[pgstream::stream_table(query = "SELECT id FROM employees", shedule = "30s")]
struct Ids {
    id: i32,
}

fn main() {}
