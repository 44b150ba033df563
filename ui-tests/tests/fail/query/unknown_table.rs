#[pgstream::stream_table(query = "SELECT id, name FROM employes")]
struct Staff {
    id: i32,
    name: String,
}

fn main() {}
