//! `cargo bench --bench scale`: does pgstream's cost follow what changed, not the number
//! of stream tables?
//!
//! Tenant-style stream tables: one per tenant, `WHERE tenant_id = n`, over two sources
//! (`orders`, 20 rows per tenant, and `tenants`), in three shapes taken in turn (an
//! aggregate per status, a join with the tenant's plan, a filter). For each count N of
//! stream tables (100, 1,000, 10,000 by default), on a throwaway cluster (or the
//! server of `DATABASE_URL`, in a fresh database dropped afterwards), it measures:
//!
//! - creation time per stream table (the first and the last 10 % created at that level);
//! - `pgstream.pgs_status()` over all N (median of 5);
//! - idle: CPU of the runtime (this process) and of PostgreSQL (its processes, read from
//!   `/proc`) per second, with every stream table on a 1 s schedule and no change at all;
//! - busy: 1 % of the tenants get a committed single-row UPDATE each second; the time
//!   from each commit to the first refresh of that tenant's stream table after it
//!   (heard on `LISTEN pgstream_refreshed`), median and p99, refreshes per second, and
//!   CPU as above;
//! - the runtime's memory (resident set of this process).
//!
//! It writes `scale.md`, `scale_*.svg` and `scale.csv` into `docs/bench/`
//! (`PGS_SCALE_OUT` overrides); `docs/BENCHMARKS.md` includes the table.
//!
//! Environment: `PGS_SCALE_NS=100,1000,10000`, `PGS_SCALE_IDLE_SECS=20`,
//! `PGS_SCALE_BUSY_SECS=20`, `PGS_SCALE_PARALLEL=2` (the runtime's
//! `parallel_refreshes`).
#![allow(missing_docs)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pgstream::Mode;
use pgstream_tests::bench_doc::env_or;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Connection, Executor, PgPool};

type Res<T> = Result<T, pgstream_tests::bench_doc::BenchError>;

/// Orders per tenant.
const ORDERS_PER_TENANT: i64 = 20;

/// The defining query of tenant `n`'s stream table.
fn tenant_query(n: i64) -> String {
    match n % 3 {
        0 => format!(
            "SELECT status, count(*) AS orders, sum(amount) AS total \
             FROM orders WHERE tenant_id = {n} GROUP BY status"
        ),
        1 => format!(
            "SELECT o.id, o.amount, t.plan FROM orders o JOIN tenants t ON t.id = o.tenant_id \
             WHERE o.tenant_id = {n}"
        ),
        _ => format!("SELECT id, amount FROM orders WHERE tenant_id = {n} AND amount > 10"),
    }
}

fn tenant_table(n: i64) -> String {
    format!("tenant_{n}")
}

#[derive(Debug, Default, Clone)]
struct Point {
    n: i64,
    create_first_ms: f64,
    create_last_ms: f64,
    status_ms: f64,
    idle_runtime_pct: f64,
    idle_pg_pct: f64,
    busy_runtime_pct: f64,
    busy_pg_pct: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    /// Commits whose stream table was not refreshed by the end of the busy phase.
    unrefreshed: usize,
    commits: usize,
    refreshes_per_sec: f64,
    rss_mib: f64,
    /// Mean time of one single-row UPDATE of the shared source (autocommit), µs.
    write_us: f64,
    /// Seconds until every change buffer was empty after the runtime started (the
    /// changes of the write-cost measurement applied or skipped), before the idle
    /// phase.
    settle_secs: f64,
    /// The machine's load average over 1 minute when the idle phase started (the
    /// machine is shared).
    load: f64,
}

fn main() {
    pgstream_tests::bench_doc::bench_main("scale", run);
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[scale] {}", msg.as_ref());
}

