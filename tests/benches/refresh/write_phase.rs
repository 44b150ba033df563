//! The write phase: the overhead of capture on UPDATE throughput and bulk INSERT.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgstream::Mode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, Executor, PgPool};

use crate::config::Config;
use crate::results::{log, ms, Results};
use crate::Res;

pub(crate) const W_TABLES: &str = "
DROP TABLE IF EXISTS w_plain, w_cap, w_row, b_plain, b_cap, b_row, w_rowbuf, b_rowbuf CASCADE;
CREATE TABLE w_plain (id int PRIMARY KEY, name text NOT NULL, department_id int NOT NULL, salary numeric(10,2) NOT NULL);
CREATE TABLE w_cap (LIKE w_plain INCLUDING ALL);
CREATE TABLE w_row (LIKE w_plain INCLUDING ALL);
CREATE TABLE b_plain (id int PRIMARY KEY, name text NOT NULL, department_id int NOT NULL, salary numeric(10,2) NOT NULL);
CREATE TABLE b_cap (LIKE b_plain INCLUDING ALL);
CREATE TABLE b_row (LIKE b_plain INCLUDING ALL);
";

/// The alternative to pgstream's statement-level capture (transition tables, one
/// INSERT per statement and image kind): a row-level trigger that inserts each image
/// into a buffer of the same layout as pgstream's (identity change id, xid, weight,
/// the columns, no index).
pub(crate) fn row_capture_sql(table: &str) -> String {
    format!(
        "CREATE TABLE {table}buf (__pgs_change_id bigint GENERATED ALWAYS AS IDENTITY,
    __pgs_xid xid8 NOT NULL DEFAULT pg_current_xact_id(), __pgs_w smallint NOT NULL,
    id int, name text, department_id int, salary numeric(10,2));
CREATE FUNCTION {table}_cap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO {table}buf (__pgs_w, id, name, department_id, salary)
    VALUES (-1, OLD.id, OLD.name, OLD.department_id, OLD.salary);
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    INSERT INTO {table}buf (__pgs_w, id, name, department_id, salary)
    VALUES (1, NEW.id, NEW.name, NEW.department_id, NEW.salary);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER {table}_cap AFTER INSERT OR UPDATE OR DELETE ON {table}
  FOR EACH ROW EXECUTE FUNCTION {table}_cap();"
    )
}

