//! Snapshots of the SQL generated for the tutorial's two stream tables, pretty-printed
//! (one snapshot per operator is in `artifacts.rs`). Review changes with `cargo insta
//! review`.
mod common;
use common::*;

/// The storage DDL, full and differential refresh and explain of `query`, as the
/// snapshots `<name>_storage`, `_full`, `_differential` and `_explain`.
fn snapshot_statements(name: &str, query: &str) {
    let c = diff(query).unwrap();
    let a = render_fixed(&c);
    let parts = [
        ("storage", pretty(&a.storage_ddl.join(";\n"))),
        ("full", pretty(&a.full_refresh)),
        ("differential", pretty(&a.differential_refresh.unwrap())),
        (
            "explain",
            c.explain()
                .split("\nstorage table:")
                .next()
                .unwrap()
                .to_string(),
        ),
    ];
    for (part, text) in parts {
        insta::assert_snapshot!(format!("{name}_{part}"), text);
    }
}

#[test]
fn department_stats_sql() {
    snapshot_statements("department_stats", DEPARTMENT_STATS);
}

#[test]
fn department_tree_sql() {
    snapshot_statements("department_tree", DEPARTMENT_TREE);
}
