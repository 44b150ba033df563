#[pgstream::stream_table(
    query = "SELECT id FROM employees",
    query_file = "queries/well_paid.sql"
)]
struct Both {
    id: i32,
}

#[pgstream::stream_table(schedule = "30s")]
struct Neither {
    id: i32,
}

fn main() {}