async fn run() -> Res<()> {
    let ns: Vec<i64> = std::env::var("PGS_SCALE_NS")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect();
    let idle_secs: u64 = env_or("PGS_SCALE_IDLE_SECS", 20);
    let busy_secs: u64 = env_or("PGS_SCALE_BUSY_SECS", 20);
    let parallel: usize = env_or("PGS_SCALE_PARALLEL", 2);
    let out: PathBuf = std::env::var("PGS_SCALE_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("docs")
                .join("bench")
        });
    let max_n = ns.iter().copied().max().unwrap_or(100);

    let (guard, admin_url) = match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => (None, u),
        _ => {
            let (guard, url) = pgstream_tests::embedded_cluster().await?;
            (Some(guard), url)
        }
    };
    let dbname = format!("pgstream_scale_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    admin
        .execute(format!("CREATE DATABASE {dbname}").as_str())
        .await?;
    let url = pgstream_tests::db::replace_database(&admin_url, &dbname);
    let pool = PgPoolOptions::new()
        .max_connections(parallel as u32 + 3)
        .acquire_timeout(Duration::from_secs(600))
        .connect(&url)
        .await?;
    let outcome = measure_all(&pool, &url, &ns, max_n, idle_secs, busy_secs, parallel).await;
    pool.close().await;
    let _ = admin
        .execute(format!("DROP DATABASE IF EXISTS {dbname} WITH (FORCE)").as_str())
        .await;
    let _ = admin.close().await;
    drop(guard);
    let (points, baseline_write_us) = outcome?;
    write_outputs(&out, &points, baseline_write_us, parallel)?;
    Ok(())
}

async fn measure_all(
    pool: &PgPool,
    url: &str,
    ns: &[i64],
    max_n: i64,
    idle_secs: u64,
    busy_secs: u64,
    parallel: usize,
) -> Res<(Vec<Point>, f64)> {
    pool.execute(
        format!(
            "SET temp_file_limit = '2GB';
             CREATE TABLE tenants (id int PRIMARY KEY, name text NOT NULL, plan text NOT NULL);
             CREATE TABLE orders (id bigint PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants,
                                  status text NOT NULL, amount numeric(12,2) NOT NULL);
             INSERT INTO tenants SELECT g, 'tenant ' || g, (ARRAY['free','team','enterprise'])[1 + g % 3]
               FROM generate_series(1, {max_n}) g;
             INSERT INTO orders SELECT g, 1 + (g - 1) / {ORDERS_PER_TENANT},
                                      (ARRAY['open','paid','shipped'])[1 + g % 3], 5 + g % 100
               FROM generate_series(1, {max_n} * {ORDERS_PER_TENANT}) g;
             CREATE INDEX ON orders (tenant_id);
             ANALYZE tenants, orders;"
        )
        .as_str(),
    )
    .await?;
    // The postmaster: the parent of this session's backend (the cluster must run on
    // this machine for its CPU to be read).
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await?;
    let postmaster = stat_field(&backend.to_string(), 4).unwrap_or(0);
    let mut points = Vec::new();
    // The write cost without capture (no stream table yet), the baseline of the
    // write cost at each count: capture must not grow with the number of consumers.
    let baseline_write_us = write_cost(pool, max_n).await?;
    log(format!(
        "single-row UPDATE without capture: {baseline_write_us:.0} µs"
    ));
    let mut created: i64 = 0;
    for &n in ns {
        let mut point = Point {
            n,
            ..Point::default()
        };
        // Creation, from the current count up to n.
        let mut times = Vec::new();
        while created < n {
            created += 1;
            let spec = pgstream::spec(
                &tenant_table(created),
                &tenant_query(created),
                "1s",
                Mode::Differential,
            )?;
            let t = Instant::now();
            pgstream::create_stream_table(pool, &spec).await?;
            times.push(ms(t.elapsed()));
            if created % 500 == 0 {
                log(format!("{created} stream tables"));
            }
        }
        let tenth = (times.len() / 10).max(1);
        point.create_first_ms = mean(&times[..tenth.min(times.len())]);
        point.create_last_ms = mean(&times[times.len().saturating_sub(tenth)..]);
        pool.execute("ANALYZE").await?;

        let mut status = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM pgstream.pgs_status()")
                .fetch_one(pool)
                .await?;
            status.push(ms(t.elapsed()));
            assert_eq!(rows, n);
        }
        point.status_ms = median(&status);
        point.write_us = write_cost(pool, max_n).await?;

        let runtime = pgstream::Runtime::builder(pool.clone())
            .tick(Duration::from_secs(1))
            .parallel_refreshes(parallel)
            .start()
            .await?;
        // Let the passes after creation settle: the write-cost UPDATEs above left
        // changes in the buffer, which the idle phase must not count.
        let t = Instant::now();
        let settled = settle(pool).await?;
        point.settle_secs = t.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(3)).await;
        point.load = load_average();
        log(format!(
            "N = {n}: buffers {} after {:.1} s; load average {:.2}",
            if settled { "empty" } else { "still not empty" },
            point.settle_secs,
            point.load
        ));
        let (rt_pct, pg_pct) = cpu_over(postmaster, Duration::from_secs(idle_secs)).await;
        point.idle_runtime_pct = rt_pct;
        point.idle_pg_pct = pg_pct;
        log(format!(
            "N = {n}: idle runtime {rt_pct:.1} %, PostgreSQL {pg_pct:.1} % of a core"
        ));

        busy_phase(pool, url, postmaster, n, busy_secs, &mut point).await?;
        point.rss_mib = rss_mib();
        runtime.shutdown().await;
        log(format!("{point:?}"));
        points.push(point);
    }
    Ok((points, baseline_write_us))
}

