//! Writes the README's quick start (the first ```rust block after "## Quick start")
//! into OUT_DIR for `src/main.rs` to include, so the program the tests build and run
//! is the README's text, verbatim.
use std::{env, fs, path::Path};

fn main() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    println!("cargo:rerun-if-changed=migrations");
    let text = fs::read_to_string(&readme).expect("read README.md");
    let section = text
        .split_once("## Quick start")
        .expect("README.md has a `## Quick start` section")
        .1;
    let code = section
        .split_once("```rust\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .expect("the quick start has a ```rust block")
        .0;
    let out = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("quick_start.rs");
    fs::write(out, code).expect("write quick_start.rs");
}
