//! Output: `BENCHMARKS.md`, the SVG plots and `results.csv`; number formatting.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::config::Config;
use crate::markdown::markdown;
use crate::results::{log, median, Results, METHODS};
use crate::scenarios::SCENARIOS;
use crate::svg::svg_plot;
use crate::Res;

pub(crate) fn fmt_ms(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x < 1.0 {
        format!("{x:.3}")
    } else if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

pub(crate) fn fmt_ratio(x: f64) -> String {
    if x.is_nan() || x.is_infinite() {
        "–".into()
    } else if x < 0.01 {
        "<0.01×".into()
    } else if x < 10.0 {
        format!("{x:.2}×")
    } else {
        format!("{x:.0}×")
    }
}

pub(crate) fn fmt_n(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn write_outputs(cfg: &Config, res: &Results) -> Res<()> {
    let bench_dir = cfg.out.join("bench");
    std::fs::create_dir_all(&bench_dir)?;

    // CSV of every sample.
    let mut csv = String::from("query,rows,k,method,repetitions,median_ms,min_ms,max_ms\n");
    for ((sc, size, k, m), v) in &res.refresh {
        let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        writeln!(
            csv,
            "{sc},{size},{k},{},{},{:.4},{min:.4},{max:.4}",
            m.short(),
            v.len(),
            median(v)
        )?;
    }
    std::fs::write(bench_dir.join("results.csv"), csv)?;

    // Plots.
    let mut plots: BTreeMap<&str, (Option<String>, Option<String>)> = BTreeMap::new();
    let sizes: Vec<i64> = {
        let mut s: Vec<i64> = res.refresh.keys().map(|(_, z, _, _)| *z).collect();
        s.sort();
        s.dedup();
        s
    };
    let max_size = sizes.last().copied();
    for sc in SCENARIOS {
        let Some(max_size) = max_size else { break };
        if !res.refresh.keys().any(|(s, _, _, _)| *s == sc.key) {
            continue;
        }
        let mut series_k = Vec::new();
        let mut series_n = Vec::new();
        for m in METHODS {
            let pts_k: Vec<(f64, f64)> = res
                .refresh
                .iter()
                .filter(|((s, z, k, mm), _)| *s == sc.key && *z == max_size && *k > 0 && *mm == m)
                .map(|((_, _, k, _), v)| (*k as f64, median(v)))
                .collect();
            if !pts_k.is_empty() {
                series_k.push((m, pts_k));
            }
            let pts_n: Vec<(f64, f64)> = res
                .refresh
                .iter()
                .filter(|((s, _, k, mm), _)| *s == sc.key && *k == 10 && *mm == m)
                .map(|((_, z, _, _), v)| (*z as f64, median(v)))
                .collect();
            if !pts_n.is_empty() {
                series_n.push((m, pts_n));
            }
        }
        let fk = format!("{}_vs_k.svg", sc.key);
        std::fs::write(
            bench_dir.join(&fk),
            svg_plot(
                &format!(
                    "{}: refresh time vs changes k ({} rows)",
                    sc.key,
                    fmt_n(max_size)
                ),
                "changes k",
                &series_k,
            ),
        )?;
        let mut e = (Some(fk), None);
        if sizes.len() > 1 {
            let fnn = format!("{}_vs_size.svg", sc.key);
            std::fs::write(
                bench_dir.join(&fnn),
                svg_plot(
                    &format!("{}: refresh time vs table size (k = 10)", sc.key),
                    "rows in the source",
                    &series_n,
                ),
            )?;
            e.1 = Some(fnn);
        }
        plots.insert(sc.key, e);
    }

    // Plans as evidence.
    for ex in &res.explains {
        if Some(ex.size) == max_size {
            std::fs::write(
                bench_dir.join(format!(
                    "plan_{}_{}_k{}.txt",
                    ex.scenario,
                    ex.method.short().to_lowercase(),
                    ex.k
                )),
                &ex.plan,
            )?;
        }
    }

    for bp in &res.big_plans {
        if Some(bp.size) == max_size {
            std::fs::write(
                bench_dir.join(format!("plan_{}_diff_k{}.txt", bp.scenario, bp.k)),
                &bp.plan,
            )?;
        }
    }
    let mut md = markdown(cfg, res, &sizes, &plots);
    // The sections of the scale, freshness and TPC-H benchmarks (`cargo bench --bench
    // scale`, `--bench freshness`, `--bench tpch`) are theirs: kept.
    let previous = std::fs::read_to_string(cfg.out.join("BENCHMARKS.md")).unwrap_or_default();
    for name in ["scale", "freshness", "tpch"] {
        if let Some(section) = pgstream_tests::bench_doc::section(&previous, name) {
            md = pgstream_tests::bench_doc::replace_section(&md, name, &section);
        }
    }
    std::fs::write(cfg.out.join("BENCHMARKS.md"), md)?;
    log(format!(
        "wrote {} and {}",
        cfg.out.join("BENCHMARKS.md").display(),
        bench_dir.display()
    ));
    Ok(())
}
