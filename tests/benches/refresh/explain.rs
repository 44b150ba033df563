//! Planning and execution time of the differential statement (`EXPLAIN ANALYZE`).

use std::time::Instant;

use rand::rngs::StdRng;
use sqlx::{Executor, PgPool, Row};

use crate::refresh_phase::{apply_changes, refresh_one};
use crate::results::{median, ms, BigPlan, Explain, Method, Results};
use crate::scenarios::Scenario;
use crate::Res;

/// Planning and execution time of the differential statement and of the hand-written
/// delta after k changes, from `EXPLAIN (ANALYZE, SUMMARY)` in a rolled-back
/// transaction, and the planning time alone from `EXPLAIN (SUMMARY)`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn explain_point(
    pool: &PgPool,
    res: &mut Results,
    sc: &'static Scenario,
    size: i64,
    k: i64,
    methods: &[Method],
    rng: &mut StdRng,
    round: i32,
) -> Res<()> {
    apply_changes(pool, sc, size, k, rng, round).await?;
    let diff_sql: Option<String> = if methods.contains(&Method::Diff) {
        sqlx::query_scalar(
            "SELECT differential_refresh_sql FROM pgstream.pgs_stream_tables WHERE table_name = 'st_diff'",
        )
        .fetch_one(pool)
        .await?
    } else {
        None
    };
    let mut targets: Vec<(Method, String)> = Vec::new();
    if let Some(s) = diff_sql {
        targets.push((Method::Diff, s));
    }
    targets.push((Method::Hand, sc.hand_refresh.to_string()));
    for (m, sql) in targets {
        let mut plan_only = Vec::new();
        let mut explain_wall = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let rows = sqlx::raw_sql(&format!("EXPLAIN (SUMMARY) {sql}"))
                .fetch_all(pool)
                .await?;
            explain_wall.push(ms(t.elapsed()));
            let text = plan_text(&rows);
            plan_only.push(find_ms(&text, "Planning Time:").unwrap_or(f64::NAN));
        }
        let mut statement = Vec::new();
        for _ in 0..5 {
            let mut conn = pool.acquire().await?;
            conn.execute("BEGIN").await?;
            conn.execute("SET LOCAL pgstream.refreshing = 'on'").await?;
            let t = Instant::now();
            let r = conn.execute(sql.as_str()).await;
            statement.push(ms(t.elapsed()));
            conn.execute("ROLLBACK").await?;
            r?;
            // A statement that recomputes a large query is timed once.
            if statement[0] > 500.0 {
                break;
            }
        }
        let mut conn = pool.acquire().await?;
        conn.execute("BEGIN").await?;
        conn.execute("SET LOCAL pgstream.refreshing = 'on'").await?;
        let rows = sqlx::raw_sql(&format!("EXPLAIN (ANALYZE, SUMMARY, BUFFERS) {sql}"))
            .fetch_all(&mut *conn)
            .await;
        conn.execute("ROLLBACK").await?;
        let text = plan_text(&rows?);
        let window_lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("changes_") || l.contains("hand_buf"))
            .map(|(_, l)| l.trim().to_string())
            .collect();
        res.explains.push(Explain {
            scenario: sc.key,
            size,
            k,
            method: m,
            execution_ms: find_ms(&text, "Execution Time:").unwrap_or(f64::NAN),
            plan_only_ms: median(&plan_only),
            explain_wall_ms: median(&explain_wall),
            statement_ms: median(&statement),
            window_lines,
            plan: text,
        });
    }
    // Consume the changes (not timed).
    for &m in methods {
        refresh_one(pool, sc, m).await?;
    }
    Ok(())
}

/// `EXPLAIN ANALYZE` of the differential statement after k changes (rolled back): where
/// a large window spends its time. Keeps the plan and its nodes executed many times.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn big_window_plan(
    pool: &PgPool,
    res: &mut Results,
    sc: &'static Scenario,
    size: i64,
    k: i64,
    methods: &[Method],
    rng: &mut StdRng,
    round: i32,
) -> Res<()> {
    apply_changes(pool, sc, size, k, rng, round).await?;
    let sql: String = sqlx::query_scalar(
        "SELECT differential_refresh_sql FROM pgstream.pgs_stream_tables WHERE table_name = 'st_diff'",
    )
    .fetch_one(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    conn.execute("BEGIN").await?;
    conn.execute("SET LOCAL pgstream.refreshing = 'on'").await?;
    let rows = sqlx::raw_sql(&format!("EXPLAIN (ANALYZE, SUMMARY) {sql}"))
        .fetch_all(&mut *conn)
        .await;
    conn.execute("ROLLBACK").await?;
    drop(conn);
    let text = plan_text(&rows?);
    let exec = find_ms(&text, "Execution Time:").unwrap_or(f64::NAN);
    // Nodes run once per outer row (loops > 1) with their total time, the heaviest first.
    let mut heavy: Vec<(f64, String)> = text
        .lines()
        .filter_map(|l| {
            let loops: f64 = l
                .split("loops=")
                .nth(1)?
                .trim_end_matches(')')
                .parse()
                .ok()?;
            let t: f64 = l
                .split("actual time=")
                .nth(1)?
                .split("..")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            (loops > 1.0).then(|| (t * loops, l.trim().to_string()))
        })
        .collect();
    heavy.sort_by(|a, b| b.0.total_cmp(&a.0));
    heavy.truncate(3);
    res.big_plans.push(BigPlan {
        scenario: sc.key,
        size,
        k,
        execution_ms: exec,
        heavy,
        plan: text,
    });
    for &m in methods {
        refresh_one(pool, sc, m).await?;
    }
    Ok(())
}

pub(crate) fn plan_text(rows: &[sqlx::postgres::PgRow]) -> String {
    rows.iter()
        .filter_map(|r| r.try_get::<String, _>(0).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn find_ms(text: &str, label: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix(label)
            .and_then(|r| r.trim().trim_end_matches("ms").trim().parse().ok())
    })
}