/// 1 % of the tenants (at least one) get a committed UPDATE each second; the latency of
/// each is the time to the first refresh of its stream table heard after the commit.
async fn busy_phase(
    pool: &PgPool,
    url: &str,
    postmaster: u64,
    n: i64,
    secs: u64,
    point: &mut Point,
) -> Res<()> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen("pgstream_refreshed").await?;
    let pending: std::sync::Arc<std::sync::Mutex<HashMap<String, Instant>>> = Default::default();
    let latencies: std::sync::Arc<std::sync::Mutex<Vec<f64>>> = Default::default();
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let listen_task = {
        let pending = pending.clone();
        let latencies = latencies.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                let note = tokio::select! {
                    n = listener.recv() => n,
                    _ = stop.notified() => break,
                };
                let Ok(note) = note else { break };
                let name = note
                    .payload()
                    .split("\"name\"")
                    .nth(1)
                    .and_then(|s| s.split('"').nth(1))
                    .unwrap_or_default()
                    .to_string();
                if let Some(at) = pending.lock().unwrap().remove(&name) {
                    latencies.lock().unwrap().push(ms(at.elapsed()));
                }
            }
        })
    };
    let refreshes_before = refresh_count(pool).await?;
    let cpu = tokio::spawn(cpu_over(postmaster, Duration::from_secs(secs)));
    let per_sec = (n / 100).max(1);
    let mut rng = StdRng::seed_from_u64(n as u64);
    let started = Instant::now();
    let mut commits = 0usize;
    let mut second = 0u64;
    while second < secs {
        let tick = started + Duration::from_secs(second);
        tokio::time::sleep_until(tick.into()).await;
        for _ in 0..per_sec {
            let tenant = rng.gen_range(1..=n);
            let order = (tenant - 1) * ORDERS_PER_TENANT + 1 + rng.gen_range(0..ORDERS_PER_TENANT);
            // + 10: every change is visible in its tenant's stream table (the filter
            // shape keeps `amount > 10`, and amounts start at 5), so each commit is
            // followed by a refresh that notifies: with + 1, the 1.6 % of commits that
            // left an order at 10 or less changed nothing and were counted as never
            // refreshed.
            sqlx::query("UPDATE orders SET amount = amount + 10 WHERE id = $1")
                .bind(order)
                .execute(pool)
                .await?;
            pending
                .lock()
                .unwrap()
                .entry(tenant_table(tenant))
                .or_insert_with(Instant::now);
            commits += 1;
        }
        second += 1;
    }
    let (rt_pct, pg_pct) = cpu.await?;
    // Give the last commits one more pass.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refreshes = refresh_count(pool).await? - refreshes_before;
    stop.notify_one();
    let _ = listen_task.await;
    let lat = latencies.lock().unwrap().clone();
    point.busy_runtime_pct = rt_pct;
    point.busy_pg_pct = pg_pct;
    point.latency_p50_ms = median(&lat);
    point.latency_p99_ms = percentile(&lat, 99.0);
    point.unrefreshed = pending.lock().unwrap().len();
    point.commits = commits;
    point.refreshes_per_sec = refreshes as f64 / (secs as f64 + 3.0);
    Ok(())
}

