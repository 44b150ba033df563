//! The arguments of `#[stream_table(...)]`, parsed into typed values.
//!
//! Modelled on serde_derive's `internals/attr.rs`: one [`Symbol`] per key, every
//! argument is `key = "string literal"`, and unknown or duplicate keys are reported on
//! the key itself. Rules that involve several keys at once are checked here too (the
//! query comes from exactly one of `query` and `query_file`).

use crate::ctxt::Ctxt;
use proc_macro2::{Span, TokenStream};
use std::fmt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Path, Token};

/// The name of one attribute key.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) struct Symbol(&'static str);

/// `query = "SELECT ..."`: the defining query.
pub(crate) const QUERY: Symbol = Symbol("query");
/// `query_file = "queries/x.sql"`: the defining query, read from a file.
pub(crate) const QUERY_FILE: Symbol = Symbol("query_file");
/// `schedule = "30s"`: the staleness bound, a cron expression or `"on commit"`.
pub(crate) const SCHEDULE: Symbol = Symbol("schedule");
/// `mode = "differential" | "full" | "immediate"`.
pub(crate) const MODE: Symbol = Symbol("mode");
/// `name = "schema.table"`: the storage table.
pub(crate) const NAME: Symbol = Symbol("name");
/// `schema = "migrations"`: the directory of migrations to compile against.
pub(crate) const SCHEMA: Symbol = Symbol("schema");

/// Every key, in the order the documentation lists them.
const KEYS: [Symbol; 6] = [QUERY, QUERY_FILE, SCHEDULE, MODE, NAME, SCHEMA];

impl Symbol {
    fn is(self, path: &Path) -> bool {
        path.is_ident(self.0)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// One optional key, remembering the first value seen.
struct Attr<'c> {
    cx: &'c Ctxt,
    name: Symbol,
    value: Option<LitStr>,
}

impl<'c> Attr<'c> {
    fn none(cx: &'c Ctxt, name: Symbol) -> Self {
        Attr {
            cx,
            name,
            value: None,
        }
    }

    fn set(&mut self, key: &Path, value: LitStr) {
        if self.value.is_some() {
            self.cx
                .error_spanned_by(key, format!("duplicate `{}` argument", self.name));
        } else {
            self.value = Some(value);
        }
    }

    fn get(self) -> Option<LitStr> {
        self.value
    }
}

/// Where the defining query comes from.
pub(crate) enum QuerySource {
    /// `query = "..."`.
    Inline(LitStr),
    /// `query_file = "..."`, relative to the crate's directory.
    File(LitStr),
}

impl QuerySource {
    /// The literal that errors about the query point at.
    pub(crate) fn literal(&self) -> &LitStr {
        match self {
            QuerySource::Inline(l) | QuerySource::File(l) => l,
        }
    }
}

/// The parsed arguments. Values are kept as literals so that later errors can point at
/// them.
pub(crate) struct Attrs {
    /// The defining query; `None` only if an error was reported.
    pub(crate) query: Option<QuerySource>,
    /// `schedule = "..."`.
    pub(crate) schedule: Option<LitStr>,
    /// `mode = "..."`.
    pub(crate) mode: Option<LitStr>,
    /// `name = "..."`.
    pub(crate) name: Option<LitStr>,
    /// `schema = "..."`.
    pub(crate) schema: Option<LitStr>,
}

impl Attrs {
    /// Parse the tokens between the parentheses of `#[stream_table(...)]`.
    pub(crate) fn from_args(cx: &Ctxt, args: TokenStream) -> Attrs {
        let mut query = Attr::none(cx, QUERY);
        let mut query_file = Attr::none(cx, QUERY_FILE);
        let mut schedule = Attr::none(cx, SCHEDULE);
        let mut mode = Attr::none(cx, MODE);
        let mut name = Attr::none(cx, NAME);
        let mut schema = Attr::none(cx, SCHEMA);

        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
            Ok(metas) => metas,
            Err(err) => {
                cx.syn_error(err);
                Punctuated::new()
            }
        };
        let parsed_ok = !cx.has_errors();

        for meta in metas {
            let key = meta.path().clone();
            let Some(symbol) = KEYS.into_iter().find(|s| s.is(&key)) else {
                cx.error_spanned_by(&key, unknown_key_message(&key));
                continue;
            };
            let value = match meta {
                Meta::NameValue(nv) => match nv.value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) => s,
                    other => {
                        cx.error_spanned_by(
                            other,
                            format!("expected a string literal: `{symbol} = \"...\"`"),
                        );
                        continue;
                    }
                },
                other => {
                    cx.error_spanned_by(other, format!("expected `{symbol} = \"...\"`"));
                    continue;
                }
            };
            let slot = match symbol {
                QUERY => &mut query,
                QUERY_FILE => &mut query_file,
                SCHEDULE => &mut schedule,
                MODE => &mut mode,
                NAME => &mut name,
                _ => &mut schema,
            };
            slot.set(&key, value);
        }

        let query = match (query.get(), query_file.get()) {
            (Some(q), None) => Some(QuerySource::Inline(q)),
            (None, Some(f)) => Some(QuerySource::File(f)),
            (Some(_), Some(f)) => {
                cx.error_spanned_by(
                    &f,
                    "`query` and `query_file` are mutually exclusive: give the query inline or in a file, not both",
                );
                None
            }
            (None, None) => {
                // A syntax error in the arguments already explains what is missing.
                if parsed_ok {
                    cx.error_at(
                        Span::call_site(),
                        "missing the defining query: add `query = \"SELECT ...\"` or `query_file = \"path/to/query.sql\"`",
                    );
                }
                None
            }
        };

        Attrs {
            query,
            schedule: schedule.get(),
            mode: mode.get(),
            name: name.get(),
            schema: schema.get(),
        }
    }
}

fn unknown_key_message(key: &Path) -> String {
    let shown = quote::ToTokens::to_token_stream(key)
        .to_string()
        .replace(' ', "");
    let valid = KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut msg = format!("unknown argument `{shown}`; expected one of: {valid}");
    if let Some(near) = pgstream_core::catalog::nearest(&shown, KEYS.iter().map(|k| k.0)) {
        msg.push_str(&format!("\n  = help: did you mean `{near}`?"));
    }
    msg
}
