//! A change subscription: a writer task commits a change every half second, the
//! runtime refreshes `department_pay` on commit, and this program prints the rows each
//! refresh inserted, deleted and updated, as they arrive:
//!
//! ```text
//! cargo run --example subscribe
//! ```
//!
//! The subscriber is named (`printer`): its position is stored in the database, so
//! running the program again against the same database (`DATABASE_URL`) resumes after
//! the last change it printed. Without `DATABASE_URL` it starts a throwaway
//! PostgreSQL cluster from the binaries on `PATH` (or in `PG_BINDIR`).

use std::error::Error;
use std::time::Duration;

use pgstream::{Change, Runtime, SubscriptionEvent};
use rust_decimal::Decimal;
use sqlx::postgres::PgPoolOptions;

/// Headcount and payroll per department, refreshed after each commit.
#[pgstream::stream_table(
    query = "
    SELECT d.id AS department_id, d.name AS department_name,
           COUNT(e.id) AS headcount, COALESCE(SUM(e.salary), 0) AS payroll
    FROM departments d
    LEFT JOIN employees e ON e.department_id = d.id
    GROUP BY d.id, d.name",
    schedule = "on commit"
)]
#[derive(Debug, Clone)]
pub struct DepartmentPay {
    pub department_id: i32,
    pub department_name: String,
    pub headcount: i64,
    pub payroll: Decimal,
}

const SETUP: &str = "
CREATE TABLE IF NOT EXISTS departments (
    id SERIAL PRIMARY KEY, name TEXT NOT NULL, parent_id INT REFERENCES departments(id));
CREATE TABLE IF NOT EXISTS employees (
    id SERIAL PRIMARY KEY, name TEXT NOT NULL,
    department_id INT NOT NULL REFERENCES departments(id), salary NUMERIC(10,2) NOT NULL);
INSERT INTO departments (id, name) VALUES (1, 'Engineering'), (2, 'Sales')
ON CONFLICT (id) DO NOTHING;";

/// The writer's commits: hire, give a raise, open a department, let someone go.
const WRITES: &[&str] = &[
    "INSERT INTO employees (name, department_id, salary) VALUES ('Ada', 1, 120000)",
    "INSERT INTO employees (name, department_id, salary) VALUES ('Bo', 2, 80000)",
    "UPDATE employees SET salary = salary * 1.1 WHERE name = 'Ada'",
    "INSERT INTO departments (id, name) VALUES (3, 'Support') ON CONFLICT (id) DO NOTHING",
    "INSERT INTO employees (name, department_id, salary) VALUES ('Cy', 3, 60000)",
    "DELETE FROM employees WHERE name = 'Bo'",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
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
        .max_connections(6)
        .connect(&url)
        .await?;
    sqlx::raw_sql(SETUP).execute(&pool).await?;
    let runtime = Runtime::builder(pool.clone())
        .register::<DepartmentPay>()
        .start()
        .await?;
    let mut changes = runtime.subscribe::<DepartmentPay>("printer").await?;
    println!(
        "subscribed to {} as `{}`, after version {}\n",
        changes.stream_table(),
        changes.subscriber(),
        changes.position()
    );

    // The writer: one commit every half second.
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            for sql in WRITES {
                tokio::time::sleep(Duration::from_millis(500)).await;
                println!("writer: {sql}");
                sqlx::query(sql).execute(&pool).await?;
            }
            Ok::<_, sqlx::Error>(())
        })
    };

    // Print what each refresh changed, until the writer is done and nothing more
    // arrives for two seconds.
    loop {
        let event = match tokio::time::timeout(Duration::from_secs(2), changes.recv()).await {
            Ok(Some(event)) => event?,
            Ok(None) => break,
            Err(_) if writer.is_finished() => break,
            Err(_) => continue,
        };
        match event {
            SubscriptionEvent::Changes(batch) => {
                println!(
                    "  version {} (refreshed at {}):",
                    batch.version,
                    batch.refreshed_at.format("%H:%M:%S%.3f")
                );
                for change in &batch.changes {
                    match change {
                        Change::Insert(r) => println!("    + {}", show(r)),
                        Change::Delete(r) => println!("    - {}", show(r)),
                        Change::Update { old, new } => {
                            println!("    ~ {}\n   -> {}", show(old), show(new))
                        }
                    }
                }
            }
            SubscriptionEvent::Lagged {
                missed_from,
                missed_to,
            } => println!(
                "  missed versions {missed_from}..={missed_to} (older than the retention): \
                 reload department_pay"
            ),
        }
    }
    writer.await??;
    // Remember the last version printed: a rerun continues after it.
    changes.ack().await?;
    println!("\nstopped after version {}", changes.position());
    runtime.shutdown().await;
    Ok(())
}

fn show(r: &DepartmentPay) -> String {
    format!(
        "{} ({}): {} employee(s), payroll {}",
        r.department_name, r.department_id, r.headcount, r.payroll
    )
}
