#[pgstream::stream_table(query_file = "queries/broken.sql")]
struct FromFile {
    id: i32,
    nmae: String,
}

fn main() {}
