// Refresh on commit: `schedule = "on commit"` (any case, any spacing).
use pgstream::StreamTable;

#[pgstream::stream_table(query = "SELECT id, name FROM employees", schedule = "on commit")]
struct Live {
    id: i32,
    name: String,
}

#[pgstream::stream_table(query = "SELECT id FROM departments", schedule = " ON  Commit ")]
struct Shouted {
    id: i32,
}

pub fn check() {
    let schedule: pgstream::Schedule = Live::DEF.schedule.parse().unwrap();
    assert!(schedule.is_on_commit());
    assert_eq!(schedule.to_string(), "on commit");
    let shouted: pgstream::Schedule = Shouted::DEF.schedule.parse().unwrap();
    assert_eq!(shouted, schedule);
    let _ = |row: Live| (row.id, row.name);
    let _ = |row: Shouted| row.id;
}
