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
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pgstream::Mode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgPool, Row};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

// ------------------------------------------------------------------------------------
// Configuration

/// Single-row UPDATE tps (no triggers, pgstream's capture, row-level capture) and
/// the tool's description.
type SingleTps = (Vec<f64>, Vec<f64>, Vec<f64>, String);

#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    /// `PGS_BENCH_FULL_RATIO`: the adaptive switch of the DIFF stream table (`None`:
    /// the catalog default; `Some(None)`: never switch).
    full_ratio: Option<Option<f64>>,
    sizes: Vec<i64>,
    ks: Vec<i64>,
    reps: usize,
    queries: Vec<String>,
    phases: Vec<String>,
    out: PathBuf,
    write_secs: u32,
    write_runs: usize,
    write_rows: i64,
    bulk_rows: i64,
    clients: u32,
    fresh_samples: usize,
    fresh_rows: i64,
    /// From this size on, FULL / RMV / RMVC are measured at `large_ks` only.
    large_size: i64,
    large_ks: Vec<i64>,
}

fn env_list(name: &str) -> Option<Vec<String>> {
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

fn env_list_raw(name: &str) -> Option<Vec<String>> {
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
    fn from_env() -> Res<Config> {
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

    fn phase(&self, p: &str) -> bool {
        self.phases.iter().any(|x| x == p)
    }
}

// ------------------------------------------------------------------------------------
// Queries

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Employees,
    Nodes,
    /// New leaves added to the tree of `nodes` (insert-only changes).
    NodeInserts,
}

struct Scenario {
    key: &'static str,
    title: &'static str,
    query: &'static str,
    /// Visible output columns, for the equivalence check.
    columns: &'static str,
    /// Unique key of the result (for the matview's unique index and the hand table).
    key_cols: &'static str,
    source: Source,
    /// MERGE/UPDATE of the hand-written delta; reads and empties `hand_buf`.
    hand_refresh: &'static str,
    /// What the hand-written delta handles (it is written for the benchmark's changes).
    hand_note: &'static str,
}

const Q_JOIN_AGG: &str = "SELECT d.id AS department_id, d.name AS department_name, \
COUNT(e.id) AS headcount, COALESCE(SUM(e.salary), 0) AS total_salary, \
COALESCE(AVG(e.salary), 0) AS avg_salary \
FROM departments d LEFT JOIN employees e ON e.department_id = d.id GROUP BY d.id, d.name";

const Q_FILTER: &str =
    "SELECT id, name, department_id, salary FROM employees WHERE salary >= 150000";

const Q_JOIN3: &str = "SELECT e.id, e.name, e.salary, d.name AS department_name, \
r.name AS region_name FROM employees e JOIN departments d ON d.id = e.department_id \
JOIN regions r ON r.id = d.region_id";

const Q_TREE: &str = "WITH RECURSIVE tree AS (\
SELECT id, name, name AS path, 0 AS depth FROM nodes WHERE parent_id IS NULL \
UNION ALL SELECT n.id, n.name, tree.path || ' > ' || n.name, tree.depth + 1 \
FROM nodes n JOIN tree ON n.parent_id = tree.id) SELECT id, name, path, depth FROM tree";

const Q_MINMAX: &str = "SELECT department_id, MIN(salary) AS min_salary, \
MAX(salary) AS max_salary FROM employees GROUP BY department_id";

const H_JOIN_AGG: &str = "WITH d AS (DELETE FROM hand_buf RETURNING w, department_id, salary)
MERGE INTO hand_t t
USING (SELECT department_id, sum(w) AS dc, sum(w * salary) AS ds FROM d GROUP BY department_id) s
ON t.department_id = s.department_id
WHEN MATCHED THEN UPDATE SET headcount = t.headcount + s.dc, total_salary = t.total_salary + s.ds,
  avg_salary = CASE WHEN t.headcount + s.dc > 0
                    THEN (t.total_salary + s.ds) / (t.headcount + s.dc)::numeric ELSE 0 END";

const H_FILTER: &str = "WITH d AS (DELETE FROM hand_buf RETURNING *),
n AS (SELECT DISTINCT ON (id) id, w, name, department_id, salary FROM d ORDER BY id, seq DESC)
MERGE INTO hand_t t USING n ON t.id = n.id
WHEN MATCHED AND (n.w < 0 OR NOT n.salary >= 150000) THEN DELETE
WHEN MATCHED THEN UPDATE SET name = n.name, department_id = n.department_id, salary = n.salary
WHEN NOT MATCHED AND n.w > 0 AND n.salary >= 150000 THEN
  INSERT VALUES (n.id, n.name, n.department_id, n.salary)";

const H_JOIN3: &str = "WITH d AS (DELETE FROM hand_buf RETURNING *),
n AS (SELECT DISTINCT ON (id) id, w, name, department_id, salary FROM d ORDER BY id, seq DESC),
s AS (SELECT n.id, n.w, n.name, n.salary, dd.name AS dname, r.name AS rname FROM n
      LEFT JOIN departments dd ON dd.id = n.department_id LEFT JOIN regions r ON r.id = dd.region_id)
MERGE INTO hand_t t USING s ON t.id = s.id
WHEN MATCHED AND (s.w < 0 OR s.rname IS NULL) THEN DELETE
WHEN MATCHED THEN UPDATE SET name = s.name, salary = s.salary, department_name = s.dname, region_name = s.rname
WHEN NOT MATCHED AND s.w > 0 AND s.rname IS NOT NULL THEN
  INSERT VALUES (s.id, s.name, s.salary, s.dname, s.rname)";

const H_TREE: &str = "WITH RECURSIVE d AS (DELETE FROM hand_buf RETURNING id),
start AS (SELECT n.id, n.name, t.depth, p.path AS ppath
          FROM (SELECT DISTINCT id FROM d) c JOIN nodes n ON n.id = c.id
          JOIN hand_t t ON t.id = n.id LEFT JOIN hand_t p ON p.id = n.parent_id),
sub AS (SELECT id, depth AS sdepth, CASE WHEN ppath IS NULL THEN name ELSE ppath || ' > ' || name END AS path, name
        FROM start
        UNION ALL
        SELECT c.id, sub.sdepth, sub.path || ' > ' || c.name, c.name FROM nodes c JOIN sub ON c.parent_id = sub.id),
best AS (SELECT DISTINCT ON (id) id, name, path FROM sub ORDER BY id, sdepth)
UPDATE hand_t t SET name = b.name, path = b.path FROM best b
WHERE t.id = b.id AND (t.path, t.name) IS DISTINCT FROM (b.path, b.name)";

const H_TREE_INSERT: &str = "WITH d AS (DELETE FROM hand_buf RETURNING id)
INSERT INTO hand_t SELECT n.id, n.name, p.path || ' > ' || n.name, p.depth + 1
FROM d JOIN nodes n ON n.id = d.id JOIN hand_t p ON p.id = n.parent_id";

const H_MINMAX: &str = "WITH d AS (DELETE FROM hand_buf RETURNING department_id),
s AS (SELECT g.department_id, m.mn, m.mx, m.c FROM (SELECT DISTINCT department_id FROM d) g
      CROSS JOIN LATERAL (SELECT min(e.salary) AS mn, max(e.salary) AS mx, count(*) AS c
                          FROM employees e WHERE e.department_id = g.department_id) m)
MERGE INTO hand_t t USING s ON t.department_id = s.department_id
WHEN MATCHED AND s.c = 0 THEN DELETE
WHEN MATCHED THEN UPDATE SET min_salary = s.mn, max_salary = s.mx
WHEN NOT MATCHED AND s.c > 0 THEN INSERT VALUES (s.department_id, s.mn, s.mx)";

const SCENARIOS: &[Scenario] = &[
    Scenario {
        key: "join_agg",
        title: "Join + aggregate (the tutorial's department_stats: departments ⟕ employees GROUP BY, COUNT/SUM/AVG, 1,000 departments)",
        query: Q_JOIN_AGG,
        columns: "department_id, department_name, headcount, total_salary, avg_salary",
        key_cols: "department_id",
        source: Source::Employees,
        hand_refresh: H_JOIN_AGG,
        hand_note: "employee changes only (count and sum per department, AVG = sum / count)",
    },
    Scenario {
        key: "filter",
        title: "Filter (employees WHERE salary >= 150000, about 29% of the rows)",
        query: Q_FILTER,
        columns: "id, name, department_id, salary",
        key_cols: "id",
        source: Source::Employees,
        hand_refresh: H_FILTER,
        hand_note: "last image per id, MERGE on id",
    },
    Scenario {
        key: "join3",
        title: "Three-table join (employees ⋈ departments ⋈ regions)",
        query: Q_JOIN3,
        columns: "id, name, salary, department_name, region_name",
        key_cols: "id",
        source: Source::Employees,
        hand_refresh: H_JOIN3,
        hand_note: "employee changes only (departments and regions are not captured)",
    },
    Scenario {
        key: "tree",
        title: "Recursive tree (WITH RECURSIVE paths over a 10-ary tree of `nodes`)",
        query: Q_TREE,
        columns: "id, name, path, depth",
        key_cols: "id",
        source: Source::Nodes,
        hand_refresh: H_TREE,
        hand_note: "renames only: recomputes the paths of the renamed nodes' subtrees",
    },
    Scenario {
        key: "tree_insert",
        title: "Recursive tree, insert-only changes (the same WITH RECURSIVE query; k new leaves under random nodes)",
        query: Q_TREE,
        columns: "id, name, path, depth",
        key_cols: "id",
        source: Source::NodeInserts,
        hand_refresh: H_TREE_INSERT,
        hand_note: "new leaves only: each joins its parent's stored path",
    },
    Scenario {
        key: "minmax",
        title: "MIN/MAX per group (employees GROUP BY department_id)",
        query: Q_MINMAX,
        columns: "department_id, min_salary, max_salary",
        key_cols: "department_id",
        source: Source::Employees,
        hand_refresh: H_MINMAX,
        hand_note: "recomputes the affected groups through the index on department_id",
    },
];

const DEPARTMENTS: i64 = 1_000;

/// Base tables of the refresh benchmark for `n` rows (employees and nodes).
fn schema_sql(n: i64, with_nodes: bool) -> String {
    let mut s = format!(
        "DROP TABLE IF EXISTS regions, departments, employees, nodes CASCADE;
CREATE TABLE regions (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE departments (id int PRIMARY KEY, name text NOT NULL, parent_id int, region_id int NOT NULL);
CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL, department_id int NOT NULL,
                        salary numeric(10,2) NOT NULL);
INSERT INTO regions SELECT g, 'region ' || g FROM generate_series(1, 50) g;
INSERT INTO departments SELECT g, 'dept ' || g, NULL, 1 + g % 50 FROM generate_series(1, {DEPARTMENTS}) g;
INSERT INTO employees SELECT g, 'emp ' || g, 1 + (g::bigint * 7919) % {DEPARTMENTS},
       30000 + (g::bigint * 104729) % 170000 FROM generate_series(1, {n}) g;
CREATE INDEX employees_department_id_idx ON employees (department_id);
"
    );
    if with_nodes {
        write!(
            s,
            "CREATE TABLE nodes (id int PRIMARY KEY, parent_id int, name text NOT NULL);
INSERT INTO nodes SELECT g, CASE WHEN g = 1 THEN NULL ELSE (g + 8) / 10 END, 'n' || g
       FROM generate_series(1, {n}) g;
CREATE INDEX nodes_parent_id_idx ON nodes (parent_id);
"
        )
        .unwrap();
    }
    s
}

/// Capture functions of the hand-written deltas (statement-level, transition tables,
/// like pgstream's).
const HAND_FUNCTIONS: &str = "
CREATE OR REPLACE FUNCTION hand_cap_emp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO hand_buf (w, id, name, department_id, salary)
    SELECT -1, id, name, department_id, salary FROM old_t;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    INSERT INTO hand_buf (w, id, name, department_id, salary)
    SELECT 1, id, name, department_id, salary FROM new_t;
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION hand_cap_node() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO hand_buf (id) SELECT id FROM new_t;
  RETURN NULL;
END $$;
";

fn hand_setup_sql(sc: &Scenario) -> String {
    let mut s = String::new();
    match sc.source {
        Source::Employees => s.push_str(
            "CREATE TABLE hand_buf (seq bigserial PRIMARY KEY, w smallint NOT NULL, id int, name text,
                                    department_id int, salary numeric(10,2));
CREATE TRIGGER hand_ins AFTER INSERT ON employees REFERENCING NEW TABLE AS new_t
  FOR EACH STATEMENT EXECUTE FUNCTION hand_cap_emp();
CREATE TRIGGER hand_upd AFTER UPDATE ON employees REFERENCING OLD TABLE AS old_t NEW TABLE AS new_t
  FOR EACH STATEMENT EXECUTE FUNCTION hand_cap_emp();
CREATE TRIGGER hand_del AFTER DELETE ON employees REFERENCING OLD TABLE AS old_t
  FOR EACH STATEMENT EXECUTE FUNCTION hand_cap_emp();
",
        ),
        Source::Nodes => s.push_str(
            "CREATE TABLE hand_buf (id int NOT NULL);
CREATE TRIGGER hand_upd AFTER UPDATE ON nodes REFERENCING NEW TABLE AS new_t
  FOR EACH STATEMENT EXECUTE FUNCTION hand_cap_node();
",
        ),
        Source::NodeInserts => s.push_str(
            "CREATE TABLE hand_buf (id int NOT NULL);
CREATE TRIGGER hand_ins AFTER INSERT ON nodes REFERENCING NEW TABLE AS new_t
  FOR EACH STATEMENT EXECUTE FUNCTION hand_cap_node();
",
        ),
    }
    write!(
        s,
        "CREATE TABLE hand_t AS {};\nALTER TABLE hand_t ADD PRIMARY KEY ({});\n",
        sc.query, sc.key_cols
    )
    .unwrap();
    s
}

