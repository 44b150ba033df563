//! Fixtures shared by the oracle test files: the base tables, their value domains,
//! and `check`, which creates a stream table and runs the oracle over it.
#![allow(dead_code)]

use pgstream_core::{Mode, QualifiedName, Schedule, StreamTableSpec};
use pgstream_tests::oracle::{Domain, Oracle};
use pgstream_tests::{test_db, TestDb};

pub const DEPARTMENTS: &str =
    "CREATE TABLE departments (id int PRIMARY KEY, name text NOT NULL, parent_id int)";
pub const EMPLOYEES: &str =
    "CREATE TABLE employees (id int PRIMARY KEY, name text, department_id int, salary numeric(10,2))";
pub const PROJECTS: &str =
    "CREATE TABLE projects (id int PRIMARY KEY, department_id int NOT NULL, budget int)";
pub const LEDGER: &str = "CREATE TABLE ledger (id int PRIMARY KEY, acct int, amount numeric)";
pub const EVENTS: &str = "CREATE TABLE events (kind text, amount int, weight double precision)";

pub const BATCHES: usize = 200;

/// Which base tables a case needs.
#[derive(Clone, Copy)]
#[allow(dead_code)] // each file uses some of the shared fixtures
pub enum Tables {
    Org,
    OrgProjects,
    Events,
    Ledger,
}

pub async fn check(name: &str, query: &str, mode: Mode, tables: Tables, seed: u64) {
    check_with_ddl(name, query, mode, tables, seed, &[]).await
}

/// [`check`], running `ddl` (views, functions, ...) after the base tables are created
/// and filled and before the stream table is created.
pub async fn check_with_ddl(
    name: &str,
    query: &str,
    mode: Mode,
    tables: Tables,
    seed: u64,
    ddl: &[&str],
) {
    let db = test_db().await;
    let o = oracle_for(name, query, tables, seed);
    run_oracle(&db, &o, name, query, mode, ddl).await;
}

/// The oracle of [`check`] for `name` / `query` over `tables` (not run).
/// The strategy line `pgstream.pgs_status()` gives the stream table `name`.
pub async fn strategy(db: &TestDb, name: &str) -> String {
    sqlx::query_scalar("SELECT strategy FROM pgstream.pgs_status() WHERE name = $1")
        .bind(name)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

pub fn oracle_for(name: &str, query: &str, tables: Tables, seed: u64) -> Oracle {
    let mut o = Oracle::new(name, query)
        .seed(seed)
        .batches(BATCHES)
        .truncate_probability(0.02)
        .key_range(16);
    match tables {
        Tables::Org | Tables::OrgProjects => {
            o = o
                .table("departments", DEPARTMENTS)
                .table("employees", EMPLOYEES)
                .domain("employees", "department_id", Domain::Ints(0, 10))
                .domain("departments", "parent_id", Domain::Ints(0, 10))
                .domain("departments", "id", Domain::Ints(0, 12))
                .domain(
                    "employees",
                    "salary",
                    Domain::literals(&["10.50", "20", "30.25", "100", "NULL"]),
                );
            if let Tables::OrgProjects = tables {
                o = o.table("projects", PROJECTS).domain(
                    "projects",
                    "department_id",
                    Domain::Ints(0, 10),
                );
            }
        }
        Tables::Ledger => {
            o = o
                .table("ledger", LEDGER)
                .domain("ledger", "acct", Domain::Ints(0, 4))
                .domain(
                    "ledger",
                    "amount",
                    Domain::literals(&["1.5", "2.25", "3", "0.125", "7.10", "NULL"]),
                );
        }
        Tables::Events => {
            o = o
                .table("events", EVENTS)
                .domain("events", "amount", Domain::Ints(-3, 9))
                .float_tolerance(6);
        }
    }
    o
}

/// Sets the oracle's tables up, runs `ddl`, creates the stream table `name` (with the
/// adaptive switch off) and runs the oracle over it (an IMMEDIATE one with
/// [`Oracle::immediate`]).
pub async fn run_oracle(
    db: &TestDb,
    o: &Oracle,
    name: &str,
    query: &str,
    mode: Mode,
    ddl: &[&str],
) {
    // `PGS_ORACLE_MODE=immediate`: every DIFFERENTIAL case runs as IMMEDIATE (no
    // refresh; exact after every statement inside the writing transaction).
    let mode = match (mode, std::env::var("PGS_ORACLE_MODE").as_deref()) {
        (Mode::Differential, Ok(m)) if m.eq_ignore_ascii_case("immediate") => Mode::Immediate,
        (m, _) => m,
    };
    let immediate;
    let o = if mode == Mode::Immediate {
        immediate = o.clone().immediate();
        &immediate
    } else {
        o
    };
    o.setup(&db.pool).await;
    for stmt in ddl {
        if let Err(e) = sqlx::raw_sql(stmt).execute(&db.pool).await {
            panic!("{stmt} failed: {e}");
        }
    }
    let spec = StreamTableSpec {
        name: QualifiedName::new("public", name),
        query: query.to_string(),
        schedule: Schedule::default(),
        mode,
    };
    if let Err(e) = pgstream_runtime::create_stream_table(&db.pool, &spec).await {
        panic!("creating {name} failed: {e}");
    }
    // Every DIFFERENTIAL refresh stays differential: the adaptive switch to a full
    // refresh would otherwise take the larger windows (FULL mode has tests of its own).
    db.exec(&format!(
        "SELECT pgstream.set_full_refresh_ratio('{name}', NULL)"
    ))
    .await;
    o.assert_equivalent(&db.pool).await;
}

#[macro_export]
macro_rules! oracle {
    ($test:ident, $mode:expr, $tables:expr, $seed:expr, ddl = [$($ddl:expr),* $(,)?], $query:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            $crate::common::check_with_ddl(
                stringify!($test),
                $query,
                $mode,
                $tables,
                $seed,
                &[$($ddl),*],
            )
            .await;
        }
    };
    ($test:ident, $mode:expr, $tables:expr, $seed:expr, $query:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            $crate::common::check(stringify!($test), $query, $mode, $tables, $seed).await;
        }
    };
}
