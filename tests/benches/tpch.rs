//! `cargo bench --bench tpch`: the 22 TPC-H queries, as the specification writes them,
//! refreshed after rounds of changes, beside `REFRESH MATERIALIZED VIEW` and pgstream
//! FULL on the same changes, in the same run.
//!
//! For each scale factor (`PGS_TPCH_SFS`, default `0.1,1`), in a fresh database on a
//! throwaway cluster (or the server of `DATABASE_URL`): data from `tpchgen`, the
//! primary keys and the foreign-key indexes (TPC-H kits for PostgreSQL create them;
//! `PGS_TPCH_FK_INDEXES=0` leaves them out), then per query a DIFFERENTIAL stream table
//! (creation timed), a FULL one and a materialized view. Then `PGS_TPCH_ROUNDS` (3)
//! rounds: RF1 inserts about 0.1 % of the orders with their lineitems, RF2 deletes as
//! many, updates touch about 0.1 % of orders, parts, partsupps and customers, 0.05 % of
//! lineitems, a supplier and a nation (`tpch::round_sql_with`, one row in 1,009; each
//! round other rows); `ANALYZE`; then per query, one after the other on one connection
//! (so the first round pays each session's planning, as an application's first refresh
//! does): the DIFFERENTIAL refresh, the FULL refresh, `REFRESH MATERIALIZED VIEW`.
//! After the last round every stream table is compared with its query. Reported: the
//! median over the rounds, the first round's DIFFERENTIAL refresh on its own, and the
//! strategy.
//!
//! `PGS_TPCH_QUERIES` (e.g. `5,7,8`) measures only those queries (then nothing is
//! written into the docs: the table would be partial). `PGS_TPCH_KEEP=1` keeps each
//! database (its name is logged) for `EXPLAIN` of the refresh statements afterwards.
//!
//! It prints a Markdown section and, unless `PGS_TPCH_PRINT_ONLY` is set, writes it into
//! `docs/BENCHMARKS.md` (between `<!-- begin tpch -->` and `<!-- end tpch -->`) with one
//! plot per scale factor in `docs/bench/tpch_sf<sf>.svg`.
#![allow(missing_docs)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use pgstream::{Mode, RuntimeHandle};
use pgstream_tests::bench_doc::env_or;
use pgstream_tests::tpch;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgPool};

type Res<T> = Result<T, pgstream_tests::bench_doc::BenchError>;

fn log(msg: impl AsRef<str>) {
    eprintln!("[tpch] {}", msg.as_ref());
}

fn main() {
    pgstream_tests::bench_doc::bench_main("tpch", run);
}

/// One query at one scale factor.
struct QueryResult {
    n: usize,
    strategy: String,
    create_ms: f64,
    diff_ms: Vec<f64>,
    full_ms: Vec<f64>,
    rmv_ms: Vec<f64>,
    differs: i64,
}

struct ScaleResult {
    sf: f64,
    load_s: f64,
    lineitems: i64,
    images: String,
    queries: Vec<QueryResult>,
}

