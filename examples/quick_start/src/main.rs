//! The README's quick start, verbatim (see build.rs).
include!(concat!(env!("OUT_DIR"), "/quick_start.rs"));
