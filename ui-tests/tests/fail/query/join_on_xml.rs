// A join condition comparing `xml` values: `xml` has no `=` operator.
#[pgstream::stream_table(
    query = "SELECT a.id FROM readings a JOIN readings b ON a.note = b.note",
    mode = "full"
)]
pub struct SameNote {
    pub id: i64,
}

fn main() {}
