//! Exporting pgstream's metrics to Prometheus:
//!
//! ```text
//! cargo run --example prometheus            # serves http://127.0.0.1:9187/metrics
//! curl -s http://127.0.0.1:9187/metrics | grep pgstream_
//! ```
//!
//! pgstream records its metrics through the `metrics` facade (the list is in
//! `pgstream::metrics`); the application picks the exporter. Here it is
//! `metrics-exporter-prometheus`, rendered on `GET /metrics` by a few lines of tokio,
//! while a writer changes the tutorial's employees and the scheduler refreshes a
//! stream table every second. Ctrl-C stops it. `--once` prints one scrape after a
//! few refreshes and exits. With `DATABASE_URL` it uses that database; without, a
//! throwaway cluster.

use std::error::Error;
use std::time::Duration;

use pgstream::{Mode, Runtime};
use pgstream_tests::tutorial::STEP1;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;

    let (_cluster, url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let (guard, url) = pgstream_tests::embedded_cluster().await?;
            (Some(guard), url)
        }
    };
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?;
    // Starts from the tutorial's tables, created here and dropped at the end.
    let _ = pgstream::drop_stream_table(&pool, "salary_by_department").await;
    sqlx::raw_sql("DROP TABLE IF EXISTS employees, departments")
        .execute(&pool)
        .await?;
    sqlx::raw_sql(STEP1).execute(&pool).await?;
    let runtime = Runtime::builder(pool.clone())
        .tick(Duration::from_millis(200))
        .start()
        .await?;
    let handle = runtime.handle();
    handle
        .create_stream_table(
            "salary_by_department",
            "SELECT department_id, count(*) AS headcount, sum(salary) AS total
               FROM employees GROUP BY department_id",
            "1s",
            Mode::Differential,
        )
        .await?;

    // A writer: a raise every 300 ms.
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            loop {
                let _ = sqlx::query(
                    "UPDATE employees SET salary = salary + 1 WHERE id = 1 + (random() * 9)::int",
                )
                .execute(&pool)
                .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };

    if once {
        tokio::time::sleep(Duration::from_secs(3)).await;
        pgstream::metrics::sample(&pool).await?;
        for line in prometheus
            .render()
            .lines()
            .filter(|l| l.contains("pgstream_"))
        {
            println!("{line}");
        }
    } else {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:9187").await?;
        println!("serving http://127.0.0.1:9187/metrics (Ctrl-C to stop)");
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                accepted = listener.accept() => {
                    let (mut socket, _) = accepted?;
                    let body = prometheus.render();
                    tokio::spawn(async move {
                        let mut request = [0u8; 1024];
                        let _ = socket.read(&mut request).await;
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = socket.write_all(head.as_bytes()).await;
                        let _ = socket.write_all(body.as_bytes()).await;
                    });
                }
            }
        }
    }
    writer.abort();
    runtime.shutdown().await;
    pgstream::drop_stream_table(&pool, "salary_by_department").await?;
    sqlx::raw_sql("DROP TABLE employees, departments")
        .execute(&pool)
        .await?;
    Ok(())
}
