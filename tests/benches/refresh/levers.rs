//! Observations drawn from the measurements, for `BENCHMARKS.md`.

use std::fmt::Write as _;

use crate::report::{fmt_ms, fmt_n};
use crate::results::{BigPlan, Method, Results};

/// Observations drawn from the measurements (the numbers are from this run).
pub(crate) fn levers_text(res: &Results, sizes: &[i64]) -> String {
    let mut s = String::new();
    let big = sizes.iter().copied().max().unwrap_or(0);
    let _ = writeln!(s, "What the figures point to:\n");
    let breakdown = |k: i64| -> Vec<String> {
        res.explains
            .iter()
            .filter(|e| e.size == big && e.method == Method::Diff && e.k == k)
            .map(|e| {
                let r = res
                    .median(e.scenario, e.size, e.k, e.method)
                    .unwrap_or(f64::NAN);
                format!(
                    "{}: refresh {} = statement {} (parse + plan {}, planner {}; execution {}) + wrapper {}",
                    e.scenario,
                    fmt_ms(r),
                    fmt_ms(e.statement_ms),
                    fmt_ms(e.explain_wall_ms),
                    fmt_ms(e.plan_only_ms),
                    fmt_ms(e.execution_ms),
                    if r >= e.statement_ms {
                        fmt_ms(r - e.statement_ms)
                    } else {
                        "≈0".into()
                    }
                )
            })
            .collect()
    };
    let b10 = breakdown(10);
    if !b10.is_empty() {
        let _ = writeln!(
            s,
            "1. **Plan caching.** At k = 10 on {} rows (ms):\n{}\n\n   `statement` is the differential \
             statement run on its own with `EXPLAIN ANALYZE`, which parses and plans it each time. \
             A refresh runs it from the stream table's generated PL/pgSQL function, where each \
             session plans it once, so the refresh time above is less than parse + plan + \
             execution. The wrapper (lock, one catalog read, drift check, window count, statistics; \
             the buffer trims are static statements in the generated function) is small on a \
             warm session. A new session pays to parse and plan every statement once and to load \
             its relation and catalog caches (the refresh through a new connection, under each \
             table): spread over the first touch of each relation, function and operator rather \
             than any one statement, about two thirds of it in the generated function \
             (docs/ARCHITECTURE.md, \"Refresh\").",
            fmt_n(big),
            b10.iter()
                .map(|x| format!("   - {x}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let b0 = breakdown(0);
    if !b0.is_empty() {
        let _ = writeln!(
            s,
            "2. **No-change refresh.** With an empty window, {} rows (ms):\n{}\n\n   A refresh does not run \
             the statement when every window is empty: the generated function counts the windows \
             first and returns (the frontiers stay). The refresh time above is that path: lock, \
             catalog and drift checks, the count, statistics.",
            fmt_n(big),
            b0.iter()
                .map(|x| format!("   - {x}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let _ = writeln!(
        s,
        "3. **The buffer window scan.** At k = 10 the scans of the change buffers take \
         microseconds (the scan lines above): each refresh trims the buffers, so they hold little \
         more than the window. The window scan is not a lever at these sizes; it grows when a \
         consumer lags behind, because a buffer keeps its rows until every stream table that reads \
         the source has passed them."
    );
    let big_plans: Vec<&BigPlan> = res.big_plans.iter().filter(|b| b.size == big).collect();
    let mut ev = String::new();
    for b in &big_plans {
        let r = res
            .median(b.scenario, b.size, b.k, Method::Diff)
            .unwrap_or(f64::NAN);
        let _ = writeln!(
            ev,
            "   - {} (k = {}, refresh {} ms, execution {} ms; plan `bench/plan_{}_diff_k{}.txt`), heaviest repeated nodes (loops × time per loop):",
            b.scenario,
            fmt_n(b.k),
            fmt_ms(r),
            fmt_ms(b.execution_ms),
            b.scenario,
            b.k
        );
        let _ = writeln!(ev, "     ```");
        for (t, l) in &b.heavy {
            let _ = writeln!(ev, "     {:>9.1} ms  {}", t, l);
        }
        let _ = writeln!(ev, "     ```");
    }
    let _ = writeln!(
        s,
        "4. **Large windows.** See the crossover table: past it, a differential refresh would be \
         slower than FULL, and the adaptive switch runs a full refresh instead (DIFF above is \
         measured with it). The plans of a large window on {} rows show where the time goes:\n{}\n   \
         The LEFT JOIN's dangling-row term sums the window per join key and joins those sums by \
         index, with match counts capped at the change's weight + 1 (it was a correlated sum over \
         the window per preserved row, quadratic in k). What remains is per-row work: index \
         lookups per changed key, and for the insert-only tree one row-id probe per new row.",
        fmt_n(big),
        ev
    );
    s
}
