//! What a run measures (methods, plans, timings) and small statistics and logging helpers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::SingleTps;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Method {
    Diff,
    Full,
    Rmv,
    Rmvc,
    Hand,
}

pub(crate) const METHODS: [Method; 5] = [
    Method::Diff,
    Method::Full,
    Method::Rmv,
    Method::Rmvc,
    Method::Hand,
];

impl Method {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Method::Diff => "pgstream DIFFERENTIAL",
            Method::Full => "pgstream FULL",
            Method::Rmv => "REFRESH MATERIALIZED VIEW",
            Method::Rmvc => "REFRESH MATERIALIZED VIEW CONCURRENTLY",
            Method::Hand => "hand-written delta",
        }
    }
    pub(crate) fn short(self) -> &'static str {
        match self {
            Method::Diff => "DIFF",
            Method::Full => "FULL",
            Method::Rmv => "RMV",
            Method::Rmvc => "RMVC",
            Method::Hand => "hand",
        }
    }
    pub(crate) fn color(self) -> &'static str {
        match self {
            Method::Diff => "#d62728",
            Method::Full => "#ff7f0e",
            Method::Rmv => "#1f77b4",
            Method::Rmvc => "#9467bd",
            Method::Hand => "#2ca02c",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Explain {
    pub(crate) scenario: &'static str,
    pub(crate) size: i64,
    pub(crate) k: i64,
    pub(crate) method: Method,
    pub(crate) execution_ms: f64,
    pub(crate) plan_only_ms: f64,
    /// Client-side time of `EXPLAIN (SUMMARY)`: parse, analysis, rewrite, planning.
    pub(crate) explain_wall_ms: f64,
    /// Client-side time of the statement alone (rolled back), median of 5.
    pub(crate) statement_ms: f64,
    pub(crate) window_lines: Vec<String>,
    pub(crate) plan: String,
}

#[derive(Debug, Clone)]
pub(crate) struct BigPlan {
    pub(crate) scenario: &'static str,
    pub(crate) size: i64,
    pub(crate) k: i64,
    pub(crate) execution_ms: f64,
    /// (loops × time per loop, plan line) of the heaviest repeated nodes.
    pub(crate) heavy: Vec<(f64, String)>,
    pub(crate) plan: String,
}

#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) big_plans: Vec<BigPlan>,
    pub(crate) machine: Vec<(String, String)>,
    /// (scenario, size, k, method) -> times in ms.
    pub(crate) refresh: BTreeMap<(&'static str, i64, i64, Method), Vec<f64>>,
    /// (scenario, size, method) -> creation / initial population time in ms.
    pub(crate) creation: BTreeMap<(&'static str, i64, Method), f64>,
    /// (scenario, size) -> ms of a DIFF refresh after 10 changes on a new connection
    /// (planning and catalog caches cold), median of 3.
    pub(crate) cold: BTreeMap<(&'static str, i64), f64>,
    /// (scenario, size) -> ms of `REFRESH MATERIALIZED VIEW` on a new connection,
    /// median of 3.
    pub(crate) cold_rmv: BTreeMap<(&'static str, i64), f64>,
    pub(crate) rejected: BTreeMap<&'static str, String>,
    /// (scenario, size) where the recomputing methods ran at `large_ks` only.
    pub(crate) restricted: std::collections::BTreeSet<(&'static str, i64)>,
    pub(crate) verify: Vec<(&'static str, i64, Method, i64)>,
    pub(crate) explains: Vec<Explain>,
    /// (no triggers, with pgstream capture) tps per run.
    /// Single-row UPDATE tps: no triggers, pgstream's capture, row-level capture.
    pub(crate) single_tps: Option<SingleTps>,
    /// (no triggers, with pgstream capture, hand trigger) ms per run.
    /// Bulk INSERT ms: no triggers, pgstream's capture, row-level capture.
    pub(crate) bulk_ms: Option<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    pub(crate) freshness_ms: Vec<f64>,
    pub(crate) fresh_refresh_ms: Option<f64>,
    pub(crate) phase_secs: Vec<(String, f64)>,
}

impl Results {
    pub(crate) fn median(&self, sc: &str, size: i64, k: i64, m: Method) -> Option<f64> {
        self.refresh
            .iter()
            .find(|((s, z, kk, mm), _)| *s == sc && *z == size && *kk == k && *mm == m)
            .map(|(_, v)| median(v))
    }
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub(crate) fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (s.len() as f64 - 1.0)).round() as usize;
    s[idx.min(s.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn log(msg: impl AsRef<str>) {
    eprintln!("[bench {}] {}", chrono_now(), msg.as_ref());
}

pub(crate) fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}
