//! The model every pass shares.

pub(crate) mod marker;
