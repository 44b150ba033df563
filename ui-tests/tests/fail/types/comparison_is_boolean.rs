// The tutorial's typo outside a UNION: `'' > ''` makes the whole expression a
// comparison, so `path` is a boolean where the struct says String.
#[pgstream::stream_table(
    query = "SELECT id, name || '' > '' || name AS path FROM departments",
    mode = "full"
)]
pub struct Paths {
    pub id: i32,
    pub path: String,
}

fn main() {}
