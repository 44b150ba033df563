//! Compile-fail cases of `#[stream_table]` (the compile-pass cases are `pass.rs`).
//!
//! Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p pgstream-ui-tests`, then review the diff.

#[test]
fn ui() {
    // trybuild compiles each case in a generated crate, whose CARGO_MANIFEST_DIR is not
    // this directory (dtolnay/trybuild#202): point the macro at our `migrations/`.
    std::env::set_var("PGSTREAM_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"));
    // trybuild builds every dependency again, in a target directory of its own and
    // without the workspace's profile: without debug info that build takes 40 % less
    // time and a third of the disk (5.3 GB with it).
    std::env::set_var("CARGO_PROFILE_DEV_DEBUG", "0");

    let t = trybuild::TestCases::new();
    t.compile_fail("tests/fail/*/*.rs");
}
