//! placeholder
use proc_macro::TokenStream;
/// placeholder
#[proc_macro_attribute]
pub fn stream_table(_a: TokenStream, i: TokenStream) -> TokenStream { i }
