//! The tutorial of GETTING_STARTED.md, steps 1–7, as a Rust program:
//!
//! ```text
//! cargo run --example org_chart
//! ```
//!
//! The two stream tables are declared as structs; the compiler checks their queries
//! against `examples/migrations/` at build time. With `DATABASE_URL` set the program
//! uses that database (it creates and finally drops the tutorial's tables); without
//! it, it starts a throwaway PostgreSQL cluster from the binaries on `PATH` (or in
//! `PG_BINDIR`) and removes it at the end.

use std::error::Error;

use pgstream::{Runtime, StreamTable};
use pgstream_tests::tutorial::STEP1;
use rust_decimal::Decimal;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Column, Executor, PgPool, Row, TypeInfo};

/// Step 2: every department with its path from the root and its depth. The tutorial
/// writes the separator as `'' > ''`, which PostgreSQL reads as a comparison; the
/// separator is the string `' > '`.
#[pgstream::stream_table(
    query = "
    WITH RECURSIVE tree AS (
        SELECT id, name, parent_id, name AS path, 0 AS depth
        FROM departments
        WHERE parent_id IS NULL
        UNION ALL
        SELECT d.id, d.name, d.parent_id,
               tree.path || ' > ' || d.name AS path,
               tree.depth + 1
        FROM departments d
        JOIN tree ON d.parent_id = tree.id
    )
    SELECT id, name, parent_id, path, depth FROM tree",
    schedule = "30s",
    mode = "differential"
)]
#[derive(Debug, Clone)]
pub struct DepartmentTree {
    pub id: i32,
    pub name: String,
    pub parent_id: Option<i32>,
    pub path: String,
    pub depth: i32,
}

/// Step 3: headcount and salary budget per department.
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Without DATABASE_URL: a throwaway cluster, removed when `_cluster` drops.
    let (_cluster, url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let (guard, url) = pgstream_tests::embedded_cluster().await?;
            println!(
                "(no DATABASE_URL: using a throwaway PostgreSQL cluster in {})\n",
                guard.cluster.dir.display()
            );
            (Some(guard), url)
        }
    };
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?;

    step("Step 1: create the base tables and insert data");
    sqlx::raw_sql(STEP1).execute(&pool).await?;

    step("Steps 2 and 3: start the runtime; it creates both stream tables, populated at once");
    let runtime = Runtime::builder(pool.clone())
        .register::<DepartmentTree>()
        .register::<DepartmentStats>()
        .start()
        .await?;
    show(
        &pool,
        "SELECT id, name, parent_id, path, depth FROM department_tree ORDER BY path;",
    )
    .await?;
    show(&pool, "SELECT department_id, department_name, headcount, total_salary, avg_salary FROM department_stats ORDER BY department_name;").await?;

    step("Step 4a: INSERT — hire a new employee, then refresh");
    exec(
        &pool,
        "INSERT INTO employees (name, department_id, salary) VALUES ('Heidi', 6, 105000);",
    )
    .await?;
    refresh(&runtime, "department_stats").await?;
    show(&pool, "SELECT department_id, department_name, headcount, total_salary, avg_salary FROM department_stats WHERE department_name = 'Frontend';").await?;

    step("Step 4b: INSERT into a different table — add a new department");
    exec(
        &pool,
        "INSERT INTO departments (id, name, parent_id) VALUES (8, 'DevOps', 2);",
    )
    .await?;
    refresh(&runtime, "department_tree").await?;
    show(
        &pool,
        "SELECT id, name, parent_id, path, depth FROM department_tree WHERE name = 'DevOps';",
    )
    .await?;

    step("Step 4c: UPDATE — move Platform from Engineering to Operations");
    exec(&pool, "UPDATE departments SET parent_id = 4 WHERE id = 7;").await?;
    refresh(&runtime, "department_tree").await?;
    show(
        &pool,
        "SELECT id, name, parent_id, path, depth FROM department_tree WHERE name = 'Platform';",
    )
    .await?;

    step("Step 4d: DELETE — remove an employee");
    exec(&pool, "DELETE FROM employees WHERE name = 'Bob';").await?;
    refresh(&runtime, "department_stats").await?;
    show(&pool, "SELECT department_id, department_name, headcount, total_salary, avg_salary FROM department_stats WHERE department_name = 'Backend';").await?;

    step("Step 5: scheduling and monitoring (the runtime refreshes stale tables on its own)");
    show(
        &pool,
        "SELECT name, schedule, refresh_mode, status, stale FROM pgstream.pgs_status();",
    )
    .await?;
    show(
        &pool,
        "SELECT name, refresh_count, round(avg_duration_ms::numeric, 2) AS avg_ms, rows_affected, last_error FROM pgstream.pg_stat_stream_tables ORDER BY name;",
    )
    .await?;

    step("Step 6: the two strategies, as pgstream explains them");
    for def in [DepartmentStats::DEF, DepartmentTree::DEF] {
        let catalog = pgstream::load_catalog(&mut *pool.acquire().await?).await?;
        let compiled = pgstream::compile(&def.spec(), &catalog)?;
        let explain = compiled.explain();
        let tree: Vec<&str> = explain
            .lines()
            .take_while(|l| !l.starts_with("storage table"))
            .collect();
        println!("{}\n", tree.join("\n").trim_end());
    }

    step("Step 7: clean up");
    runtime.shutdown().await;
    for name in ["department_stats", "department_tree"] {
        exec(
            &pool,
            &format!("SELECT pgstream.drop_stream_table('{name}');"),
        )
        .await?;
    }
    exec(&pool, "DROP TABLE employees;").await?;
    exec(&pool, "DROP TABLE departments;").await?;
    Ok(())
}

fn step(title: &str) {
    println!("== {title}\n");
}

async fn exec(pool: &PgPool, sql: &str) -> Result<(), sqlx::Error> {
    println!("{sql}");
    sqlx::raw_sql(sql).execute(pool).await?;
    println!();
    Ok(())
}

async fn refresh(runtime: &Runtime, name: &str) -> Result<(), pgstream::Error> {
    let out = runtime.refresh(name).await?;
    println!(
        "SELECT pgstream.refresh_stream_table('{name}');  -- {} row(s) changed\n",
        out.rows_changed
    );
    Ok(())
}

/// Run a query and print its result as psql's aligned format does.
async fn show(pool: &PgPool, sql: &str) -> Result<(), sqlx::Error> {
    println!("{sql}\n");
    let described = pool.describe(sql.trim_end_matches(';')).await?;
    let names: Vec<String> = described
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let numeric: Vec<bool> = described
        .columns()
        .iter()
        .map(|c| {
            matches!(
                c.type_info().name(),
                "INT2" | "INT4" | "INT8" | "NUMERIC" | "FLOAT4" | "FLOAT8" | "OID"
            )
        })
        .collect();
    let cast: Vec<String> = names
        .iter()
        .map(|n| format!("(r.\"{}\")::text", n.replace('"', "\"\"")))
        .collect();
    let text_sql = format!(
        "SELECT {} FROM ({}) AS r",
        cast.join(", "),
        sql.trim_end_matches(';')
    );
    let rows = sqlx::query(&text_sql).fetch_all(pool).await?;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            (0..names.len())
                .map(|i| {
                    r.try_get::<Option<String>, _>(i)
                        .ok()
                        .flatten()
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    let header: Vec<&str> = names.iter().map(String::as_str).collect();
    println!("{}", pgstream::psql::aligned(&header, &cells, &numeric));
    Ok(())
}