async fn run() -> Res<()> {
    let sfs: Vec<f64> = std::env::var("PGS_TPCH_SFS")
        .unwrap_or_else(|_| "0.1,1".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds: u64 = env_or("PGS_TPCH_ROUNDS", 3);
    let fk = std::env::var("PGS_TPCH_FK_INDEXES").map_or(true, |v| v != "0");
    let subset: Option<Vec<usize>> = std::env::var("PGS_TPCH_QUERIES").ok().map(|v| {
        v.split(',')
            .filter_map(|s| s.trim().trim_start_matches(['Q', 'q']).parse().ok())
            .collect()
    });
    let keep = std::env::var("PGS_TPCH_KEEP").is_ok_and(|v| v == "1");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs");

    let (guard, admin_url) = match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => (None, u),
        _ => {
            let (guard, url) = pgstream_tests::embedded_cluster().await?;
            (Some(guard), url)
        }
    };
    let mut results = Vec::new();
    let mut server = String::new();
    for (i, &sf) in sfs.iter().enumerate() {
        let name = format!("pgstream_tpch_{}_{i}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        // A cartesian product in a refresh fails instead of filling the disk.
        admin
            .execute(format!("ALTER DATABASE {name} SET temp_file_limit = '4GB'").as_str())
            .await?;
        let url = pgstream_tests::db::replace_database(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await?;
        if server.is_empty() {
            server = sqlx::query_scalar("SELECT current_setting('server_version')")
                .fetch_one(&pool)
                .await?;
        }
        let r = measure(&pool, &url, sf, rounds, fk, subset.as_deref()).await;
        pool.close().await;
        if keep {
            // The next round's changes, to apply by hand (in a transaction, then roll back).
            let file = std::env::temp_dir().join(format!("{name}_next_round.sql"));
            let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
                .fetch_one(&mut sqlx::PgConnection::connect(&url).await?)
                .await?;
            std::fs::write(
                &file,
                tpch::round_sql_with(rounds, (orders / 1000).max(1) as u64, 1009 + 2 * rounds),
            )?;
            log(format!(
                "kept database {name} ({url}); next round's changes in {}",
                file.display()
            ));
        } else {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
        let _ = admin.close().await;
        results.push(r?);
    }
    drop(guard);

    let section = markdown(&results, rounds, fk, &server);
    println!("{section}");
    if std::env::var_os("PGS_TPCH_PRINT_ONLY").is_none() && subset.is_none() {
        std::fs::create_dir_all(out.join("bench"))?;
        for r in &results {
            std::fs::write(out.join("bench").join(plot_name(r.sf)), svg(r))?;
        }
        let path = out.join("BENCHMARKS.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let doc = pgstream_tests::bench_doc::replace_section(
            &doc,
            "tpch",
            &pgstream_tests::bench_doc::wrap("tpch", &section),
        );
        std::fs::write(&path, doc)?;
        log(format!("wrote {}", path.display()));
    }
    Ok(())
}

fn plot_name(sf: f64) -> String {
    format!("tpch_sf{}.svg", sf.to_string().replace('.', "_"))
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

async fn measure(
    pool: &PgPool,
    url: &str,
    sf: f64,
    rounds: u64,
    fk: bool,
    subset: Option<&[usize]>,
) -> Res<ScaleResult> {
    let t = Instant::now();
    {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        tpch::load(&mut conn, sf).await?;
        if fk {
            sqlx::raw_sql(tpch::FOREIGN_KEY_INDEXES)
                .execute(&mut conn)
                .await?;
        }
        conn.close().await?;
    }
    let load_s = t.elapsed().as_secs_f64();
    let lineitems: i64 = sqlx::query_scalar("SELECT count(*) FROM lineitem")
        .fetch_one(pool)
        .await?;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(pool)
        .await?;
    log(format!(
        "scale factor {sf}: {lineitems} lineitems loaded in {load_s:.1} s"
    ));
    // One connection for every refresh: the first round pays each session's planning.
    let refresher = PgPoolOptions::new().max_connections(1).connect(url).await?;
    let h = RuntimeHandle::new(refresher.clone());
    let queries: Vec<_> = tpch::queries()
        .into_iter()
        .filter(|(n, _)| subset.is_none_or(|s| s.contains(n)))
        .collect();
    let mut results = Vec::new();
    for (n, q) in &queries {
        let t = Instant::now();
        h.create_stream_table(&format!("q{n:02}"), q, "1h", Mode::Differential)
            .await?;
        let create_ms = ms_since(t);
        h.create_stream_table(&format!("f{n:02}"), q, "1h", Mode::Full)
            .await?;
        pool.execute(format!("CREATE MATERIALIZED VIEW mv{n:02} AS {q}").as_str())
            .await?;
        log(format!("Q{n:02} created in {create_ms:.0} ms"));
        results.push(QueryResult {
            n: *n,
            strategy: String::new(),
            create_ms,
            diff_ms: Vec::new(),
            full_ms: Vec::new(),
            rmv_ms: Vec::new(),
            differs: 0,
        });
    }
    let mut images = String::new();
    for round in 0..rounds {
        let before = buffered(pool).await?;
        sqlx::raw_sql(&tpch::round_sql_with(
            round,
            (orders / 1000).max(1) as u64,
            1009 + 2 * round,
        ))
        .execute(pool)
        .await?;
        if round == 0 {
            images = buffered(pool)
                .await?
                .iter()
                .zip(before)
                .map(|((t, n), (_, b))| format!("{t} {}", n - b))
                .collect::<Vec<_>>()
                .join(", ");
        }
        pool.execute("ANALYZE").await?;
        for r in results.iter_mut() {
            let t = Instant::now();
            h.refresh(&format!("q{:02}", r.n)).await?;
            r.diff_ms.push(ms_since(t));
            let t = Instant::now();
            h.refresh(&format!("f{:02}", r.n)).await?;
            r.full_ms.push(ms_since(t));
            let t = Instant::now();
            refresher
                .execute(format!("REFRESH MATERIALIZED VIEW mv{:02}", r.n).as_str())
                .await?;
            r.rmv_ms.push(ms_since(t));
        }
        log(format!(
            "round {round} done: DIFF ms {}",
            results
                .iter()
                .map(|r| format!("Q{} {:.1}", r.n, r.diff_ms.last().copied().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for ((n, q), r) in queries.iter().zip(results.iter_mut()) {
        let name = format!("q{n:02}");
        r.strategy = sqlx::query_scalar::<_, Option<String>>(
            "SELECT strategy FROM pgstream.pgs_status() WHERE name = $1",
        )
        .bind(&name)
        .fetch_one(pool)
        .await?
        .unwrap_or_default();
        let cols: String = sqlx::query_scalar(
            "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
              WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
                AND attname !~ '^__pgs'",
        )
        .bind(&name)
        .fetch_one(pool)
        .await?;
        for st in [name.clone(), format!("f{n:02}")] {
            r.differs += pgstream_tests::compare::difference(pool, q, &st, &cols).await;
        }
    }
    refresher.close().await;
    Ok(ScaleResult {
        sf,
        load_s,
        lineitems,
        images,
        queries: results,
    })
}

/// Rows in each source's change buffer, by table name.
async fn buffered(pool: &PgPool) -> Res<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for t in [
        "lineitem", "orders", "partsupp", "part", "customer", "supplier", "nation", "region",
    ] {
        let oid: i64 = sqlx::query_scalar("SELECT $1::regclass::oid::int8")
            .bind(t)
            .fetch_one(pool)
            .await?;
        // A source no measured query reads (with PGS_TPCH_QUERIES) has no buffer.
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("pgstream_changes.changes_{oid}"))
            .fetch_one(pool)
            .await?;
        let n: i64 = if exists {
            sqlx::query_scalar(&format!(
                "SELECT count(*) FROM pgstream_changes.changes_{oid}"
            ))
            .fetch_one(pool)
            .await?
        } else {
            0
        };
        out.push((t.to_string(), n));
    }
    Ok(out)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn geomean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x.ln(), n + 1));
    (s / n.max(1) as f64).exp()
}

fn markdown(results: &[ScaleResult], rounds: u64, fk: bool, server: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## TPC-H (`cargo bench --bench tpch`)\n\n\
         The 22 queries as the TPC-H specification writes them (comma joins, conditions in \
         `WHERE`, the validation parameters; `pgstream-core/tests/tpch/queries.sql`), each as \
         a DIFFERENTIAL stream table, a FULL one and a materialized view, over data from \
         `tpchgen` with the primary keys{}. PostgreSQL {server}. {rounds} rounds: RF1 inserts \
         about 0.1 % of the orders with their lineitems, RF2 deletes as many, updates touch \
         about 0.1 % of orders, parts, partsupps and customers, 0.05 % of lineitems, a supplier \
         and a nation; `ANALYZE`; then each query's DIFFERENTIAL refresh, FULL refresh and \
         `REFRESH MATERIALIZED VIEW` (RMV) on one connection. Times are medians over the \
         rounds (wall clock as the application sees it); \"first\" is the first round's \
         DIFFERENTIAL refresh, which pays the session's planning of its statements. Creation \
         includes the initial population. Every stream table equal to its query at the end: \
         the last column counts differing rows (must be 0).\n",
        if fk {
            " and indexes on the foreign keys"
        } else {
            " only (no foreign-key indexes)"
        }
    );
    for r in results {
        let _ = writeln!(
            s,
            "### Scale factor {} ({} lineitems, loaded in {:.0} s)\n\nCaptured row images in \
             the first round (an update is two): {}.\n\n\
             | query | strategy | DIFF | first | FULL | RMV | RMV ÷ DIFF | creation | differing rows |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|",
            r.sf, r.lineitems, r.load_s, r.images
        );
        for q in &r.queries {
            let d = median(&q.diff_ms);
            let _ = writeln!(
                s,
                "| Q{} | {} | {} | {} | {} | {} | {:.2}× | {} | {} |",
                q.n,
                q.strategy.replace('|', "\\|"),
                fmt_ms(d),
                fmt_ms(q.diff_ms.first().copied().unwrap_or(f64::NAN)),
                fmt_ms(median(&q.full_ms)),
                fmt_ms(median(&q.rmv_ms)),
                median(&q.rmv_ms) / d,
                fmt_ms(q.create_ms),
                q.differs
            );
        }
        let g = geomean(
            r.queries
                .iter()
                .map(|q| median(&q.rmv_ms) / median(&q.diff_ms)),
        );
        let n = r.queries.len();
        let faster = r
            .queries
            .iter()
            .filter(|q| median(&q.rmv_ms) > median(&q.diff_ms))
            .count();
        let _ = writeln!(
            s,
            "\nGeometric mean of RMV ÷ DIFF over the {n}: **{g:.2}×** (target 30×); {faster} of {n} \
             refresh faster than RMV (target: all).\n\n![TPC-H SF {}](bench/{})\n",
            r.sf,
            plot_name(r.sf)
        );
    }
    s
}

/// Horizontal bars per query (logarithmic axis): DIFF, FULL and RMV medians.
fn svg(r: &ScaleResult) -> String {
    const W: f64 = 720.0;
    const L: f64 = 50.0;
    const R: f64 = 20.0;
    const T: f64 = 40.0;
    const ROW: f64 = 21.0;
    let h = T + ROW * r.queries.len() as f64 + 40.0;
    let vals: Vec<[f64; 3]> = r
        .queries
        .iter()
        .map(|q| [median(&q.diff_ms), median(&q.full_ms), median(&q.rmv_ms)])
        .collect();
    let all = vals.iter().flatten().filter(|v| v.is_finite() && **v > 0.0);
    let lo = all.clone().fold(f64::MAX, |a, &b| a.min(b)).log10().floor();
    let hi = all
        .fold(f64::MIN, |a, &b| a.max(b))
        .log10()
        .ceil()
        .max(lo + 1.0);
    let x = |v: f64| L + (v.max(1e-9).log10() - lo) / (hi - lo) * (W - L - R);
    let colors = ["#1f77b4", "#ff7f0e", "#7f7f7f"];
    let names = ["DIFFERENTIAL", "FULL", "REFRESH MATERIALIZED VIEW"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{L}\" y=\"16\" font-size=\"13\">TPC-H scale factor {}: refresh after a round of changes (ms, log scale)</text>",
        r.sf
    );
    for (i, name) in names.iter().enumerate() {
        let _ = write!(
            s,
            "<rect x=\"{}\" y=\"24\" width=\"10\" height=\"8\" fill=\"{}\"/><text x=\"{}\" y=\"32\">{name}</text>",
            L + i as f64 * 190.0,
            colors[i],
            L + i as f64 * 190.0 + 14.0
        );
    }
    let mut e = lo;
    while e <= hi {
        let xv = x(10f64.powf(e));
        let _ = write!(
            s,
            "<line x1=\"{xv:.1}\" y1=\"{T}\" x2=\"{xv:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{xv:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            h - 30.0,
            h - 16.0,
            fmt_ms(10f64.powf(e))
        );
        e += 1.0;
    }
    for (i, (q, v)) in r.queries.iter().zip(&vals).enumerate() {
        let y = T + ROW * i as f64;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">Q{}</text>",
            L - 6.0,
            y + 14.0,
            q.n
        );
        for (k, val) in v.iter().enumerate() {
            if val.is_finite() {
                let _ = write!(
                    s,
                    "<rect x=\"{L}\" y=\"{:.1}\" width=\"{:.1}\" height=\"5.5\" fill=\"{}\"/>",
                    y + 3.0 + k as f64 * 6.0,
                    (x(*val) - L).max(1.0),
                    colors[k]
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
