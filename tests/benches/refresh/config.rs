//! The benchmark's configuration, read from the `PGS_BENCH_*` environment variables.

use std::path::{Path, PathBuf};

use crate::scenarios::SCENARIOS;
use crate::Res;

/// Single-row UPDATE tps (no triggers, pgstream's capture, row-level capture) and
/// the tool's description.
pub(crate) type SingleTps = (Vec<f64>, Vec<f64>, Vec<f64>, String);

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) quick: bool,
    /// `PGS_BENCH_FULL_RATIO`: the adaptive switch of the DIFF stream table (`None`:
    /// the catalog default; `Some(None)`: never switch).
    pub(crate) full_ratio: Option<Option<f64>>,
    pub(crate) sizes: Vec<i64>,
    pub(crate) ks: Vec<i64>,
    pub(crate) reps: usize,
    pub(crate) queries: Vec<String>,
    pub(crate) phases: Vec<String>,
    pub(crate) out: PathBuf,
    pub(crate) write_secs: u32,
    pub(crate) write_runs: usize,
    pub(crate) write_rows: i64,
    pub(crate) bulk_rows: i64,
    pub(crate) clients: u32,
    pub(crate) fresh_samples: usize,
    pub(crate) fresh_rows: i64,
    /// From this size on, FULL / RMV / RMVC are measured at `large_ks` only.
    pub(crate) large_size: i64,
    pub(crate) large_ks: Vec<i64>,
}

pub(crate) fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().replace('_', ""))
                .filter(|x| !x.is_empty())
                .collect()
        })
}

pub(crate) fn env_list_raw(name: &str) -> Option<Vec<String>> {
    std::env::var(name)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
}

impl Config {
    pub(crate) fn from_env() -> Res<Config> {
        let quick = std::env::var("PGS_BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty());
        let parse = |v: Vec<String>| -> Res<Vec<i64>> {
            v.iter()
                .map(|x| x.parse::<i64>().map_err(|e| format!("`{x}`: {e}").into()))
                .collect()
        };
        let sizes = match env_list("PGS_BENCH_SIZES") {
            Some(v) => parse(v)?,
            None if quick => vec![10_000],
            None => vec![10_000, 100_000, 1_000_000],
        };
        let ks = match env_list("PGS_BENCH_KS") {
            Some(v) => parse(v)?,
            None if quick => vec![1, 10, 100, 1_000],
            None => vec![1, 10, 100, 1_000, 10_000, 100_000],
        };
        let reps = match std::env::var("PGS_BENCH_REPS") {
            Ok(v) => v.parse()?,
            Err(_) if quick => 3,
            Err(_) => 5,
        };
        let queries = env_list_raw("PGS_BENCH_QUERIES")
            .unwrap_or_else(|| SCENARIOS.iter().map(|s| s.key.to_string()).collect());
        for q in &queries {
            if !SCENARIOS.iter().any(|s| s.key == q) {
                return Err(format!(
                    "PGS_BENCH_QUERIES: unknown query `{q}` (known: {})",
                    SCENARIOS
                        .iter()
                        .map(|s| s.key)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
                .into());
            }
        }
        let phases = env_list_raw("PGS_BENCH_PHASES")
            .unwrap_or_else(|| vec!["refresh".into(), "write".into(), "freshness".into()]);
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_path_buf();
        let out = match std::env::var_os("PGS_BENCH_OUT") {
            Some(d) => PathBuf::from(d),
            None if quick => root.join("target").join("bench-quick"),
            None => root.join("docs"),
        };
        let large_size = match std::env::var("PGS_BENCH_LARGE") {
            Ok(v) => v.replace('_', "").parse()?,
            Err(_) => 1_000_000,
        };
        let large_ks = match env_list("PGS_BENCH_LARGE_KS") {
            Some(v) if v == ["all"] => Vec::new(),
            Some(v) => parse(v)?,
            None => vec![10],
        };
        let full_ratio = match std::env::var("PGS_BENCH_FULL_RATIO") {
            Ok(v) if v == "none" => Some(None),
            Ok(v) => Some(Some(v.parse()?)),
            Err(_) => None,
        };
        Ok(Config {
            quick,
            full_ratio,
            large_size,
            large_ks,
            sizes,
            ks,
            reps: reps.max(1),
            queries,
            phases,
            out,
            write_secs: if quick { 3 } else { 10 },
            write_runs: 3,
            write_rows: if quick { 10_000 } else { 100_000 },
            bulk_rows: if quick { 100_000 } else { 1_000_000 },
            clients: 4,
            fresh_samples: if quick { 12 } else { 60 },
            fresh_rows: if quick { 10_000 } else { 100_000 },
        })
    }

    pub(crate) fn phase(&self, p: &str) -> bool {
        self.phases.iter().any(|x| x == p)
    }
}
