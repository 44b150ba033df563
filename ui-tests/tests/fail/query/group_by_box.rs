// GROUP BY needs an equality operator that grouping can use: `box` has `=` (which
// compares areas) but no btree or hash operator class.
#[pgstream::stream_table(query = "SELECT location::box AS b, count(*) AS n FROM readings GROUP BY location::box")]
pub struct Boxes {
    pub b: Option<String>,
    pub n: i64,
}

fn main() {}