/// Wait (up to 10 minutes) until no change buffer holds a row: every change was
/// applied or skipped and trimmed. Whether they emptied.
async fn settle(pool: &PgPool) -> Res<bool> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(600) {
        let busy: i32 = sqlx::query_scalar("SELECT cardinality(pgstream._busy_sources())")
            .fetch_one(pool)
            .await?;
        if busy == 0 {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    log("the change buffers did not empty within 10 minutes");
    Ok(false)
}

/// The load average over the last minute (`/proc/loadavg`).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Mean time of 500 single-row UPDATEs of `orders`, one after another, in µs.
async fn write_cost(pool: &PgPool, max_n: i64) -> Res<f64> {
    let mut conn = pool.acquire().await?;
    let mut rng = StdRng::seed_from_u64(99);
    let t = Instant::now();
    for _ in 0..500 {
        sqlx::query("UPDATE orders SET status = status WHERE id = $1")
            .bind(rng.gen_range(1..=max_n * ORDERS_PER_TENANT))
            .execute(&mut *conn)
            .await?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / 500.0)
}

async fn refresh_count(pool: &PgPool) -> Res<i64> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(refresh_count), 0)::bigint FROM pgstream.pgs_refresh_stats",
    )
    .fetch_one(pool)
    .await?)
}

// ------------------------------------------------------------------------------------
// CPU and memory from /proc

/// CPU ticks (user + system) of a process.
fn ticks(pid: &str) -> u64 {
    stat_field(pid, 14).unwrap_or(0) + stat_field(pid, 15).unwrap_or(0)
}

/// The field `i` (1-based, as in proc(5)) of `/proc/<pid>/stat`.
fn stat_field(pid: &str, i: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count after it (field 3).
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(i - 3)?.parse().ok()
}

/// CPU ticks of the cluster's postmaster and its children (the backends, including the
/// runtime's and the benchmark's connections, and the background processes). Other
/// clusters on the machine are not counted.
fn postgres_ticks(postmaster: u64) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .filter(|p| {
            p.parse::<u64>().ok() == Some(postmaster) || stat_field(p, 4) == Some(postmaster)
        })
        .map(|p| ticks(&p))
        .sum()
}

