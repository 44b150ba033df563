// PostgreSQL keeps 63 bytes of an identifier: a longer name would be truncated.
#[pgstream::stream_table(
    query = "SELECT id FROM employees",
    name = "a_stream_table_name_that_is_much_longer_than_postgresql_keeps_it_x"
)]
pub struct LongName {
    pub id: i32,
}

// The default name is the struct's in snake case: too long as well.
#[pgstream::stream_table(query = "SELECT id FROM employees")]
pub struct AStreamTableWhoseDefaultNameIsFarLongerThanTheSixtyThreeBytesPostgresqlKeeps {
    pub id: i32,
}

fn main() {}
