// `mode = "immediate"`: maintained inside each writing transaction.
use pgstream::StreamTable;

#[pgstream::stream_table(
    query = "SELECT d.id AS department_id, count(e.id) AS headcount
             FROM departments d LEFT JOIN employees e ON e.department_id = d.id GROUP BY d.id",
    mode = "immediate"
)]
struct Headcount {
    department_id: i32,
    headcount: i64,
}

pub fn check() {
    assert_eq!(Headcount::DEF.mode, pgstream::Mode::Immediate);
    assert_eq!(Headcount::DEF.mode.to_string(), "IMMEDIATE");
    let _ = |row: Headcount| (row.department_id, row.headcount);
}
