#[pgstream::stream_table(query_file = "/etc/query.sql")]
struct Absolute {
    id: i32,
}

#[pgstream::stream_table(query_file = "queries/no_such_file.sql")]
struct MissingFile {
    id: i32,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", schema = "db/no_such_dir")]
struct MissingSchema {
    id: i32,
}

fn main() {}
