// Two stream tables stored under one name: the second would replace the first. In one
// module this is a compile error; across modules, `Runtime::builder(..).start()`
// refuses to start before installing anything.
#[pgstream::stream_table(query = "SELECT id, name FROM departments")]
pub struct Directory {
    pub id: i32,
    pub name: String,
}

#[pgstream::stream_table(query = "SELECT id, name FROM employees", name = "directory")]
pub struct Staff {
    pub id: i32,
    pub name: String,
}

fn main() {}
