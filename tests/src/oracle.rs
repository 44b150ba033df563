//! Equivalence oracle (work in progress).

/// The equivalence oracle.
pub struct Oracle;

/// A detected difference.
#[derive(Debug)]
pub struct OracleFailure;
