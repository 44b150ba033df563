// Aggregates below the top of the query in DIFFERENTIAL mode: an aggregate subquery
// joined on its group key, and correlated scalar aggregates (a count is never NULL:
// `i64`; a max over no rows is: `Option`).
use pgstream::StreamTable;
use rust_decimal::Decimal;

#[pgstream::stream_table(query = "SELECT d.id, d.name, t.total, t.headcount
             FROM departments d
             JOIN (SELECT department_id, sum(salary) AS total, count(*) AS headcount
                   FROM employees GROUP BY department_id) t ON t.department_id = d.id")]
pub struct DepartmentTotals {
    pub id: i32,
    pub name: String,
    pub total: Decimal,
    pub headcount: i64,
}

#[pgstream::stream_table(query = "SELECT d.id,
                    (SELECT count(*) FROM employees e WHERE e.department_id = d.id) AS headcount,
                    (SELECT max(e.salary) FROM employees e WHERE e.department_id = d.id) AS top
             FROM departments d")]
pub struct Headcounts {
    pub id: i32,
    pub headcount: i64,
    pub top: Option<Decimal>,
}

pub fn check() {
    assert_eq!(
        DepartmentTotals::DEF.columns,
        ["id", "name", "total", "headcount"]
    );
    assert_eq!(Headcounts::DEF.columns, ["id", "headcount", "top"]);
}
