//! `cargo bench --bench refresh`: does refresh work follow the changes, not the table size?
//!
//! One run measures, on a throwaway cluster (or the server of `DATABASE_URL`, in a fresh
//! database that is dropped afterwards):
//!
//! - refresh time after k changes to sources of 10,000 / 100,000 / 1,000,000 rows for five
//!   queries (the tutorial's join + aggregate, a filter, a three-table join, a recursive
//!   tree, MIN/MAX per group), each as pgstream DIFFERENTIAL, pgstream FULL, `REFRESH
//!   MATERIALIZED VIEW`, `REFRESH MATERIALIZED VIEW CONCURRENTLY`, and a hand-written delta
//!   (a capture trigger and one hand-written MERGE/UPDATE), medians of repeated runs;
//! - the planning and execution time of the differential statement at k = 10
//!   (`EXPLAIN (ANALYZE, SUMMARY)` in a rolled-back transaction);
//! - the write overhead of capture: single-row UPDATE throughput with several clients
//!   (pgbench with a custom script, or a tokio loop without pgbench) and a bulk
//!   `INSERT ... SELECT`, with and without pgstream's triggers;
//! - freshness under the runtime's scheduler (schedule 1 s, tick 100 ms).
//!
//! It writes `BENCHMARKS.md`, `bench/*.svg` and `bench/results.csv` into the output
//! directory: `docs/` of the workspace for a full run, `target/bench-quick/` for a quick
//! one (`PGS_BENCH_OUT` overrides).
//!
//! Environment:
//! - `PGS_BENCH_QUICK=1`: sizes 10,000, k up to 1,000, 3 repetitions, short write and
//!   freshness phases (under 2 minutes);
//! - `PGS_BENCH_SIZES=10000,100000`: table sizes; `PGS_BENCH_KS=1,10,100`: change counts;
//! - `PGS_BENCH_REPS=5`: repetitions per point; `PGS_BENCH_QUERIES=join_agg,filter`;
//! - `PGS_BENCH_PHASES=refresh,write,freshness`: which phases run;
//! - `PGS_BENCH_LARGE=1000000`, `PGS_BENCH_LARGE_KS=10` (or `all`): from that size on, the
//!   methods that recompute the whole query are measured at those k only;
//! - `PGS_BENCH_OUT=dir`: output directory;
//! - `PGS_BENCH_FULL_RATIO=none` (or a fraction): the DIFF stream table's adaptive
//!   switch to a full refresh (`pgstream.set_full_refresh_ratio`); unset: the default.
//!
//! Layout: [`config`] (the environment), [`scenarios`] (queries, tables, hand-written
//! deltas), [`results`] (what is measured), one module a phase ([`refresh_phase`] with
//! [`explain`], [`write_phase`], [`freshness_phase`]), and the output: [`report`] (files,
//! number formats), [`targets`], [`markdown`], [`levers`], [`svg`].
#![allow(missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgPool};

use crate::config::Config;
use crate::freshness_phase::freshness_phase;
use crate::refresh_phase::refresh_phase;
use crate::report::write_outputs;
use crate::results::{log, Results};
use crate::write_phase::write_phase;

mod config;
mod explain;
mod freshness_phase;
mod levers;
mod markdown;
mod refresh_phase;
mod report;
mod results;
mod scenarios;
mod svg;
mod targets;
mod write_phase;

/// The result of the benchmark's steps.
pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: then only
    // check that the target builds.
    if !std::env::args().any(|a| a == "--bench") {
        println!("refresh benchmark: run it with `cargo bench --bench refresh`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Res<()> {
    let cfg = Config::from_env()?;
    let started = Instant::now();
    log(format!("configuration: {cfg:?}"));

    let (guard, admin_url, bindir) = match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => (None, u, None),
        _ => {
            let (guard, url) = pgstream_tests::embedded_cluster().await?;
            let bindir = guard.cluster.bindir.clone();
            log(format!(
                "throwaway cluster in {} (binaries {})",
                guard.cluster.dir.display(),
                bindir.display()
            ));
            (Some(guard), url, Some(bindir))
        }
    };
    let dbname = format!("pgstream_bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {dbname}").as_str())
        .await?;
    admin
        .execute(format!("CREATE DATABASE {dbname}").as_str())
        .await?;
    let url = pgstream_tests::db::replace_database(&admin_url, &dbname);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(600))
        .connect(&url)
        .await?;

    let mut res = Results::default();
    machine_info(&pool, &mut res, guard.is_some()).await?;

    let outcome = async {
        if cfg.phase("refresh") {
            let t = Instant::now();
            // One connection: every method runs on a session whose plans and catalog
            // caches are warm, as on a long-lived application pool (a pool of four
            // would hand each timed repetition to another session, and the first
            // refresh of each session plans its statements). What a new session
            // costs is measured on its own ("first refresh on a new connection").
            let refresh_pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(600))
                .connect(&url)
                .await?;
            refresh_phase(&cfg, &refresh_pool, &url, &mut res).await?;
            refresh_pool.close().await;
            res.phase_secs
                .push(("refresh".into(), t.elapsed().as_secs_f64()));
        }
        if cfg.phase("write") {
            let t = Instant::now();
            write_phase(&cfg, &pool, &url, bindir.as_deref(), &mut res).await?;
            res.phase_secs
                .push(("write overhead".into(), t.elapsed().as_secs_f64()));
        }
        if cfg.phase("freshness") {
            let t = Instant::now();
            freshness_phase(&cfg, &url, &mut res).await?;
            res.phase_secs
                .push(("freshness".into(), t.elapsed().as_secs_f64()));
        }
        Res::Ok(())
    }
    .await;

    pool.close().await;
    let _ = admin
        .execute(format!("DROP DATABASE IF EXISTS {dbname} WITH (FORCE)").as_str())
        .await;
    let _ = admin.close().await;
    drop(guard);
    outcome?;

    res.phase_secs
        .push(("total".into(), started.elapsed().as_secs_f64()));
    write_outputs(&cfg, &res)?;
    Ok(())
}

async fn machine_info(pool: &PgPool, res: &mut Results, embedded: bool) -> Res<()> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|x| x.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(pool)
        .await?;
    let mut settings = Vec::new();
    for s in [
        "shared_buffers",
        "work_mem",
        "fsync",
        "synchronous_commit",
        "jit",
    ] {
        let v: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(s)
            .fetch_one(pool)
            .await?;
        settings.push(format!("{s}={v}"));
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    let commit = if dirty {
        format!("{commit} + uncommitted changes in the working tree")
    } else {
        commit
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    res.machine = vec![
        ("date".into(), date),
        ("pgstream commit".into(), commit),
        ("CPU".into(), cpu),
        ("cores (nproc)".into(), nproc),
        ("memory".into(), mem),
        ("load average at start".into(), load),
        ("PostgreSQL".into(), version),
        (
            "server".into(),
            if embedded {
                "throwaway cluster started by the benchmark (pgstream_tests::embedded_cluster)"
                    .into()
            } else {
                "DATABASE_URL".into()
            },
        ),
        ("settings".into(), settings.join(", ")),
    ];
    Ok(())
}
