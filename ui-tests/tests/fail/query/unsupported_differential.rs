// A non-deterministic function cannot be maintained incrementally: the error names it
// and suggests FULL mode, which accepts the same query.
#[pgstream::stream_table(query = "SELECT id, random() AS score FROM employees")]
struct Scored {
    id: i32,
    score: f64,
}

#[pgstream::stream_table(query = "SELECT id, random() AS score FROM employees", mode = "full")]
struct ScoredFull {
    id: i32,
    score: f64,
}

fn main() {}
