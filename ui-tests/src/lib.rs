//! Compile-time cases for `#[pgstream::stream_table]`: `tests/pass.rs` holds the cases
//! that must compile (each checks what the macro generated), `tests/ui.rs` runs the
//! trybuild cases under `tests/fail/<category>/`, which must fail with the `.stderr`
//! beside each case. The cases compile against `migrations/` of this crate.
