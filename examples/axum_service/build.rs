//! Rebuild when a migration is added (`#[stream_table]` reads `migrations/`).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
