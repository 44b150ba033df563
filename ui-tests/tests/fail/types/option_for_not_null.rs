// `name` is NOT NULL, so an Option field says something the column never does.
#[pgstream::stream_table(query = "SELECT id, name FROM employees")]
pub struct Staff {
    pub id: i32,
    pub name: Option<String>,
}

fn main() {}
