// Cron schedules: five fields, six with seconds, names, and a macro.
use pgstream::StreamTable;

#[pgstream::stream_table(query = "SELECT id, name FROM employees", schedule = "*/5 * * * *")]
struct EveryFiveMinutes {
    id: i32,
    name: String,
}

#[pgstream::stream_table(
    query = "SELECT id, name FROM departments",
    schedule = "0 30 9-17/2 * jan-jun MON,WED,FRI",
    mode = "full"
)]
struct OfficeHours {
    id: i32,
    name: String,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = "@daily")]
struct Nightly {
    id: i32,
}

pub fn check() {
    assert_eq!(EveryFiveMinutes::DEF.schedule, "*/5 * * * *");
    assert_eq!(
        OfficeHours::DEF.schedule,
        "0 30 9-17/2 * jan-jun MON,WED,FRI"
    );
    assert_eq!(Nightly::DEF.schedule, "@daily");
    let schedule: pgstream::Schedule = EveryFiveMinutes::DEF.schedule.parse().unwrap();
    assert!(schedule.is_cron());
    assert_eq!(schedule.nominal_interval().as_secs(), 300);
    let _ = |row: EveryFiveMinutes| (row.id, row.name);
    let _ = |row: OfficeHours| (row.id, row.name);
    let _ = |row: Nightly| row.id;
}
