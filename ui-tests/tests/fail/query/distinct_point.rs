// DISTINCT compares rows, and `point` has no equality operator. The error comes before
// the one about DISTINCT in DIFFERENTIAL mode: FULL mode would not help.
#[pgstream::stream_table(query = "SELECT DISTINCT location FROM readings")]
pub struct Places {
    pub location: Option<String>,
}

fn main() {}
