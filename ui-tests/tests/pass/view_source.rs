// Stream tables reading views of `migrations/0003_views.sql`: the views are expanded
// into their bodies at compile time, with no database, and the output types come
// through them.
use pgstream::StreamTable;
use rust_decimal::Decimal;

#[pgstream::stream_table(
    query = "SELECT s.staff_id, s.staff_name, s.department, d.id AS department_id
             FROM senior_staff s JOIN departments d ON d.name = s.department"
)]
pub struct SeniorStaff {
    pub staff_id: i32,
    pub staff_name: String,
    pub department: String,
    pub department_id: i32,
}

#[pgstream::stream_table(
    query = "SELECT department, count(*) AS headcount, sum(salary) AS payroll
             FROM staff GROUP BY department"
)]
pub struct StaffPerDepartment {
    pub department: String,
    pub headcount: i64,
    pub payroll: Decimal,
}

pub fn check() {
    assert_eq!(
        SeniorStaff::DEF.columns,
        ["staff_id", "staff_name", "department", "department_id"]
    );
    // the definition keeps the view's name; the runtime expands it again at creation
    assert!(SeniorStaff::DEF.query.contains("FROM senior_staff s"));
    assert_eq!(
        StaffPerDepartment::DEF.columns,
        ["department", "headcount", "payroll"]
    );
}
