//! The refresh phase: refresh time after k changes, per scenario, size and method.

use std::collections::BTreeMap;
use std::time::Instant;

use pgstream::Mode;
use rand::rngs::StdRng;
use rand::SeedableRng;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

use crate::config::Config;
use crate::explain::{big_window_plan, explain_point};
use crate::results::{log, median, ms, Method, Results};
use crate::scenarios::{
    hand_setup_sql, hand_teardown_sql, schema_sql, Scenario, Source, HAND_FUNCTIONS, SCENARIOS,
};
use crate::Res;

pub(crate) async fn refresh_phase(
    cfg: &Config,
    pool: &PgPool,
    url: &str,
    res: &mut Results,
) -> Res<()> {
    pool.execute(HAND_FUNCTIONS).await?;
    let scenarios: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| cfg.queries.iter().any(|q| q == s.key))
        .collect();
    let with_nodes = scenarios
        .iter()
        .any(|s| matches!(s.source, Source::Nodes | Source::NodeInserts));
    let mut rng = StdRng::seed_from_u64(20_261_130);
    for &size in &cfg.sizes {
        let t = Instant::now();
        pool.execute(schema_sql(size, with_nodes).as_str()).await?;
        pool.execute("VACUUM ANALYZE").await?;
        log(format!(
            "size {size}: base tables loaded in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        for sc in &scenarios {
            let t = Instant::now();
            run_scenario(cfg, pool, url, res, sc, size, &mut rng).await?;
            log(format!(
                "size {size}: {} done in {:.1} s",
                sc.key,
                t.elapsed().as_secs_f64()
            ));
        }
    }
    Ok(())
}