/// Percent of one core used by this process and by the cluster over `d`.
async fn cpu_over(postmaster: u64, d: Duration) -> (f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (a, b) = (ticks("self"), postgres_ticks(postmaster));
    tokio::time::sleep(d).await;
    let (c, e) = (ticks("self"), postgres_ticks(postmaster));
    let pct = |t: u64| t as f64 / hz / d.as_secs_f64() * 100.0;
    (pct(c.saturating_sub(a)), pct(e.saturating_sub(b)))
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

// ------------------------------------------------------------------------------------
// Statistics and output

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

fn write_outputs(
    out: &std::path::Path,
    points: &[Point],
    baseline_write_us: f64,
    parallel: usize,
) -> Res<()> {
    std::fs::create_dir_all(out)?;
    let mut csv = String::from(
        "n,create_first_ms,create_last_ms,status_ms,idle_runtime_pct,idle_pg_pct,\
         busy_runtime_pct,busy_pg_pct,latency_p50_ms,latency_p99_ms,commits,unrefreshed,\
         refreshes_per_sec,rss_mib,write_us,settle_secs,load\n",
    );
    for p in points {
        writeln!(
            csv,
            "{},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.1},{:.1},{},{},{:.1},{:.1},{:.1},{:.1},{:.2}",
            p.n,
            p.create_first_ms,
            p.create_last_ms,
            p.status_ms,
            p.idle_runtime_pct,
            p.idle_pg_pct,
            p.busy_runtime_pct,
            p.busy_pg_pct,
            p.latency_p50_ms,
            p.latency_p99_ms,
            p.commits,
            p.unrefreshed,
            p.refreshes_per_sec,
            p.rss_mib,
            p.write_us,
            p.settle_secs,
            p.load
        )?;
    }
    std::fs::write(out.join("scale.csv"), csv)?;
    let mut md = String::new();
    writeln!(
        md,
        "| stream tables | create (first 10 % → last 10 %) | `pgs_status()` | idle CPU runtime + PostgreSQL | 1 % busy: commit → refresh p50 / p99 | not refreshed | refreshes/s | busy CPU runtime + PostgreSQL | runtime RSS | single-row UPDATE of the shared source | load average |"
    )?;
    writeln!(md, "|---:|---|---:|---|---|---:|---:|---|---:|---|---:|")?;
    for p in points {
        writeln!(
            md,
            "| {} | {:.1} ms → {:.1} ms ({:.2}×) | {:.1} ms | {:.1} % + {:.1} % | {:.0} ms / {:.0} ms | {} of {} | {:.0} | {:.1} % + {:.1} % | {:.0} MiB | {:.0} µs ({:.2}× without capture) | {:.1} |",
            p.n,
            p.create_first_ms,
            p.create_last_ms,
            p.create_last_ms / p.create_first_ms,
            p.status_ms,
            p.idle_runtime_pct,
            p.idle_pg_pct,
            p.latency_p50_ms,
            p.latency_p99_ms,
            p.unrefreshed,
            p.commits,
            p.refreshes_per_sec,
            p.busy_runtime_pct,
            p.busy_pg_pct,
            p.rss_mib,
            p.write_us,
            p.write_us / baseline_write_us,
            p.load
        )?;
    }
    writeln!(
        md,
        "\nA single-row UPDATE of the shared source without any stream table: {baseline_write_us:.0} µs (mean of 500, autocommit)."
    )?;
    writeln!(
        md,
        "CPU is percent of one core over the phase; the runtime runs with `parallel_refreshes({parallel})` and a 1 s tick; every stream table has a 1 s schedule. \
         The idle phase starts once every change buffer is empty (after the write-cost UPDATEs: {}). \
         Load average: the machine's 1-minute load when the idle phase started (2 cores, shared).",
        points
            .iter()
            .map(|p| format!("{:.0} s at {}", p.settle_secs, p.n))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    std::fs::write(out.join("scale.md"), &md)?;
    let xs: Vec<f64> = points.iter().map(|p| p.n as f64).collect();
    let series = |f: &dyn Fn(&Point) -> f64| {
        xs.iter()
            .copied()
            .zip(points.iter().map(f))
            .collect::<Vec<_>>()
    };
    std::fs::write(
        out.join("scale_cpu.svg"),
        svg_lines(
            "CPU (% of one core) against the number of stream tables",
            &[
                (
                    "idle: runtime + PostgreSQL",
                    series(&|p| p.idle_runtime_pct + p.idle_pg_pct),
                ),
                (
                    "1 % busy: runtime + PostgreSQL",
                    series(&|p| p.busy_runtime_pct + p.busy_pg_pct),
                ),
            ],
        ),
    )?;
    std::fs::write(
        out.join("scale_latency.svg"),
        svg_lines(
            "1 % busy: commit to refresh (ms) against the number of stream tables",
            &[
                ("p50", series(&|p| p.latency_p50_ms)),
                ("p99", series(&|p| p.latency_p99_ms)),
            ],
        ),
    )?;
    std::fs::write(
        out.join("scale_create.svg"),
        svg_lines(
            "Creation time per stream table (ms) against the number of stream tables",
            &[
                ("first 10 % at that level", series(&|p| p.create_first_ms)),
                ("last 10 % at that level", series(&|p| p.create_last_ms)),
            ],
        ),
    )?;
    println!("{md}");
    // A full run (the default output directory) updates its section of BENCHMARKS.md.
    if std::env::var_os("PGS_SCALE_OUT").is_none() {
        let doc_path = out.join("..").join("BENCHMARKS.md");
        let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
        let section = format!(
            "## Scale: many stream tables (`cargo bench --bench scale`)\n\n\
             One stream table per tenant (`WHERE tenant_id = n`; an aggregate, a join with the \
             tenant's row, a filter, in turn) over two shared sources, {ORDERS_PER_TENANT} orders \
             per tenant. Creation: mean time per stream table of the first and the last 10 % \
             created at that count (the ratio is the target's \"10,000th within 1.5× of the \
             first\"). Idle: no change at all. Busy: 1 % of the tenants get one committed \
             single-row UPDATE each second (`amount = amount + 10`, a change every shape \
             shows); latency from each commit to the first refresh of its stream table after \
             it (heard on `LISTEN pgstream_refreshed`, which a refresh that changed no row does \
             not send).\n\n{md}\n\
             Earlier runs at 10,000 stream tables: commit 35aa2e9 (stop 21): creation 66.0 → \
             169.3 ms (2.57×), `pgs_status()` 38.7 ms, busy p50 / p99 7.2 s / 11.4 s with \
             1,815 of 2,000 changes not refreshed (`_advance_unaffected` 1.8–3.5 s a pass, \
             trims 1.0–1.2 s); commit 72f3808 (stop 23, before the storage guard's condition \
             and the smaller catalog rows): creation 21.1 → 127.9 ms (6.06×: the creating \
             session compiled the guard function once per storage table and walked all those \
             plans at every invalidation, 775 MB in that backend), `pgs_status()` 100.8 ms, idle \
             0.1 % + 2.0 %, busy p50 / p99 754 ms / 1,110 ms. The first one with change filters (commit 2fffdcc, before the \
             fast trim, the cheaper `_advance_unaffected`, the scheduler's filtered catalog \
             query, the flat cycle check and event trigger, which were then measured by hand \
             at 1,001 stream tables) took, at 10,000 stream tables, 0.6 % + 30.9 % of a core \
             idle, p50 / p99 6.6 s / 15.4 s with 1,035 of 1,500 changes not refreshed when \
             busy, 324 ms for `pgs_status()` and 2.26× the first creation time for the last; \
             before change filters (commit 4547004, 1,000 stream tables), busy PostgreSQL \
             took 76.9 % of a core with p50 / p99 2.7 s / 5.3 s.\n\n\
             Known cost not in the table: a PostgreSQL backend caches the plans of every \
             generated refresh function it ran (about 230 kB per stream table: 71 MB after \
             refreshing 300 distinct ones), so a pool connection that refreshes 10,000 stream \
             tables grows to gigabytes; recycling connections (sqlx `max_lifetime`) bounds \
             it.\n\n\
             ![CPU](bench/scale_cpu.svg) ![latency](bench/scale_latency.svg) \
             ![creation](bench/scale_create.svg)\n"
        );
        let doc = pgstream_tests::bench_doc::replace_section(
            &doc,
            "scale",
            &pgstream_tests::bench_doc::wrap("scale", &section),
        );
        std::fs::write(&doc_path, doc)?;
    }
    log(format!("wrote {}", out.display()));
    Ok(())
}

/// A line plot with a logarithmic x axis (the number of stream tables) and a linear y
/// axis from zero.
fn svg_lines(title: &str, series: &[(&str, Vec<(f64, f64)>)]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 360.0;
    const L: f64 = 60.0;
    const R: f64 = 190.0;
    const T: f64 = 40.0;
    const B: f64 = 40.0;
    let pts = series
        .iter()
        .flat_map(|(_, v)| v.iter())
        .filter(|p| p.1.is_finite());
    let (xmin, xmax) = pts
        .clone()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let ymax = pts.fold(0.0f64, |a, p| a.max(p.1)).max(1e-9) * 1.1;
    let (lx0, lx1) = (xmin.log10(), xmax.log10().max(xmin.log10() + 1e-9));
    let x = |v: f64| L + (v.log10() - lx0) / (lx1 - lx0) * (W - L - R);
    let y = |v: f64| H - B - v / ymax * (H - T - B);
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{L}\" y=\"20\" font-size=\"14\">{}</text>\
         <line x1=\"{L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\
         <line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{}\" stroke=\"black\"/>",
        escape(title),
        H - B,
        W - R,
        H - B,
        H - B
    );
    for (xv, _) in series.first().map(|s| s.1.as_slice()).unwrap_or(&[]) {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(*xv),
            H - B + 16.0,
            *xv as i64
        );
    }
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.1}</text>",
            L - 6.0,
            y(v) + 4.0,
            v
        );
    }
    for (i, (label, v)) in series.iter().enumerate() {
        let c = colors[i % colors.len()];
        let path: Vec<String> = v
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{c}\">{}</text>",
            path.join(" "),
            W - R + 10.0,
            T + 16.0 * i as f64,
            escape(label)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
