//! The README's quick start, as a new user runs it: the program built from the
//! README's own text (build.rs) runs against a fresh database, twice (a second start
//! finds the stream table there), and the README's other blocks match this crate.

use std::process::Command;

use pgstream_tests::test_db;

fn readme_block(lang: &str) -> String {
    let readme = include_str!("../../../README.md");
    let section = readme.split_once("## Quick start").unwrap().1;
    section
        .split_once(&format!("```{lang}\n"))
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .unwrap_or_else(|| panic!("no ```{lang} block in the quick start"))
        .0
        .to_string()
}

fn run(url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pgstream-quick-start"))
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the quick start");
    assert!(
        out.status.success(),
        "the README's quick start failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_readme_quick_start_runs_as_written() {
    let db = test_db().await;
    let first = run(&db.url);
    assert_eq!(
        first.trim(),
        "DepartmentStats { department_id: 1, department_name: \"Engineering\", headcount: 1, \
         total_salary: 105000.00, avg_salary: 105000.000000000000 }"
    );
    let second = run(&db.url);
    assert!(second.contains("headcount: 2"), "{second}");
}

#[test]
fn the_readme_blocks_match_this_crate() {
    let migration = include_str!("../migrations/0001_tutorial.sql");
    assert_eq!(readme_block("sql").trim(), migration.trim());
    let manifest = include_str!("../Cargo.toml");
    for line in readme_block("toml").lines().skip(1) {
        let line = if line.starts_with("pgstream =") {
            "pgstream = { path = \"../../pgstream\" }"
        } else {
            line
        };
        assert!(
            manifest.contains(line),
            "Cargo.toml lacks the README's `{line}`"
        );
    }
}

/// The README's `#[sqlx::test]` example ("Testing") is `tests/sqlx_test.rs`, which
/// the tests compile and run, less its `#[ignore]` line.
#[test]
fn the_readme_testing_example_is_the_compiled_one() {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split_once("\n## Testing")
        .expect("README.md has a `## Testing` section")
        .1;
    let block = section
        .split_once("```rust\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .expect("the Testing section has a ```rust block")
        .0;
    let file = include_str!("sqlx_test.rs");
    let compiled = file
        .split_once("// README testing block: begin\n")
        .and_then(|(_, rest)| rest.split_once("\n// README testing block: end"))
        .expect("the markers in tests/sqlx_test.rs")
        .0;
    let compiled: Vec<&str> = compiled
        .lines()
        .filter(|l| !l.starts_with("#[ignore"))
        .collect();
    assert_eq!(block.lines().collect::<Vec<_>>(), compiled);
}
