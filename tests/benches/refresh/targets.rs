//! The goals of the benchmark and whether this run met them.

use crate::config::Config;
use crate::report::{fmt_ms, fmt_n, fmt_ratio};
use crate::results::{median, percentile, Method, Results};

pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) goal: String,
    pub(crate) measured: String,
    pub(crate) met: Option<bool>,
}

pub(crate) fn targets(cfg: &Config, res: &Results, sizes: &[i64]) -> Vec<Target> {
    let mut t = Vec::new();
    let big = sizes.iter().copied().max().unwrap_or(0);
    let m = |k: i64, z: i64, meth: Method| res.median("join_agg", z, k, meth);
    // 1. 10 changes on the largest table.
    if let (Some(d), Some(r), Some(h)) = (
        m(10, big, Method::Diff),
        m(10, big, Method::Rmv),
        m(10, big, Method::Hand),
    ) {
        let full_scale = big >= 1_000_000;
        t.push(Target {
            name: format!(
                "10 changes on {} rows, join + aggregate: vs REFRESH MATERIALIZED VIEW",
                fmt_n(big)
            ),
            goal: "≥ 50× faster".into(),
            measured: format!(
                "DIFF {} ms, RMV {} ms: {} faster",
                fmt_ms(d),
                fmt_ms(r),
                fmt_ratio(r / d)
            ),
            met: full_scale.then_some(r / d >= 50.0),
        });
        t.push(Target {
            name: format!(
                "10 changes on {} rows, join + aggregate: vs hand-written delta",
                fmt_n(big)
            ),
            goal: "≤ 2× the hand-written delta".into(),
            measured: format!(
                "DIFF {} ms, hand {} ms: {}",
                fmt_ms(d),
                fmt_ms(h),
                fmt_ratio(d / h)
            ),
            met: full_scale.then_some(d / h <= 2.0),
        });
    }
    // 2. growth from 100k to 1M at k = 10.
    if let (Some(a), Some(b)) = (m(10, 100_000, Method::Diff), m(10, 1_000_000, Method::Diff)) {
        t.push(Target {
            name: "k = 10, join + aggregate: growth from 100,000 to 1,000,000 rows".into(),
            goal: "< 2×".into(),
            measured: format!("{} ms → {} ms: {}", fmt_ms(a), fmt_ms(b), fmt_ratio(b / a)),
            met: Some(b / a < 2.0),
        });
    }
    // 3. capture overhead.
    if let Some((p, c, _)) = &res.bulk_ms {
        let r = median(c) / median(p);
        t.push(Target {
            name: format!(
                "capture overhead, bulk INSERT … SELECT of {} rows",
                fmt_n(cfg.bulk_rows)
            ),
            goal: "≤ 1.6× the time without triggers".into(),
            measured: format!(
                "{} ms → {} ms: {}",
                fmt_ms(median(p)),
                fmt_ms(median(c)),
                fmt_ratio(r)
            ),
            met: Some(r <= 1.6),
        });
    }
    if let Some((p, c, _, _)) = &res.single_tps {
        let r = median(c) / median(p);
        t.push(Target {
            name: format!(
                "capture overhead, single-row UPDATE throughput, {} clients",
                cfg.clients
            ),
            goal: "≥ 0.75× the throughput without triggers".into(),
            measured: format!(
                "{:.0} tps → {:.0} tps: {}",
                median(p),
                median(c),
                fmt_ratio(r)
            ),
            met: Some(r >= 0.75),
        });
    }
    // 4. adaptive switch.
    if sizes.contains(&big) && res.median("join_agg", big, 1, Method::Diff).is_some() {
        let mut worst = (0.0f64, 0i64, 0i64);
        for ((sc, z, k, meth), v) in &res.refresh {
            if *sc == "join_agg" && *meth == Method::Diff && *k > 0 {
                if let Some(f) = res.median(sc, *z, *k, Method::Full) {
                    let r = median(v) / f;
                    if r > worst.0 {
                        worst = (r, *z, *k);
                    }
                }
            }
        }
        t.push(Target {
            name:
                "adaptive switch to FULL: no k more than 1.2× slower than FULL (join + aggregate)"
                    .into(),
            goal: "≤ 1.2×".into(),
            measured: format!(
                "DIFF with the adaptive switch (full refresh when the window would cost more, crossover learned per stream table): worst DIFF ÷ FULL is {} at k = {} on {} rows",
                fmt_ratio(worst.0),
                fmt_n(worst.2),
                fmt_n(worst.1)
            ),
            met: Some(worst.0 <= 1.2),
        });
    }
    // 5. no-change refresh.
    for &z in sizes {
        if let Some(d) = m(0, z, Method::Diff) {
            t.push(Target {
                name: format!(
                    "refresh that finds no changes, join + aggregate, {} rows",
                    fmt_n(z)
                ),
                goal: "< 1 ms median".into(),
                measured: format!("{} ms", fmt_ms(d)),
                met: Some(d < 1.0),
            });
        }
    }
    // 6. freshness.
    if !res.freshness_ms.is_empty() {
        let med = median(&res.freshness_ms);
        t.push(Target {
            name: "freshness with a 1 s schedule (commit → visible)".into(),
            goal: "median < 1.5 s".into(),
            measured: format!(
                "median {} ms, p99 {} ms ({} samples)",
                fmt_ms(med),
                fmt_ms(percentile(&res.freshness_ms, 99.0)),
                res.freshness_ms.len()
            ),
            met: Some(med < 1500.0),
        });
    }
    t
}
