// A column a view does not have: the hint names the view's nearest column.
#[pgstream::stream_table(query = "SELECT s.staff_id, s.departmnt FROM senior_staff s")]
struct SeniorStaff {
    staff_id: i32,
    departmnt: String,
}

fn main() {}