pub(crate) async fn write_phase(
    cfg: &Config,
    pool: &PgPool,
    url: &str,
    bindir: Option<&Path>,
    res: &mut Results,
) -> Res<()> {
    pool.execute(W_TABLES).await?;
    pool.execute("DROP FUNCTION IF EXISTS w_row_cap(), b_row_cap()")
        .await?;
    for t in ["w_row", "b_row"] {
        pool.execute(row_capture_sql(t).as_str()).await?;
    }
    for t in ["w_plain", "w_cap", "w_row"] {
        pool.execute(
            format!(
                "INSERT INTO {t} SELECT g, 'emp ' || g, 1 + g % 1000, 30000 + g % 170000
                 FROM generate_series(1, {}) g",
                cfg.write_rows
            )
            .as_str(),
        )
        .await?;
    }
    pool.execute("TRUNCATE w_rowbuf").await?;
    // The capture triggers of pgstream come with a stream table over the source.
    for (st, src) in [("w_stats", "w_cap"), ("b_stats", "b_cap")] {
        pgstream::create_stream_table(
            pool,
            &pgstream::spec(
                st,
                &format!(
                    "SELECT department_id, COUNT(*) AS n, SUM(salary) AS total FROM {src} GROUP BY department_id"
                ),
                "1h",
                Mode::Differential,
            )?,
        )
        .await?;
    }
    pool.execute("VACUUM ANALYZE").await?;

    // Single-row UPDATEs, several clients.
    let pgbench = find_pgbench(bindir);
    let script_dir = std::env::temp_dir().join(format!("pgs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&script_dir)?;
    let mut plain = Vec::new();
    let mut cap = Vec::new();
    let mut row = Vec::new();
    for run in 0..cfg.write_runs {
        for (table, out) in [
            ("w_plain", &mut plain),
            ("w_cap", &mut cap),
            ("w_row", &mut row),
        ] {
            let tps = match &pgbench {
                Some(pb) => pgbench_run(pb, &script_dir, url, table, cfg).await?,
                None => tokio_update_loop(url, table, cfg).await?,
            };
            log(format!(
                "single-row UPDATE on {table} run {run}: {tps:.0} tps"
            ));
            out.push(tps);
            // Keep the buffer from growing across runs: consume and trim it.
            if table == "w_cap" {
                pgstream::refresh(pool, "w_stats").await?;
            }
            if table == "w_row" {
                pool.execute("TRUNCATE w_rowbuf").await?;
            }
            pool.execute(format!("VACUUM {table}").as_str()).await?;
        }
    }
    let tool = match &pgbench {
        Some(pb) => format!(
            "pgbench ({}) -n -c {} -j 2 -T {} with `\\set id random(1, {})` + `UPDATE <table> SET salary = salary + 1 WHERE id = :id`",
            pb.display(),
            cfg.clients,
            cfg.write_secs,
            cfg.write_rows
        ),
        None => format!(
            "tokio loop, {} connections, {} s, `UPDATE <table> SET salary = salary + 1 WHERE id = $1` with a random id",
            cfg.clients, cfg.write_secs
        ),
    };
    res.single_tps = Some((plain, cap, row, tool));

    // Bulk INSERT ... SELECT.
    let mut bplain = Vec::new();
    let mut bcap = Vec::new();
    let mut brow = Vec::new();
    for run in 0..cfg.write_runs {
        for (table, out) in [
            ("b_plain", &mut bplain),
            ("b_cap", &mut bcap),
            ("b_row", &mut brow),
        ] {
            let t = Instant::now();
            pool.execute(
                format!(
                    "INSERT INTO {table} SELECT g, 'emp ' || g, 1 + g % 1000, 30000 + g % 170000
                     FROM generate_series(1, {}) g",
                    cfg.bulk_rows
                )
                .as_str(),
            )
            .await?;
            let dt = ms(t.elapsed());
            log(format!(
                "bulk INSERT of {} rows into {table} run {run}: {dt:.0} ms",
                cfg.bulk_rows
            ));
            out.push(dt);
            pool.execute(format!("TRUNCATE {table}").as_str()).await?;
            if table == "b_cap" {
                // TRUNCATE marks the stream table for a full refresh, which trims the buffer.
                pgstream::refresh(pool, "b_stats").await?;
                let buf: String = sqlx::query_scalar(
                    "SELECT 'pgstream_changes.changes_' || 'b_cap'::regclass::oid::text",
                )
                .fetch_one(pool)
                .await?;
                pool.execute(format!("VACUUM {buf}").as_str()).await?;
            }
            if table == "b_row" {
                pool.execute("TRUNCATE b_rowbuf").await?;
            }
            pool.execute(format!("VACUUM {table}").as_str()).await?;
        }
    }
    res.bulk_ms = Some((bplain, bcap, brow));
    let _ = std::fs::remove_dir_all(&script_dir);
    pgstream::drop_stream_table(pool, "w_stats").await?;
    pgstream::drop_stream_table(pool, "b_stats").await?;
    pool.execute(
        "DROP TABLE w_plain, w_cap, w_row, b_plain, b_cap, b_row, w_rowbuf, b_rowbuf;
         DROP FUNCTION w_row_cap(), b_row_cap();",
    )
    .await?;
    Ok(())
}

pub(crate) fn find_pgbench(bindir: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGBENCH") {
        return Some(PathBuf::from(p));
    }
    if std::env::var_os("PGS_BENCH_NO_PGBENCH").is_some() {
        return None;
    }
    if let Some(d) = bindir {
        let p = d.join("pgbench");
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("pgbench"))
            .find(|p| p.is_file())
    })
}

pub(crate) async fn pgbench_run(
    pgbench: &Path,
    dir: &Path,
    url: &str,
    table: &str,
    cfg: &Config,
) -> Res<f64> {
    let script = dir.join(format!("{table}.sql"));
    std::fs::write(
        &script,
        format!(
            "\\set id random(1, {})\nUPDATE {table} SET salary = salary + 1 WHERE id = :id;\n",
            cfg.write_rows
        ),
    )?;
    let out = tokio::process::Command::new(pgbench)
        .arg("-n")
        .arg("-c")
        .arg(cfg.clients.to_string())
        .arg("-j")
        .arg("2")
        .arg("-T")
        .arg(cfg.write_secs.to_string())
        .arg("-f")
        .arg(&script)
        .arg(url)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "pgbench failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|x| x.parse::<f64>().ok())
        .ok_or_else(|| format!("no tps in pgbench output:\n{stdout}").into())
}

pub(crate) async fn tokio_update_loop(url: &str, table: &str, cfg: &Config) -> Res<f64> {
    let deadline = Instant::now() + Duration::from_secs(cfg.write_secs as u64);
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let url = url.to_string();
        let sql = format!("UPDATE {table} SET salary = salary + 1 WHERE id = $1");
        let rows = cfg.write_rows;
        tasks.push(tokio::spawn(async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let mut rng = StdRng::seed_from_u64(c as u64);
            let mut n = 0u64;
            while Instant::now() < deadline {
                let id: i32 = rng.gen_range(1..=rows as i32);
                sqlx::query(&sql).bind(id).execute(&mut conn).await?;
                n += 1;
            }
            Res::Ok(n)
        }));
    }
    let mut total = 0u64;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / cfg.write_secs as f64)
}
