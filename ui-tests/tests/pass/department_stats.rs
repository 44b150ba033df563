// The tutorial's `department_stats`: a LEFT JOIN and COUNT/SUM/AVG, DIFFERENTIAL.
use pgstream::StreamTable;
use rust_decimal::Decimal;

#[pgstream::stream_table(
    query = "
        SELECT
            d.id AS department_id,
            d.name AS department_name,
            COUNT(e.id) AS headcount,
            COALESCE(SUM(e.salary), 0) AS total_salary,
            COALESCE(AVG(e.salary), 0) AS avg_salary
        FROM departments d
        LEFT JOIN employees e ON e.department_id = d.id
        GROUP BY d.id, d.name",
    schedule = "30s",
    mode = "differential"
)]
#[derive(Debug, Clone)]
pub struct DepartmentStats {
    pub department_id: i32,
    pub department_name: String,
    pub headcount: i64,
    pub total_salary: Decimal,
    pub avg_salary: Decimal,
}

fn assert_from_row<T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>>() {}

// The struct registers with the runtime through the facade (not run: no database here).
#[allow(dead_code)]
async fn start(pool: sqlx::PgPool) -> pgstream::Result<pgstream::Runtime> {
    pgstream::Runtime::builder(pool)
        .register::<DepartmentStats>()
        .start()
        .await
}

pub fn check() {
    assert_from_row::<DepartmentStats>();
    let def = DepartmentStats::DEF;
    assert_eq!(def.schema, "public");
    assert_eq!(def.name, "department_stats");
    assert_eq!(def.schedule, "30s");
    assert_eq!(def.mode, pgstream::Mode::Differential);
    assert_eq!(
        def.columns,
        [
            "department_id",
            "department_name",
            "headcount",
            "total_salary",
            "avg_salary"
        ]
    );
    assert!(def.query.contains("LEFT JOIN employees e"));
    assert_eq!(def.spec().name.to_string(), "public.department_stats");
}
