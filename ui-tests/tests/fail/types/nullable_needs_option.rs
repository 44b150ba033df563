// `parent_id` is a nullable column (no NOT NULL in the migration): the field must be
// an Option.
#[pgstream::stream_table(query = "SELECT id, name, parent_id FROM departments")]
pub struct Department {
    pub id: i32,
    pub name: String,
    pub parent_id: i32,
}

fn main() {}
