// Invalid cron schedules: each error names the field, the bad part and the allowed
// range, on the schedule literal.

#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = "*/5 25 * * *")]
struct HourOutOfRange {
    id: i32,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = "0 9 * * MON-FUN")]
struct UnknownWeekday {
    id: i32,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = "0 */0 * * *")]
struct ZeroStep {
    id: i32,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = "0 0 30 FEB *")]
struct NeverFires {
    id: i32,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = "* * *")]
struct TooFewFields {
    id: i32,
}

#[pgstream::stream_table(query = "SELECT id FROM employees", schedule = "@fortnightly")]
struct UnknownMacro {
    id: i32,
}

fn main() {}
