//! Freshness measurements shared by `cargo bench --bench freshness` and the tests that
//! check their mechanics (`runtime_on_commit.rs`): commit-to-visible latency of the
//! tutorial's stream tables under a steady stream of single-row commits, and the cost a
//! writer pays with a stream table maintained in IMMEDIATE mode.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use pgstream::{Mode, Runtime, RuntimeHandle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::compare::scalar_i64;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The tutorial's recursive stream table (steps 2 and 4).
pub const DEPARTMENT_TREE: &str = "WITH RECURSIVE tree AS (
         SELECT id, name, parent_id, name AS path, 0 AS depth
         FROM departments WHERE parent_id IS NULL
         UNION ALL
         SELECT d.id, d.name, d.parent_id, tree.path || ' > ' || d.name AS path, tree.depth + 1
         FROM departments d JOIN tree ON d.parent_id = tree.id)
     SELECT id, name, parent_id, path, depth FROM tree";

/// The tutorial's join + aggregate stream table (step 3).
pub const DEPARTMENT_STATS: &str = "SELECT d.id AS department_id, d.name AS department_name,
            COUNT(e.id) AS headcount, COALESCE(SUM(e.salary), 0) AS total_salary,
            COALESCE(AVG(e.salary), 0) AS avg_salary
     FROM departments d LEFT JOIN employees e ON e.department_id = d.id
     GROUP BY d.id, d.name";

/// Commit-to-visible latencies of one run, in milliseconds, sorted.
#[derive(Debug, Clone)]
pub struct Latency {
    /// The schedule of both stream tables.
    pub schedule: String,
    /// One sample per commit, sorted ascending.
    pub samples_ms: Vec<f64>,
    /// Refreshes the runtime ran during the run (both stream tables).
    pub refreshes: i64,
    /// Time between commits.
    pub gap: Duration,
}

impl Latency {
    /// The `p`-quantile (0 to 1) of the samples, nearest rank.
    pub fn quantile(&self, p: f64) -> f64 {
        let s = &self.samples_ms;
        if s.is_empty() {
            return f64::NAN;
        }
        s[((s.len() as f64 - 1.0) * p).round() as usize]
    }
}

/// Commit-to-visible latency of the tutorial's `department_tree` and
/// `department_stats` (step 1's tables, in the database of `pool`, which must be
/// empty of them) with `schedule`, maintained by a runtime started here (tick 100 ms):
/// one writer commits a single-row INSERT every `gap`, alternately an employee of
/// department 5 (seen through `department_stats`) and a department under
/// Engineering (seen through `department_tree`); a reader polls both stream tables
/// every millisecond and records, per commit, the time from its commit until a read
/// shows it. A commit not visible within 30 s is an error.
pub async fn commit_latency(
    pool: &PgPool,
    url: &str,
    schedule: &str,
    commits: usize,
    gap: Duration,
) -> Res<Latency> {
    pool.execute(crate::tutorial::STEP1).await?;
    pool.execute("SELECT setval('departments_id_seq', 100)")
        .await?;
    let rt = Runtime::builder(pool.clone())
        .tick(Duration::from_millis(100))
        .start()
        .await?;
    rt.create_stream_table(
        "department_tree",
        DEPARTMENT_TREE,
        schedule,
        Mode::Differential,
    )
    .await?;
    rt.create_stream_table(
        "department_stats",
        DEPARTMENT_STATS,
        schedule,
        Mode::Differential,
    )
    .await?;
    // Past the first scheduled refreshes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let refreshes_before = refresh_count(pool).await?;
    let opts = url.parse::<sqlx::postgres::PgConnectOptions>()?;
    let writer = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts.clone())
        .await?;
    let reader = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?;
    let mut headcount = scalar_i64(
        &reader,
        "SELECT headcount FROM department_stats WHERE department_id = 5",
    )
    .await;
    let mut departments = scalar_i64(&reader, "SELECT count(*) FROM department_tree").await;
    // (commit number, headcount and departments after it, commit time)
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, i64, i64, Instant)>();
    let poller = tokio::spawn(async move {
        let mut lat: Vec<f64> = Vec::new();
        let mut waiting = VecDeque::new();
        let mut open = true;
        loop {
            while let Ok(w) = rx.try_recv() {
                waiting.push_back(w);
            }
            if waiting.is_empty() {
                if !open {
                    break;
                }
                match rx.recv().await {
                    Some(w) => waiting.push_back(w),
                    None => open = false,
                }
                continue;
            }
            let (h, d): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT headcount FROM department_stats WHERE department_id = 5),
                        (SELECT count(*) FROM department_tree)",
            )
            .fetch_one(&reader)
            .await?;
            let now = Instant::now();
            while let Some(&(i, wh, wd, at)) = waiting.front() {
                let seen = if i % 2 == 0 { h >= wh } else { d >= wd };
                if !seen {
                    break;
                }
                lat.push((now - at).as_secs_f64() * 1000.0);
                waiting.pop_front();
            }
            if let Some(&(i, _, _, at)) = waiting.front() {
                if at.elapsed() > Duration::from_secs(30) {
                    return Err(format!("commit {i} not visible within 30 s").into());
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(lat)
    });
    let mut next = Instant::now();
    for i in 0..commits {
        next += gap;
        if i % 2 == 0 {
            sqlx::query(
                "INSERT INTO employees (name, department_id, salary) VALUES ($1, 5, 50000)",
            )
            .bind(format!("e{i}"))
            .execute(&writer)
            .await?;
            headcount += 1;
        } else {
            sqlx::query("INSERT INTO departments (name, parent_id) VALUES ($1, 2)")
                .bind(format!("d{i}"))
                .execute(&writer)
                .await?;
            departments += 1;
        }
        let _ = tx.send((i, headcount, departments, Instant::now()));
        tokio::time::sleep_until(next.into()).await;
    }
    drop(tx);
    let mut samples_ms = poller.await??;
    samples_ms.sort_by(|a, b| a.total_cmp(b));
    let refreshes = refresh_count(pool).await? - refreshes_before;
    writer.close().await;
    rt.shutdown().await;
    Ok(Latency {
        schedule: schedule.to_string(),
        samples_ms,
        refreshes,
        gap,
    })
}

