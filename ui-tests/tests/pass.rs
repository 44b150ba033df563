//! Compile-pass cases of `#[stream_table]`: each case must compile (against this
//! crate's `migrations/`), and its `check` asserts what the macro generated.
//!
//! They are ordinary modules of one test binary, built with the workspace's other
//! tests: as trybuild cases each was a crate of its own, compiled, linked and run
//! against a second build of every dependency. The compile-fail cases stay in `ui.rs`.
#![allow(dead_code)]

#[path = "pass/aggregate_subqueries.rs"]
mod aggregate_subqueries;
#[path = "pass/cron_schedule.rs"]
mod cron_schedule;
#[path = "pass/department_stats.rs"]
mod department_stats;
#[path = "pass/department_tree.rs"]
mod department_tree;
#[path = "pass/field_types.rs"]
mod field_types;
#[path = "pass/filter_full_named.rs"]
mod filter_full_named;
#[path = "pass/immediate_mode.rs"]
mod immediate_mode;
#[path = "pass/on_commit_schedule.rs"]
mod on_commit_schedule;
#[path = "pass/query_file_defaults.rs"]
mod query_file_defaults;
#[path = "pass/schema_dir.rs"]
mod schema_dir;
#[path = "pass/set_returning_functions.rs"]
mod set_returning_functions;
#[path = "pass/view_source.rs"]
mod view_source;

#[test]
fn aggregate_subqueries() {
    aggregate_subqueries::check();
}

#[test]
fn cron_schedule() {
    cron_schedule::check();
}

#[test]
fn department_stats() {
    department_stats::check();
}

#[test]
fn department_tree() {
    department_tree::check();
}

#[test]
fn field_types() {
    field_types::check();
}

#[test]
fn filter_full_named() {
    filter_full_named::check();
}

#[test]
fn immediate_mode() {
    immediate_mode::check();
}

#[test]
fn on_commit_schedule() {
    on_commit_schedule::check();
}

#[test]
fn query_file_defaults() {
    query_file_defaults::check();
}

#[test]
fn schema_dir() {
    schema_dir::check();
}

#[test]
fn set_returning_functions() {
    set_returning_functions::check();
}

#[test]
fn view_source() {
    view_source::check();
}