pub(crate) async fn apply_changes(
    pool: &PgPool,
    sc: &Scenario,
    size: i64,
    k: i64,
    rng: &mut StdRng,
    round: i32,
) -> Res<()> {
    if k == 0 {
        return Ok(());
    }
    let ids: Vec<i32> = rand::seq::index::sample(rng, size as usize, k as usize)
        .into_iter()
        .map(|i| i as i32 + 1)
        .collect();
    match sc.source {
        Source::Employees => {
            sqlx::query(
                "UPDATE employees SET salary = (30000 + floor(random() * 170000))::numeric(10,2),
                        department_id = 1 + floor(random() * 1000)::int
                 WHERE id = ANY($1)",
            )
            .bind(&ids)
            .execute(pool)
            .await?;
        }
        Source::Nodes => {
            sqlx::query("UPDATE nodes SET name = 'n' || id || '.' || $2 WHERE id = ANY($1)")
                .bind(&ids)
                .bind(round)
                .execute(pool)
                .await?;
        }
        Source::NodeInserts => {
            // k new leaves, each under a random node of the original tree.
            sqlx::query(
                "INSERT INTO nodes (id, parent_id, name)
                 SELECT m.base + g.i, p.parent, 'leaf ' || (m.base + g.i)
                   FROM (SELECT max(id) AS base FROM nodes) m,
                        unnest($1::int[]) WITH ORDINALITY AS p(parent, i)
                   JOIN LATERAL (SELECT p.i AS i) g ON true",
            )
            .bind(&ids)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

pub(crate) async fn refresh_one(pool: &PgPool, sc: &Scenario, m: Method) -> Res<f64> {
    let t = Instant::now();
    match m {
        Method::Diff => {
            pgstream::refresh(pool, "st_diff").await?;
        }
        Method::Full => {
            pgstream::refresh(pool, "st_full").await?;
        }
        Method::Rmv => {
            pool.execute("REFRESH MATERIALIZED VIEW bench_mv").await?;
        }
        Method::Rmvc => {
            pool.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY bench_mv")
                .await?;
        }
        Method::Hand => {
            pool.execute(sc.hand_refresh).await?;
        }
    }
    Ok(ms(t.elapsed()))
}

/// The first refresh on a new connection, as psql, the command line, pg_cron or a
/// recycled pool connection pays it: 10 changes, then DIFF alone on a new session, and
/// `REFRESH MATERIALIZED VIEW` alone on another new session (before the methods that
/// recompute are dropped at large sizes), 3 times in alternating order; the time is
/// the refresh statement's, from the client, once the connection is up. The other
/// methods catch up afterwards.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn new_connection_point(
    pool: &PgPool,
    url: &str,
    res: &mut Results,
    sc: &Scenario,
    size: i64,
    methods: &[Method],
    rng: &mut StdRng,
    round: &mut i32,
) -> Res<()> {
    if !methods.contains(&Method::Diff) {
        return Ok(());
    }
    let with_rmv = methods.contains(&Method::Rmv);
    let (mut diff, mut rmv) = (Vec::new(), Vec::new());
    for rep in 0..3 {
        *round += 1;
        apply_changes(pool, sc, size, 10.min(size), rng, *round).await?;
        let order: &[Method] = match (with_rmv, rep % 2) {
            (false, _) => &[Method::Diff],
            (true, 0) => &[Method::Diff, Method::Rmv],
            (true, _) => &[Method::Rmv, Method::Diff],
        };
        for &m in order {
            let fresh = PgPoolOptions::new().max_connections(1).connect(url).await?;
            fresh.execute("SELECT 1").await?;
            let t = refresh_one(&fresh, sc, m).await?;
            fresh.close().await;
            if m == Method::Diff {
                &mut diff
            } else {
                &mut rmv
            }
            .push(t);
        }
    }
    log(format!(
        "{} n={size}: through a new connection, DIFF refresh {:.2} ms, RMV {} (median of 3)",
        sc.key,
        median(&diff),
        if with_rmv {
            format!("{:.2} ms", median(&rmv))
        } else {
            "not measured".into()
        }
    ));
    res.cold.insert((sc.key, size), median(&diff));
    if with_rmv {
        res.cold_rmv.insert((sc.key, size), median(&rmv));
    }
    for &m in methods {
        refresh_one(pool, sc, m).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_scenario(
    cfg: &Config,
    pool: &PgPool,
    url: &str,
    res: &mut Results,
    sc: &'static Scenario,
    size: i64,
    rng: &mut StdRng,
) -> Res<()> {
    // Set-up: the five ways of maintaining the query.
    let mut methods = Vec::new();
    let t = Instant::now();
    match pgstream::create_stream_table(
        pool,
        &pgstream::spec("st_diff", sc.query, "1h", Mode::Differential)?,
    )
    .await
    {
        Ok(()) => {
            res.creation
                .insert((sc.key, size, Method::Diff), ms(t.elapsed()));
            methods.push(Method::Diff);
            if let Some(ratio) = cfg.full_ratio {
                sqlx::query("SELECT pgstream.set_full_refresh_ratio('st_diff', $1)")
                    .bind(ratio)
                    .execute(pool)
                    .await?;
            }
        }
        Err(e) => {
            let msg = e.to_string();
            log(format!("{}: DIFFERENTIAL rejected: {msg}", sc.key));
            res.rejected.insert(sc.key, msg);
        }
    }
    let t = Instant::now();
    pgstream::create_stream_table(
        pool,
        &pgstream::spec("st_full", sc.query, "1h", Mode::Full)?,
    )
    .await?;
    res.creation
        .insert((sc.key, size, Method::Full), ms(t.elapsed()));
    methods.push(Method::Full);
    let t = Instant::now();
    pool.execute(
        format!(
            "CREATE MATERIALIZED VIEW bench_mv AS {};
             CREATE UNIQUE INDEX bench_mv_key ON bench_mv ({});",
            sc.query, sc.key_cols
        )
        .as_str(),
    )
    .await?;
    res.creation
        .insert((sc.key, size, Method::Rmv), ms(t.elapsed()));
    methods.push(Method::Rmv);
    methods.push(Method::Rmvc);
    let t = Instant::now();
    pool.execute(hand_setup_sql(sc).as_str()).await?;
    res.creation
        .insert((sc.key, size, Method::Hand), ms(t.elapsed()));
    methods.push(Method::Hand);
    pool.execute("VACUUM ANALYZE").await?;

    let mut round = 0i32;
    // Warm-up: one change, every method once, not timed.
    round += 1;
    apply_changes(pool, sc, size, 1, rng, round).await?;
    for &m in &methods {
        refresh_one(pool, sc, m).await?;
    }

    new_connection_point(pool, url, res, sc, size, &methods, rng, &mut round).await?;

    // No changes: only the incremental methods (the others recompute regardless).
    for &m in methods
        .iter()
        .filter(|m| matches!(m, Method::Diff | Method::Hand))
    {
        let mut v = Vec::new();
        for _ in 0..(cfg.reps * 3).max(15) {
            v.push(refresh_one(pool, sc, m).await?);
        }
        res.refresh.insert((sc.key, size, 0, m), v);
    }

    explain_point(pool, res, sc, size, 0, &methods, rng, round).await?;

    // On large tables the methods that recompute the whole query (their cost does not
    // depend on k) are measured at `large_ks` only, first; then they are dropped.
    let restricted = size >= cfg.large_size && !cfg.large_ks.is_empty();
    let recomputes = |m: Method| {
        matches!(m, Method::Full | Method::Rmv | Method::Rmvc)
            || (m == Method::Diff && sc.source == Source::Nodes)
    };
    let mut ks: Vec<i64> = cfg
        .ks
        .iter()
        .copied()
        .filter(|&k| k >= 1 && k <= size)
        .collect();
    if restricted {
        ks.sort_by_key(|k| (!cfg.large_ks.contains(k), *k));
        res.restricted.insert((sc.key, size));
    }
    let last_large = ks.iter().rposition(|k| cfg.large_ks.contains(k));
    // The plan of a large window: the largest k up to 10,000.
    let big_k = ks.iter().copied().filter(|&k| k <= 10_000).max();
    for (ki, &k) in ks.iter().enumerate() {
        let mut times: BTreeMap<Method, Vec<f64>> = BTreeMap::new();
        for rep in 0..cfg.reps {
            // Slow points (full recomputations of large tables) stop at 3 repetitions.
            if rep >= 3
                && times
                    .values()
                    .any(|v| median(v) > if cfg.quick { 500.0 } else { 1500.0 })
            {
                break;
            }
            round += 1;
            apply_changes(pool, sc, size, k, rng, round).await?;
            let n = methods.len();
            for i in 0..n {
                let m = methods[(i + rep) % n];
                let dt = refresh_one(pool, sc, m).await?;
                times.entry(m).or_default().push(dt);
            }
        }
        let summary: Vec<String> = times
            .iter()
            .map(|(m, v)| format!("{} {:.2}", m.short(), median(v)))
            .collect();
        log(format!(
            "{} n={size} k={k}: {} (ms, median of {})",
            sc.key,
            summary.join(", "),
            times.values().next().map_or(0, |v| v.len())
        ));
        for (m, v) in times {
            res.refresh.insert((sc.key, size, k, m), v);
        }
        if k == 10 {
            round += 1;
            explain_point(pool, res, sc, size, k, &methods, rng, round).await?;
        }
        if Some(k) == big_k && methods.contains(&Method::Diff) {
            round += 1;
            big_window_plan(pool, res, sc, size, k, &methods, rng, round).await?;
        }
        if restricted && Some(ki) == last_large {
            for m in methods.clone() {
                if recomputes(m) {
                    verify(pool, res, sc, size, m).await?;
                    drop_method(pool, sc, m).await?;
                    methods.retain(|x| *x != m);
                }
            }
        }
    }

    // Equivalence: every maintained copy equals the query (both directions of EXCEPT ALL).
    for m in methods.clone() {
        verify(pool, res, sc, size, m).await?;
    }
    for m in methods {
        drop_method(pool, sc, m).await?;
    }
    Ok(())
}

pub(crate) fn method_table(m: Method) -> &'static str {
    match m {
        Method::Diff => "st_diff",
        Method::Full => "st_full",
        Method::Rmv | Method::Rmvc => "bench_mv",
        Method::Hand => "hand_t",
    }
}

/// Compares a maintained copy with the query (both directions of `EXCEPT ALL`).
pub(crate) async fn verify(
    pool: &PgPool,
    res: &mut Results,
    sc: &'static Scenario,
    size: i64,
    m: Method,
) -> Res<()> {
    if m == Method::Rmvc {
        return Ok(()); // the same matview as RMV
    }
    let table = method_table(m);
    let q = format!(
        "SELECT (SELECT count(*) FROM (({q}) EXCEPT ALL SELECT {c} FROM {table}) a)
              + (SELECT count(*) FROM (SELECT {c} FROM {table} EXCEPT ALL ({q})) b)",
        q = sc.query,
        c = sc.columns
    );
    let diff: i64 = sqlx::query_scalar(&q).fetch_one(pool).await?;
    if diff != 0 {
        log(format!(
            "WARNING: {} n={size}: {} differs from the query in {diff} rows",
            sc.key,
            m.label()
        ));
    }
    res.verify.push((sc.key, size, m, diff));
    Ok(())
}

pub(crate) async fn drop_method(pool: &PgPool, sc: &Scenario, m: Method) -> Res<()> {
    match m {
        Method::Diff | Method::Full => {
            pgstream::drop_stream_table(pool, method_table(m)).await?;
        }
        Method::Rmv => {
            pool.execute("DROP MATERIALIZED VIEW IF EXISTS bench_mv")
                .await?;
        }
        Method::Rmvc => {}
        Method::Hand => {
            pool.execute(hand_teardown_sql(sc).as_str()).await?;
        }
    }
    Ok(())
}
