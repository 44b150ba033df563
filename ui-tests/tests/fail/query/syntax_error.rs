#[pgstream::stream_table(query = "SELECT id, name FROM employees WHERE salary >")]
struct Broken {
    id: i32,
    name: String,
}

fn main() {}

#[pgstream::stream_table(query = "SELECT id name, FROM employees GROUP department_id")]
struct Garbled {
    id: i32,
    name: String,
}
