// `#[stream_table]` implements `sqlx::FromRow`: deriving it too is a tailored error,
// not a conflicting-implementations one.
#[pgstream::stream_table(query = "SELECT id, name FROM departments")]
#[derive(Debug, pgstream::sqlx::FromRow)]
pub struct DepartmentList {
    pub id: i32,
    pub name: String,
}

fn main() {}