fn hand_teardown_sql(sc: &Scenario) -> String {
    let table = match sc.source {
        Source::Employees => "employees",
        Source::Nodes | Source::NodeInserts => "nodes",
    };
    let mut s = String::from("DROP TABLE IF EXISTS hand_t, hand_buf;\n");
    for t in ["hand_ins", "hand_upd", "hand_del"] {
        writeln!(s, "DROP TRIGGER IF EXISTS {t} ON {table};").unwrap();
    }
    s
}

// ------------------------------------------------------------------------------------
// Results

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Method {
    Diff,
    Full,
    Rmv,
    Rmvc,
    Hand,
}

const METHODS: [Method; 5] = [
    Method::Diff,
    Method::Full,
    Method::Rmv,
    Method::Rmvc,
    Method::Hand,
];

impl Method {
    fn label(self) -> &'static str {
        match self {
            Method::Diff => "pgstream DIFFERENTIAL",
            Method::Full => "pgstream FULL",
            Method::Rmv => "REFRESH MATERIALIZED VIEW",
            Method::Rmvc => "REFRESH MATERIALIZED VIEW CONCURRENTLY",
            Method::Hand => "hand-written delta",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Method::Diff => "DIFF",
            Method::Full => "FULL",
            Method::Rmv => "RMV",
            Method::Rmvc => "RMVC",
            Method::Hand => "hand",
        }
    }
    fn color(self) -> &'static str {
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
struct Explain {
    scenario: &'static str,
    size: i64,
    k: i64,
    method: Method,
    execution_ms: f64,
    plan_only_ms: f64,
    /// Client-side time of `EXPLAIN (SUMMARY)`: parse, analysis, rewrite, planning.
    explain_wall_ms: f64,
    /// Client-side time of the statement alone (rolled back), median of 5.
    statement_ms: f64,
    window_lines: Vec<String>,
    plan: String,
}

