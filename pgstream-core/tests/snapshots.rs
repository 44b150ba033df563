//! Snapshots of the SQL generated for the tutorial's two stream tables, pretty-printed
//! (one snapshot per operator is in `artifacts.rs`). Review changes with `cargo insta
//! review`.
mod common;
use common::*;
use pgstream_core::*;

fn artifacts(query: &str) -> (Compiled, Artifacts) {
    let c = diff(query).unwrap();
    let a = render_fixed(&c);
    (c, a)
}

#[test]
fn department_stats_sql() {
    let (c, a) = artifacts(DEPARTMENT_STATS);
    insta::assert_snapshot!(
        "department_stats_storage",
        pretty(&a.storage_ddl.join(";\n"))
    );
    insta::assert_snapshot!("department_stats_full", pretty(&a.full_refresh));
    insta::assert_snapshot!(
        "department_stats_differential",
        pretty(&a.differential_refresh.unwrap())
    );
    insta::assert_snapshot!(
        "department_stats_explain",
        c.explain().split("\nstorage table:").next().unwrap()
    );
}

#[test]
fn department_tree_sql() {
    let (c, a) = artifacts(DEPARTMENT_TREE);
    insta::assert_snapshot!(
        "department_tree_storage",
        pretty(&a.storage_ddl.join(";\n"))
    );
    insta::assert_snapshot!("department_tree_full", pretty(&a.full_refresh));
    insta::assert_snapshot!(
        "department_tree_differential",
        pretty(&a.differential_refresh.unwrap())
    );
    insta::assert_snapshot!(
        "department_tree_explain",
        c.explain().split("\nstorage table:").next().unwrap()
    );
}
