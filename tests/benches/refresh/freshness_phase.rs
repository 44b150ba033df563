//! The freshness phase: commit-to-visible latency under the runtime's scheduler.

use std::time::{Duration, Instant};

use pgstream::Mode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::postgres::PgPoolOptions;
use sqlx::Executor;

use crate::config::Config;
use crate::results::{log, median, ms, percentile, Results};
use crate::scenarios::{DEPARTMENTS, Q_JOIN_AGG};
use crate::Res;

pub(crate) async fn freshness_phase(cfg: &Config, url: &str, res: &mut Results) -> Res<()> {
    let pool = PgPoolOptions::new().max_connections(4).connect(url).await?;
    pool.execute(
        format!(
            "DROP TABLE IF EXISTS f_employees, f_departments CASCADE;
             CREATE TABLE f_departments (id int PRIMARY KEY, name text NOT NULL);
             CREATE TABLE f_employees (id serial PRIMARY KEY, name text NOT NULL,
                                       department_id int NOT NULL, salary numeric(10,2) NOT NULL);
             INSERT INTO f_departments SELECT g, 'dept ' || g FROM generate_series(1, {DEPARTMENTS}) g;
             INSERT INTO f_employees (name, department_id, salary)
               SELECT 'emp ' || g, 1 + g % {DEPARTMENTS}, 30000 + g % 170000 FROM generate_series(1, {}) g;
             CREATE INDEX ON f_employees (department_id);",
            cfg.fresh_rows
        )
        .as_str(),
    )
    .await?;
    pool.execute("VACUUM ANALYZE f_departments, f_employees")
        .await?;
    let query = Q_JOIN_AGG
        .replace("departments d", "f_departments d")
        .replace("employees e", "f_employees e");
    let runtime = pgstream::Runtime::builder(pool.clone())
        .register_spec(pgstream::spec(
            "fresh_stats",
            &query,
            "1s",
            Mode::Differential,
        )?)
        .tick(Duration::from_millis(100))
        .start()
        .await?;
    let writer = PgPoolOptions::new().max_connections(2).connect(url).await?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut expected: i64 =
        sqlx::query_scalar("SELECT count(*) FROM f_employees WHERE department_id = 1")
            .fetch_one(&writer)
            .await?;
    // Wait for the first scheduled refresh.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..cfg.fresh_samples {
        // A random phase relative to the schedule.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1100))).await;
        sqlx::query("INSERT INTO f_employees (name, department_id, salary) VALUES ($1, 1, 50000)")
            .bind(format!("fresh {i}"))
            .execute(&writer)
            .await?;
        let committed = Instant::now();
        expected += 1;
        loop {
            let n: Option<i64> =
                sqlx::query_scalar("SELECT headcount FROM fresh_stats WHERE department_id = 1")
                    .fetch_optional(&writer)
                    .await?;
            if n.unwrap_or(0) >= expected {
                break;
            }
            if committed.elapsed() > Duration::from_secs(30) {
                return Err("freshness: the change did not appear within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        res.freshness_ms.push(ms(committed.elapsed()));
    }
    let avg: Option<f64> = sqlx::query_scalar(
        "SELECT s.total_ms / nullif(s.refresh_count, 0) FROM pgstream.pgs_refresh_stats s
         JOIN pgstream.pgs_stream_tables t ON t.id = s.st_id WHERE t.table_name = 'fresh_stats'",
    )
    .fetch_optional(&writer)
    .await?
    .flatten();
    res.fresh_refresh_ms = avg;
    log(format!(
        "freshness: median {:.0} ms, p99 {:.0} ms over {} samples",
        median(&res.freshness_ms),
        percentile(&res.freshness_ms, 99.0),
        res.freshness_ms.len()
    ));
    runtime.shutdown().await;
    writer.close().await;
    pgstream::drop_stream_table(&pool, "fresh_stats").await?;
    pool.execute("DROP TABLE f_employees, f_departments")
        .await?;
    pool.close().await;
    Ok(())
}
