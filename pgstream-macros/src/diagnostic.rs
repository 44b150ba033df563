//! Compiler errors turned into `compile_error!`s on the user's tokens.

use pgstream_core::Error;
use syn::LitStr;

/// The error of compiling `query`, placed on the literal it came from (`query = "..."`
/// or `query_file = "..."`). The message quotes the query and underlines the offending
/// fragment, since a string literal cannot be spanned piecewise on stable Rust.
pub(crate) fn compile_error(
    err: &Error,
    query: &str,
    literal: &LitStr,
    from_file: bool,
) -> syn::Error {
    let mut msg = err.render(query);
    if from_file {
        msg = msg.replace("--> query line", &format!("--> {} line", literal.value()));
    }
    if matches!(err, Error::Internal(_)) {
        msg.push_str("\n  = note: this is a bug in pgstream; please report it with the query");
    }
    syn::Error::new(literal.span(), msg)
}
