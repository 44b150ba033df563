//! trybuild cases for `#[pgstream::stream_table]`: `tests/pass/` must compile and run,
//! `tests/fail/<category>/` must fail with the `.stderr` beside each case. The cases
//! compile against `migrations/` of this crate (see `tests/ui.rs`).
