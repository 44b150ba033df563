//! Compile-pass and compile-fail cases of `#[stream_table]`.
//!
//! Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p pgstream-ui-tests`, then review the diff.

#[test]
fn ui() {
    // trybuild compiles each case in a generated crate, whose CARGO_MANIFEST_DIR is not
    // this directory (dtolnay/trybuild#202): point the macro at our `migrations/`.
    std::env::set_var("PGSTREAM_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"));

    let t = trybuild::TestCases::new();
    t.pass("tests/pass/*.rs");
    t.compile_fail("tests/fail/*/*.rs");
}