#[derive(Debug, Clone)]
struct BigPlan {
    scenario: &'static str,
    size: i64,
    k: i64,
    execution_ms: f64,
    /// (loops × time per loop, plan line) of the heaviest repeated nodes.
    heavy: Vec<(f64, String)>,
    plan: String,
}

#[derive(Debug, Default)]
struct Results {
    big_plans: Vec<BigPlan>,
    machine: Vec<(String, String)>,
    /// (scenario, size, k, method) -> times in ms.
    refresh: BTreeMap<(&'static str, i64, i64, Method), Vec<f64>>,
    /// (scenario, size, method) -> creation / initial population time in ms.
    creation: BTreeMap<(&'static str, i64, Method), f64>,
    /// (scenario, size) -> ms of a DIFF refresh after 10 changes on a new connection
    /// (planning and catalog caches cold), median of 3.
    cold: BTreeMap<(&'static str, i64), f64>,
    /// (scenario, size) -> ms of `REFRESH MATERIALIZED VIEW` on a new connection,
    /// median of 3.
    cold_rmv: BTreeMap<(&'static str, i64), f64>,
    rejected: BTreeMap<&'static str, String>,
    /// (scenario, size) where the recomputing methods ran at `large_ks` only.
    restricted: std::collections::BTreeSet<(&'static str, i64)>,
    verify: Vec<(&'static str, i64, Method, i64)>,
    explains: Vec<Explain>,
    /// (no triggers, with pgstream capture) tps per run.
    /// Single-row UPDATE tps: no triggers, pgstream's capture, row-level capture.
    single_tps: Option<SingleTps>,
    /// (no triggers, with pgstream capture, hand trigger) ms per run.
    /// Bulk INSERT ms: no triggers, pgstream's capture, row-level capture.
    bulk_ms: Option<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    freshness_ms: Vec<f64>,
    fresh_refresh_ms: Option<f64>,
    phase_secs: Vec<(String, f64)>,
}

impl Results {
    fn median(&self, sc: &str, size: i64, k: i64, m: Method) -> Option<f64> {
        self.refresh
            .iter()
            .find(|((s, z, kk, mm), _)| *s == sc && *z == size && *kk == k && *mm == m)
            .map(|(_, v)| median(v))
    }
}

fn median(v: &[f64]) -> f64 {
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

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (s.len() as f64 - 1.0)).round() as usize;
    s[idx.min(s.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[bench {}] {}", chrono_now(), msg.as_ref());
}

fn chrono_now() -> String {
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

// ------------------------------------------------------------------------------------
// Main

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
    let url = replace_database(&admin_url, &dbname);
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

fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
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

// ------------------------------------------------------------------------------------
// Refresh phase

async fn refresh_phase(cfg: &Config, pool: &PgPool, url: &str, res: &mut Results) -> Res<()> {
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

async fn apply_changes(
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

async fn refresh_one(pool: &PgPool, sc: &Scenario, m: Method) -> Res<f64> {
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
async fn new_connection_point(
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
async fn run_scenario(
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

fn method_table(m: Method) -> &'static str {
    match m {
        Method::Diff => "st_diff",
        Method::Full => "st_full",
        Method::Rmv | Method::Rmvc => "bench_mv",
        Method::Hand => "hand_t",
    }
}

/// Compares a maintained copy with the query (both directions of `EXCEPT ALL`).
async fn verify(
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

async fn drop_method(pool: &PgPool, sc: &Scenario, m: Method) -> Res<()> {
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

/// Planning and execution time of the differential statement and of the hand-written
/// delta after k changes, from `EXPLAIN (ANALYZE, SUMMARY)` in a rolled-back
/// transaction, and the planning time alone from `EXPLAIN (SUMMARY)`.
#[allow(clippy::too_many_arguments)]
async fn explain_point(
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
async fn big_window_plan(
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

fn plan_text(rows: &[sqlx::postgres::PgRow]) -> String {
    rows.iter()
        .filter_map(|r| r.try_get::<String, _>(0).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

fn find_ms(text: &str, label: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix(label)
            .and_then(|r| r.trim().trim_end_matches("ms").trim().parse().ok())
    })
}

// ------------------------------------------------------------------------------------
// Write overhead

const W_TABLES: &str = "
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
fn row_capture_sql(table: &str) -> String {
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

async fn write_phase(
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

fn find_pgbench(bindir: Option<&Path>) -> Option<PathBuf> {
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

async fn pgbench_run(pgbench: &Path, dir: &Path, url: &str, table: &str, cfg: &Config) -> Res<f64> {
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

async fn tokio_update_loop(url: &str, table: &str, cfg: &Config) -> Res<f64> {
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

// ------------------------------------------------------------------------------------
// Freshness

async fn freshness_phase(cfg: &Config, url: &str, res: &mut Results) -> Res<()> {
    let pool = PgPoolOptions::new().max_connections(4).connect(url).await?;
    pool.execute(
        format!(
            "DROP TABLE IF EXISTS f_employees, f_departments CASCADE;
             CREATE TABLE f_departments (id int PRIMARY KEY, name text NOT NULL);
             CREATE TABLE f_employees (id serial PRIMARY KEY, name text NOT NULL,
                                       department_id int NOT NULL, salary numeric(10,2) NOT NULL);
             INSERT INTO f_departments SELECT g, 'dept ' || g FROM generate_series(1, {DEPARTMENTS}) g;
             INSERT INTO f_employees (name, department_id, salary)
               SELECT 'emp ' || g, 1 + g % {DEPARTMENTS}, 30000 + g % 170000 FROM generate_series(1, {}) g;
             CREATE INDEX ON f_employees (department_id);",
            cfg.fresh_rows
        )
        .as_str(),
    )
    .await?;
    pool.execute("VACUUM ANALYZE f_departments, f_employees")
        .await?;
    let query = Q_JOIN_AGG
        .replace("departments d", "f_departments d")
        .replace("employees e", "f_employees e");
    let runtime = pgstream::Runtime::builder(pool.clone())
        .register_spec(pgstream::spec(
            "fresh_stats",
            &query,
            "1s",
            Mode::Differential,
        )?)
        .tick(Duration::from_millis(100))
        .start()
        .await?;
    let writer = PgPoolOptions::new().max_connections(2).connect(url).await?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut expected: i64 =
        sqlx::query_scalar("SELECT count(*) FROM f_employees WHERE department_id = 1")
            .fetch_one(&writer)
            .await?;
    // Wait for the first scheduled refresh.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..cfg.fresh_samples {
        // A random phase relative to the schedule.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1100))).await;
        sqlx::query("INSERT INTO f_employees (name, department_id, salary) VALUES ($1, 1, 50000)")
            .bind(format!("fresh {i}"))
            .execute(&writer)
            .await?;
        let committed = Instant::now();
        expected += 1;
        loop {
            let n: Option<i64> =
                sqlx::query_scalar("SELECT headcount FROM fresh_stats WHERE department_id = 1")
                    .fetch_optional(&writer)
                    .await?;
            if n.unwrap_or(0) >= expected {
                break;
            }
            if committed.elapsed() > Duration::from_secs(30) {
                return Err("freshness: the change did not appear within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        res.freshness_ms.push(ms(committed.elapsed()));
    }
    let avg: Option<f64> = sqlx::query_scalar(
        "SELECT s.total_ms / nullif(s.refresh_count, 0) FROM pgstream.pgs_refresh_stats s
         JOIN pgstream.pgs_stream_tables t ON t.id = s.st_id WHERE t.table_name = 'fresh_stats'",
    )
    .fetch_optional(&writer)
    .await?
    .flatten();
    res.fresh_refresh_ms = avg;
    log(format!(
        "freshness: median {:.0} ms, p99 {:.0} ms over {} samples",
        median(&res.freshness_ms),
        percentile(&res.freshness_ms, 99.0),
        res.freshness_ms.len()
    ));
    runtime.shutdown().await;
    writer.close().await;
    pgstream::drop_stream_table(&pool, "fresh_stats").await?;
    pool.execute("DROP TABLE f_employees, f_departments")
        .await?;
    pool.close().await;
    Ok(())
}

// ------------------------------------------------------------------------------------
// Output: BENCHMARKS.md, SVG plots, CSV

fn fmt_ms(x: f64) -> String {
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

fn fmt_ratio(x: f64) -> String {
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

fn fmt_n(n: i64) -> String {
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

fn write_outputs(cfg: &Config, res: &Results) -> Res<()> {
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

struct Target {
    name: String,
    goal: String,
    measured: String,
    met: Option<bool>,
}

fn targets(cfg: &Config, res: &Results, sizes: &[i64]) -> Vec<Target> {
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

fn markdown(
    cfg: &Config,
    res: &Results,
    sizes: &[i64],
    plots: &BTreeMap<&str, (Option<String>, Option<String>)>,
) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# pgstream benchmarks\n");
    let _ = writeln!(
        w,
        "Generated by `cargo bench --bench refresh` (source: `tests/benches/refresh.rs`); do not edit by hand.\n\
         Run it again to reproduce; `PGS_BENCH_QUICK=1` gives a run of under two minutes \
         (written to `target/bench-quick/`). Raw medians: [`bench/results.csv`](bench/results.csv).\n"
    );
    if cfg.quick {
        let _ = writeln!(
            w,
            "**Quick run** (PGS_BENCH_QUICK=1): small sizes and few repetitions.\n"
        );
    }
    let _ = writeln!(w, "## Machine\n\n| | |\n|---|---|");
    for (k, v) in &res.machine {
        let _ = writeln!(w, "| {k} | {v} |");
    }
    let phases: Vec<String> = res
        .phase_secs
        .iter()
        .map(|(p, x)| format!("{p} {x:.0} s"))
        .collect();
    let _ = writeln!(w, "| run time | {} |", phases.join(", "));
    let _ = writeln!(
        w,
        "\nThe machine is shared: other processes ran during the measurement, so single \
         figures carry noise; medians of repeated runs damp it. All methods of one point are \
         measured in the same repetition loop, in rotating order, so they share the noise.\n"
    );

    // Targets.
    let tg = targets(cfg, res, sizes);
    if !tg.is_empty() {
        let _ = writeln!(
            w,
            "## Targets (issue 6)\n\n| target | goal | measured | met? |\n|---|---|---|---|"
        );
        for t in &tg {
            let met = match t.met {
                Some(true) => "**met**",
                Some(false) => "**not met**",
                None => "not measured at full scale",
            };
            let _ = writeln!(w, "| {} | {} | {} | {met} |", t.name, t.goal, t.measured);
        }
        let _ = writeln!(w);
    }

    // Method.
    let _ = writeln!(w, "## What is measured\n");
    let _ = writeln!(
        w,
        "- **Refresh after k changes.** Base tables: `departments` ({} rows, in 50 `regions`), \
         `employees` (n rows, index on `department_id`), `nodes` (n rows, a 10-ary tree, index on \
         `parent_id`). A change is one UPDATE of one row: a random employee gets a random salary and \
         department; a random node is renamed. The k changes of a repetition are one UPDATE statement \
         (`WHERE id = ANY($1)`, k distinct random ids). After them, each method is refreshed once and \
         timed from the client (a `SELECT pgstream.refresh_stream_table(...)` through \
         `pgstream::refresh`, `REFRESH MATERIALIZED VIEW [CONCURRENTLY]`, or the hand-written statement), \
         all on one long-lived connection, as an application pool would (the refresh through a new \
         connection, DIFF beside `REFRESH MATERIALIZED VIEW`, is reported under each table). \
         Every point is the median of {} repetitions ({} for points where a method takes over {} ms). \
         k = 0 is a refresh that finds no changes (median of {} calls, incremental methods only).",
        fmt_n(DEPARTMENTS),
        cfg.reps,
        cfg.reps.min(3),
        if cfg.quick { 500 } else { 1500 },
        (cfg.reps * 3).max(15)
    );
    let _ = writeln!(
        w,
        "- **Methods.** DIFF = pgstream DIFFERENTIAL; FULL = pgstream FULL (recompute and apply the \
         difference); RMV = `REFRESH MATERIALIZED VIEW`; RMVC = `REFRESH MATERIALIZED VIEW CONCURRENTLY` \
         (same matview, with the unique index it needs); hand = a statement-level capture trigger with \
         transition tables into a private buffer, plus one hand-written `MERGE` (or `UPDATE`) for that \
         query that reads and empties the buffer in the same statement. The hand-written delta is the \
         physical reference: it does the least work that this kind of maintenance can do, and it only \
         handles the changes the benchmark makes."
    );
    let _ = writeln!(
        w,
        "- **Equivalence.** At the end of each (query, size), every maintained copy is compared with \
         the query by `EXCEPT ALL` both ways; see the table at the end."
    );
    let _ = writeln!(
        w,
        "- Times are milliseconds; ratios are computed from the medians of the same run.\n"
    );

    // Per scenario tables.
    let _ = writeln!(w, "## Refresh time after k changes\n");
    for sc in SCENARIOS {
        if !res.refresh.keys().any(|(s, _, _, _)| *s == sc.key) {
            continue;
        }
        let _ = writeln!(w, "### {}\n", sc.title);
        let _ = writeln!(w, "```sql\n{}\n```\n", sc.query);
        if let Some(msg) = res.rejected.get(sc.key) {
            let first = msg.lines().next().unwrap_or(msg);
            let _ = writeln!(
                w,
                "pgstream DIFFERENTIAL rejects this query, so it is measured in FULL mode only: `{}`\n",
                first.replace('`', "'")
            );
        }
        if sc.key == "tree" {
            let _ = writeln!(
                w,
                "pgstream maintains `WITH RECURSIVE` in DIFFERENTIAL mode by recompute-and-diff \
                 (gated on changes), so DIFF ≈ FULL once there is any change.\n"
            );
        }
        let _ = writeln!(w, "Hand-written delta: {}.\n", sc.hand_note);
        if let Some((a, b)) = plots.get(sc.key) {
            if let Some(a) = a {
                let _ = write!(w, "![{} vs k](bench/{a}) ", sc.key);
            }
            if let Some(b) = b {
                let _ = write!(w, "![{} vs size](bench/{b})", sc.key);
            }
            let _ = writeln!(w, "\n");
        }
        for &z in sizes {
            let ks: Vec<i64> = {
                let mut v: Vec<i64> = res
                    .refresh
                    .keys()
                    .filter(|(s, zz, _, _)| *s == sc.key && *zz == z)
                    .map(|(_, _, k, _)| *k)
                    .collect();
                v.sort();
                v.dedup();
                v
            };
            if ks.is_empty() {
                continue;
            }
            let _ = writeln!(w, "**{} rows** (median ms)\n", fmt_n(z));
            if res.restricted.contains(&(sc.key, z)) {
                let _ = writeln!(
                    w,
                    "At this size the methods that recompute the whole query (FULL, RMV, RMVC{}) are \
                     measured at k = {} only, to keep the run short: their cost does not depend on k \
                     (see the smaller sizes). They are the dashed levels in the plot.\n",
                    if sc.source == Source::Nodes { ", and DIFF, which recomputes for this query" } else { "" },
                    cfg.large_ks.iter().map(|k| fmt_n(*k)).collect::<Vec<_>>().join(", ")
                );
            }
            let _ = writeln!(
                w,
                "| k | DIFF | FULL | RMV | RMVC | hand | RMV ÷ DIFF | DIFF ÷ hand | DIFF ÷ FULL |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for k in ks {
                let g = |m| res.median(sc.key, z, k, m).unwrap_or(f64::NAN);
                let (d, f, r, rc, h) = (
                    g(Method::Diff),
                    g(Method::Full),
                    g(Method::Rmv),
                    g(Method::Rmvc),
                    g(Method::Hand),
                );
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    if k == 0 {
                        "0 (no change)".into()
                    } else {
                        fmt_n(k)
                    },
                    fmt_ms(d),
                    fmt_ms(f),
                    fmt_ms(r),
                    fmt_ms(rc),
                    fmt_ms(h),
                    fmt_ratio(r / d),
                    fmt_ratio(d / h),
                    fmt_ratio(d / f)
                );
            }
            let created: Vec<String> = METHODS
                .iter()
                .filter_map(|&m| {
                    res.creation
                        .get(&(sc.key, z, m))
                        .map(|x| format!("{} {} ms", m.short(), fmt_ms(*x)))
                })
                .collect();
            let _ = writeln!(
                w,
                "\nCreation with initial population: {}.",
                created.join(", ")
            );
            if let Some(c) = res.cold.get(&(sc.key, z)) {
                let rmv = res.cold_rmv.get(&(sc.key, z)).map_or(String::new(), |r| {
                    format!(
                        "; RMV through a new connection {} ms: DIFF {:.1}× faster",
                        fmt_ms(*r),
                        r / c
                    )
                });
                let _ = writeln!(
                    w,
                    "\nRefresh through a new connection (10 changes; the session plans the \
                     refresh statements and loads its catalog caches): DIFF {} ms{rmv}; \
                     median of 3.",
                    fmt_ms(*c)
                );
            }
            let _ = writeln!(w);
        }
    }

    // Levers.
    let _ = writeln!(w, "## Where the time goes: levers\n");
    let _ = writeln!(
        w,
        "For the stored differential statement (DIFF) and the hand-written statement (hand), with \
         no change (k = 0) and after 10 changes (k = 10), median of 5 each (1 for a statement over 500 ms): *statement* is the \
         client-side time of the statement alone, run in a transaction that is rolled back (with \
         `pgstream.refreshing = on`); *parse + plan* is the client-side time of `EXPLAIN (SUMMARY)` \
         (parse, analysis, rewrite and planning, plus a round trip) and *planner* its `Planning Time`; \
         *execution* is the `Execution Time` of one `EXPLAIN (ANALYZE, SUMMARY, BUFFERS)` (rolled back). \
         *refresh* is the median refresh time from the tables above and *wrapper* = refresh − statement: \
         what `refresh_stream_table` adds (lock, catalog and drift checks, buffer trim, statistics).\n"
    );
    let _ = writeln!(
        w,
        "| query | rows | k | method | refresh | statement | parse + plan | planner | execution | wrapper | parse + plan share of refresh |\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for ex in &res.explains {
        let r = res
            .median(ex.scenario, ex.size, ex.k, ex.method)
            .unwrap_or(f64::NAN);
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0}% |",
            ex.scenario,
            fmt_n(ex.size),
            ex.k,
            ex.method.short(),
            fmt_ms(r),
            fmt_ms(ex.statement_ms),
            fmt_ms(ex.explain_wall_ms),
            fmt_ms(ex.plan_only_ms),
            fmt_ms(ex.execution_ms),
            if r >= ex.statement_ms {
                fmt_ms(r - ex.statement_ms)
            } else {
                "≈0".into()
            },
            100.0 * ex.explain_wall_ms / r
        );
    }
    let _ = writeln!(w);
    let big = sizes.iter().copied().max().unwrap_or(0);
    let _ = writeln!(
        w,
        "Scans of the change buffers in the differential statement at k = 10, {} rows \
         (full plans: `bench/plan_<query>_<method>_k10.txt`):\n",
        fmt_n(big)
    );
    for ex in res
        .explains
        .iter()
        .filter(|e| e.size == big && e.method == Method::Diff && e.k == 10)
    {
        let _ = writeln!(w, "- {}:", ex.scenario);
        let _ = writeln!(w, "  ```");
        for l in ex.window_lines.iter().take(8) {
            let _ = writeln!(w, "  {l}");
        }
        let _ = writeln!(w, "  ```");
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "{}", levers_text(res, sizes));

    // Crossover.
    let _ = writeln!(
        w,
        "### Crossover: the smallest k where DIFF is slower than FULL\n"
    );
    let _ = writeln!(w, "| query | rows | crossover k |\n|---|---:|---|");
    for sc in SCENARIOS {
        for &z in sizes {
            if res.median(sc.key, z, 1, Method::Diff).is_none() {
                continue;
            }
            let mut cross = None;
            let mut ks: Vec<i64> = res
                .refresh
                .keys()
                .filter(|(s, zz, k, _)| *s == sc.key && *zz == z && *k > 0)
                .map(|(_, _, k, _)| *k)
                .collect();
            ks.sort();
            ks.dedup();
            for k in &ks {
                let full = res.median(sc.key, z, *k, Method::Full).or_else(|| {
                    cfg.large_ks
                        .iter()
                        .find_map(|kk| res.median(sc.key, z, *kk, Method::Full))
                });
                if let (Some(d), Some(f)) = (res.median(sc.key, z, *k, Method::Diff), full) {
                    if d > f {
                        cross = Some(*k);
                        break;
                    }
                }
            }
            let _ = writeln!(
                w,
                "| {} | {} | {} |",
                sc.key,
                fmt_n(z),
                match cross {
                    Some(k) => format!(
                        "{} ({:.1}% of the rows)",
                        fmt_n(k),
                        100.0 * k as f64 / z as f64
                    ),
                    None => format!("none up to k = {}", fmt_n(*ks.last().unwrap_or(&0))),
                }
            );
        }
    }
    let _ = writeln!(w);

    // Write overhead.
    if res.single_tps.is_some() || res.bulk_ms.is_some() {
        let _ = writeln!(w, "## Write overhead of capture\n");
        let _ = writeln!(
            w,
            "Two identical tables, one with pgstream's capture (a DIFFERENTIAL stream table \
             `SELECT department_id, COUNT(*), SUM(salary) ... GROUP BY department_id` over it, not \
             refreshed during the measurement), alternated run by run; median of {} runs.\n",
            cfg.write_runs
        );
        if let Some((p, c, rl, tool)) = &res.single_tps {
            let _ = writeln!(
                w,
                "Single-row UPDATE throughput on {} rows: {tool}.\n\n| | runs (tps) | median tps | ratio |\n|---|---|---:|---:|",
                fmt_n(cfg.write_rows)
            );
            let _ = writeln!(
                w,
                "| no triggers | {} | {:.0} | 1.00× |",
                join_f(p, 0),
                median(p)
            );
            let _ = writeln!(
                w,
                "| pgstream capture (statement-level, transition tables) | {} | {:.0} | {} |",
                join_f(c, 0),
                median(c),
                fmt_ratio(median(c) / median(p))
            );
            let _ = writeln!(
                w,
                "| row-level capture trigger (same buffer) | {} | {:.0} | {} |\n",
                join_f(rl, 0),
                median(rl),
                fmt_ratio(median(rl) / median(p))
            );
        }
        if let Some((p, c, rl)) = &res.bulk_ms {
            let _ = writeln!(
                w,
                "Bulk `INSERT INTO t SELECT ... FROM generate_series(1, {})` into an empty table \
                 (TRUNCATE between runs).\n\n| | runs (ms) | median ms | ratio |\n|---|---|---:|---:|",
                fmt_n(cfg.bulk_rows)
            );
            let _ = writeln!(
                w,
                "| no triggers | {} | {} | 1.00× |",
                join_f(p, 0),
                fmt_ms(median(p))
            );
            let _ = writeln!(
                w,
                "| pgstream capture (statement-level, transition tables) | {} | {} | {} |",
                join_f(c, 0),
                fmt_ms(median(c)),
                fmt_ratio(median(c) / median(p))
            );
            let _ = writeln!(
                w,
                "| row-level capture trigger (same buffer) | {} | {} | {} |\n",
                join_f(rl, 0),
                fmt_ms(median(rl)),
                fmt_ratio(median(rl) / median(p))
            );
        }
        if let (Some((sp, sc, sr, _)), Some((bp, bc, br))) = (&res.single_tps, &res.bulk_ms) {
            let _ = writeln!(
                w,
                "**Trigger choice.** pgstream captures with statement-level triggers and transition \
                 tables. Against row-level triggers writing the same buffer, in this run: single-row \
                 UPDATEs {} vs {} of the throughput without triggers, the bulk INSERT {} vs {} of its \
                 time. PostgreSQL fires both kinds for every statement (it cannot pick one per \
                 statement shape), so one kind is kept: statement-level, {}.\n",
                fmt_ratio(median(sc) / median(sp)),
                fmt_ratio(median(sr) / median(sp)),
                fmt_ratio(median(bc) / median(bp)),
                fmt_ratio(median(br) / median(bp)),
                if median(bc) <= median(br) && median(sc) >= median(sr) * 0.95 {
                    "which is faster in bulk and on par for single rows"
                } else if median(bc) <= median(br) {
                    "which is faster in bulk (where capture costs most)"
                } else {
                    "although row-level was faster in this run: see the figures"
                }
            );
        }
    }

    // Freshness.
    if !res.freshness_ms.is_empty() {
        let f = &res.freshness_ms;
        let _ = writeln!(w, "## Freshness\n");
        let _ = writeln!(
            w,
            "The tutorial's join + aggregate over {} employees as a DIFFERENTIAL stream table with \
             schedule `1s`, maintained by `pgstream::Runtime` (tick 100 ms) in the benchmark process. \
             A writer inserts one employee at a random moment (100–1100 ms apart), and a reader polls \
             the stream table every 2 ms from the commit until the new headcount is visible.\n",
            fmt_n(cfg.fresh_rows)
        );
        let _ = writeln!(
            w,
            "| samples | median ms | p99 ms | min ms | max ms | mean scheduled refresh ms |\n|---:|---:|---:|---:|---:|---:|"
        );
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} |\n",
            f.len(),
            fmt_ms(median(f)),
            fmt_ms(percentile(f, 99.0)),
            fmt_ms(f.iter().cloned().fold(f64::INFINITY, f64::min)),
            fmt_ms(f.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
            res.fresh_refresh_ms
                .map(fmt_ms)
                .unwrap_or_else(|| "–".into())
        );
        let _ = writeln!(
            w,
            "A change waits for the next refresh: the scheduler refreshes a stream table when its \
             last refresh is older than the schedule, checked every tick, so the wait is up to \
             schedule + tick + one refresh. To get lower: a shorter schedule (and tick), or call \
             `pgstream::refresh` / `SELECT pgstream.refresh_stream_table(...)` right after the write \
             that must be visible, which costs one differential refresh (see k = 1 above).\n"
        );
    }

    // Equivalence.
    if !res.verify.is_empty() {
        let _ = writeln!(w, "## Equivalence check\n\n| query | rows | method | rows differing from the query |\n|---|---:|---|---:|");
        for (sc, z, m, d) in &res.verify {
            let _ = writeln!(w, "| {sc} | {} | {} | {d} |", fmt_n(*z), m.short());
        }
        let _ = writeln!(w);
    }
    s
}

fn join_f(v: &[f64], prec: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.prec$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Observations drawn from the measurements (the numbers are from this run).
fn levers_text(res: &Results, sizes: &[i64]) -> String {
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

// ------------------------------------------------------------------------------------
// SVG

fn svg_plot(title: &str, xlabel: &str, series: &[(Method, Vec<(f64, f64)>)]) -> String {
    let (w, h) = (820.0, 440.0);
    let (l, r, t, b) = (70.0, 330.0, 40.0, 50.0);
    let pw = w - l - r;
    let ph = h - t - b;
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
        .collect();
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        l + pw / 2.0,
        xml(title)
    );
    if pts.is_empty() {
        svg.push_str("</svg>\n");
        return svg;
    }
    let lx0 = pts
        .iter()
        .map(|p| p.0.log10())
        .fold(f64::INFINITY, f64::min)
        .floor();
    let mut lx1 = pts
        .iter()
        .map(|p| p.0.log10())
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil();
    let ly0 = pts
        .iter()
        .map(|p| p.1.log10())
        .fold(f64::INFINITY, f64::min)
        .floor();
    let mut ly1 = pts
        .iter()
        .map(|p| p.1.log10())
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil();
    if lx1 <= lx0 {
        lx1 = lx0 + 1.0;
    }
    if ly1 <= ly0 {
        ly1 = ly0 + 1.0;
    }
    let px = |x: f64| l + (x.log10() - lx0) / (lx1 - lx0) * pw;
    let py = |y: f64| t + ph - (y.log10() - ly0) / (ly1 - ly0) * ph;
    // Grid and ticks.
    let mut e = lx0 as i32;
    while e as f64 <= lx1 {
        let x = px(10f64.powi(e));
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            t + ph,
            t + ph + 18.0,
            xml(&fmt_n(10i64.pow(e.max(0) as u32)))
        );
        e += 1;
    }
    let mut e = ly0 as i32;
    while e as f64 <= ly1 {
        let y = py(10f64.powi(e));
        let label = if e >= 3 {
            format!("{} s", fmt_n(10i64.pow((e - 3) as u32)))
        } else if e >= 0 {
            format!("{} ms", 10i64.pow(e as u32))
        } else {
            format!("{} ms", 10f64.powi(e))
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{l}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            l + pw,
            l - 6.0,
            y + 4.0,
            xml(&label)
        );
        e += 1;
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} (log scale)</text>"#,
        l + pw / 2.0,
        h - 10.0,
        xml(xlabel)
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">refresh time, median (log scale)</text>"#,
        t + ph / 2.0,
        t + ph / 2.0
    );
    // Series.
    for (i, (m, v)) in series.iter().enumerate() {
        let mut v: Vec<(f64, f64)> = v
            .iter()
            .copied()
            .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let pts: Vec<String> = v
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let c = m.color();
        let mut label = m.label().to_string();
        if v.len() == 1 {
            // Measured at one x only (a cost that does not depend on x): a dashed level.
            let y = py(v[0].1);
            let _ = writeln!(
                svg,
                r#"<line x1="{l}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{c}" stroke-width="2" stroke-dasharray="6 4"/>"#,
                l + pw
            );
            label = format!("{label} (at {} only)", fmt_n(v[0].0 as i64));
        } else {
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
        }
        for (x, y) in &v {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{}: {} ms</title></circle>"#,
                px(*x),
                py(*y),
                m.short(),
                fmt_ms(*y)
            );
        }
        let ly = t + 10.0 + i as f64 * 20.0;
        let lx = l + pw + 15.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{c}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            xml(&label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