async fn refresh_count(pool: &PgPool) -> Res<i64> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(refresh_count), 0)::int8 FROM pgstream.pg_stat_stream_tables",
    )
    .fetch_one(pool)
    .await?)
}

/// How a writer's table is read in the IMMEDIATE cost measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterSetup {
    /// No stream table: no capture.
    NoStreamTable,
    /// A DIFFERENTIAL stream table (capture into its buffer, refreshed elsewhere).
    Deferred,
    /// An IMMEDIATE stream table (maintained inside each writing transaction).
    Immediate,
}

impl WriterSetup {
    /// A label for tables.
    pub fn label(self) -> &'static str {
        match self {
            WriterSetup::NoStreamTable => "no stream table",
            WriterSetup::Deferred => "deferred capture (DIFFERENTIAL)",
            WriterSetup::Immediate => "IMMEDIATE",
        }
    }
}

/// The writer cost workload's table (100,000 rows, 100 groups) and stream table.
pub const IMM_ROWS: i64 = 100_000;
/// The IMMEDIATE cost measurement's stream table query.
pub const IMM_QUERY: &str = "SELECT k, count(*) AS n, sum(v) AS s FROM imm_src GROUP BY k";

/// Create `imm_src` (100,000 rows) in the database of `pool`.
pub async fn writer_cost_setup(pool: &PgPool) -> Res<()> {
    pool.execute(
        format!(
            "DROP TABLE IF EXISTS imm_src;
             CREATE TABLE imm_src AS SELECT g AS id, g % 100 AS k, g AS v FROM generate_series(1, {IMM_ROWS}) g;
             ALTER TABLE imm_src ADD PRIMARY KEY (id);"
        )
        .as_str(),
    )
    .await?;
    // VACUUM on its own: a multi-statement string runs as one transaction.
    pool.execute("VACUUM ANALYZE imm_src").await?;
    Ok(())
}

/// Put the stream table `imm_sums` over `imm_src` in the state `setup` (dropping any).
pub async fn writer_cost_prepare(pool: &PgPool, setup: WriterSetup) -> Res<()> {
    let h = RuntimeHandle::new(pool.clone());
    let _ = h.drop_stream_table("imm_sums").await;
    match setup {
        WriterSetup::NoStreamTable => {}
        WriterSetup::Deferred => {
            h.create_stream_table("imm_sums", IMM_QUERY, "1h", Mode::Differential)
                .await?
        }
        WriterSetup::Immediate => {
            h.create_stream_table("imm_sums", IMM_QUERY, "1h", Mode::Immediate)
                .await?
        }
    }
    pool.execute("VACUUM imm_src").await?;
    Ok(())
}

/// Single-row UPDATE throughput (transactions per second): `clients` connections,
/// each committing `UPDATE imm_src SET v = v + 1 WHERE id = <random>` in a loop for
/// `secs` seconds.
pub async fn single_row_tps(url: &str, clients: usize, secs: f64) -> Res<f64> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = PgConnection::connect(&url).await?;
            let mut rng = StdRng::seed_from_u64(c as u64 + 1);
            let mut n = 0u64;
            while Instant::now() < deadline {
                sqlx::query("UPDATE imm_src SET v = v + 1 WHERE id = $1")
                    .bind(rng.gen_range(1..=IMM_ROWS))
                    .execute(&mut conn)
                    .await?;
                n += 1;
            }
            conn.close().await?;
            Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(n)
        }));
    }
    let started = Instant::now();
    let mut total = 0u64;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64().max(secs))
}

/// Time of one `INSERT ... SELECT` of 100,000 rows into `imm_src`, in milliseconds;
/// the rows are deleted again (and, for a deferred stream table, the buffer consumed
/// by a refresh, as the scheduler would) outside the measurement.
pub async fn bulk_insert_ms(pool: &PgPool, setup: WriterSetup) -> Res<f64> {
    let t = Instant::now();
    pool.execute(
        format!(
            "INSERT INTO imm_src SELECT g, g % 100, g FROM generate_series({}, {}) g",
            2 * IMM_ROWS + 1,
            3 * IMM_ROWS
        )
        .as_str(),
    )
    .await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    pool.execute(format!("DELETE FROM imm_src WHERE id > {}", 2 * IMM_ROWS).as_str())
        .await?;
    if setup == WriterSetup::Deferred {
        RuntimeHandle::new(pool.clone()).refresh("imm_sums").await?;
    }
    pool.execute("VACUUM imm_src").await?;
    Ok(ms)
}

/// Rows by which `imm_sums` differs from its query (the IMMEDIATE stream table must
/// be exact after the writers).
pub async fn writer_cost_difference(pool: &PgPool) -> i64 {
    crate::compare::difference(pool, IMM_QUERY, "imm_sums", "k, n, s").await
}
