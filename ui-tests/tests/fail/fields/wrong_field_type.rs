// A field whose type cannot be decoded from PostgreSQL is an error on the type.
#[pgstream::stream_table(query = "SELECT id, name FROM employees")]
pub struct Staff {
    pub id: i32,
    pub name: std::path::PathBuf,
}

fn main() {}
