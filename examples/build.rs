//! Rebuild when a migration is added: `#[stream_table]` includes each migration file it
//! reads, so Cargo notices edits, but only this tells it to look for new files (the
//! same advice as for `sqlx::migrate!()`).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
