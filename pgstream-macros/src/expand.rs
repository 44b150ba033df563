//! The expansion of `#[stream_table]`: parse, model, load the schema, compile, check,
//! then generate.
//!
//! The struct is emitted unchanged, followed by
//!
//! ```text
//! const _: () = {
//!     const _: &str = include_str!("<migration>");   // one per file read
//!     impl ::pgstream::__private::StreamTable for X {
//!         const DEF: StreamTableDef = ...; const FIELDS = ...; const COLUMN_LIST = ...; const SELECT = ...;
//!     }
//!     impl<'r> ::pgstream::__private::sqlx::FromRow<'r, PgRow> for X { ... }
//! };
//! ```
//!
//! Generated code names only `::pgstream::__private::…`, so the user's crate needs no
//! other dependency.

use crate::ast::Container;
use crate::attr::{Attrs, QuerySource};
use crate::ctxt::Ctxt;
use crate::{check, diagnostic, schema};
use pgstream_core::{compile, Compiled, Mode, QualifiedName, Schedule, StreamTableSpec};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use std::path::PathBuf;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::DeriveInput;

/// Everything the expansion needs once all checks passed.
struct Expansion<'a> {
    cont: Container<'a>,
    name: QualifiedName,
    /// Where the name comes from: the `name = "..."` literal, else the struct's name.
    name_span: Span,
    query: String,
    schedule: String,
    mode: Mode,
    compiled: Compiled,
    tracked: Vec<PathBuf>,
}

/// Expand `#[stream_table(args)]` on `input`; `Err` holds every error found.
pub(crate) fn expand(args: TokenStream, input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let expansion = analyse(&cx, args, input);
    cx.check()?;
    let expansion = expansion.expect("no errors reported, so the analysis completed");
    Ok(generate(input, &expansion))
}

/// The help line under an invalid `schedule`: the cron syntax for an error inside a
/// cron expression, otherwise both forms.
fn schedule_help(msg: &str) -> &'static str {
    if msg.starts_with("invalid cron expression") && !msg.contains("expected 5 fields") {
        "a cron expression is `minute hour day-of-month month day-of-week` (UTC), such as \
         `*/5 * * * *` or `0 3 * * MON-FRI`; a sixth field in front is the second"
    } else {
        "write a duration such as `30s`, `5m`, `1h` or `1h30m`, `on commit`, or a cron expression such as `*/5 * * * *`"
    }
}

/// Run every check, reporting to `cx`; `Some` only if nothing failed.
fn analyse<'a>(cx: &Ctxt, args: TokenStream, input: &'a DeriveInput) -> Option<Expansion<'a>> {
    let attrs = Attrs::from_args(cx, args);
    let cont = Container::from_ast(cx, input);
    if let Some(span) = derives_from_row(input) {
        cx.error_at(
            span,
            "#[stream_table] implements `sqlx::FromRow` for this struct already (each field read \
             from its column): remove `FromRow` from this derive",
        );
    }

    // An invalid value is reported, and a stand-in keeps the checks going so that one
    // build reports every problem; nothing is generated after an error anyway.
    let schedule = match &attrs.schedule {
        Some(lit) => match lit.value().parse::<Schedule>() {
            Ok(_) => lit.value().trim().to_string(),
            Err(msg) => {
                cx.error_at(
                    lit.span(),
                    format!("{msg}\n  = help: {}", schedule_help(&msg)),
                );
                Schedule::default().to_string()
            }
        },
        None => Schedule::default().to_string(),
    };
    let mode = match &attrs.mode {
        Some(lit) => lit.value().parse::<Mode>().unwrap_or_else(|msg| {
            cx.error_at(lit.span(), msg);
            // FULL accepts every valid query: no follow-on "unsupported" error.
            Mode::Full
        }),
        None => Mode::Differential,
    };
    let default_name =
        || QualifiedName::new("public", snake_case(&input.ident.unraw().to_string()));
    let name = match &attrs.name {
        Some(lit) => QualifiedName::parse(&lit.value()).unwrap_or_else(|msg| {
            cx.error_at(lit.span(), msg);
            default_name()
        }),
        None => default_name(),
    };

    let mut tracked = Vec::new();
    let query = match &attrs.query {
        Some(QuerySource::Inline(lit)) => Some(lit.value()),
        Some(QuerySource::File(lit)) => match schema::read_query_file(lit) {
            Ok((text, path)) => {
                tracked.push(path);
                Some(text)
            }
            Err(err) => {
                cx.syn_error(err);
                None
            }
        },
        None => None,
    };
    let schema = match schema::load(attrs.schema.as_ref()) {
        Ok(schema) => Some(schema),
        Err(err) => {
            cx.syn_error(err);
            None
        }
    };

    let (Some(query_src), Some(query), Some(schema)) = (&attrs.query, query, schema) else {
        return None;
    };
    tracked.extend(schema.files);

    let spec = StreamTableSpec {
        name: name.clone(),
        query: query.clone(),
        schedule: schedule.parse().unwrap_or_default(),
        mode,
    };
    let compiled = match compile(&spec, &schema.catalog) {
        Ok(compiled) => compiled,
        Err(err) => {
            let from_file = matches!(query_src, QuerySource::File(_));
            cx.syn_error(diagnostic::compile_error(
                &err,
                &query,
                query_src.literal(),
                from_file,
            ));
            return None;
        }
    };

    let cont = cont?;
    check::check_fields(cx, &cont, &compiled.columns);
    check::check_types(cx, &cont, &compiled.columns, |column| {
        pgstream_core::nullable_reason(&query, &schema.catalog, column)
    });
    let name_span = match &attrs.name {
        Some(lit) => lit.span(),
        None => cont.ident.span(),
    };
    Some(Expansion {
        cont,
        name,
        name_span,
        query,
        schedule,
        mode,
        compiled,
        tracked,
    })
}

fn generate(input: &DeriveInput, e: &Expansion<'_>) -> TokenStream {
    let ident = e.cont.ident;
    let schema = &e.name.schema;
    let name = &e.name.name;
    let query = &e.query;
    let schedule = &e.schedule;
    let mode = match e.mode {
        Mode::Differential => quote!(::pgstream::__private::Mode::Differential),
        Mode::Full => quote!(::pgstream::__private::Mode::Full),
        Mode::Immediate => quote!(::pgstream::__private::Mode::Immediate),
    };
    let columns = e.compiled.columns.iter().map(|c| &c.name);
    let column_list = e
        .compiled
        .columns
        .iter()
        .map(|c| pgstream_core::quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!(
        "SELECT {column_list} FROM {}",
        pgstream_core::quote_qualified(&e.name)
    );
    let tracked = e.tracked.iter().map(|p| {
        let p = p.to_string_lossy();
        quote!(
            const _: &str = ::core::include_str!(#p);
        )
    });
    let fields = e.cont.fields.iter().map(|f| {
        let column = &f.column;
        let (option, rust_type, sql_types) = check::field_def(f.ty);
        quote! {
            ::pgstream::__private::FieldDef {
                column: #column,
                rust_type: #rust_type,
                sql_types: &[#(#sql_types),*],
                option: #option,
            }
        }
    });
    let reads = e.cont.fields.iter().map(|f| {
        let member = f.member;
        let column = &f.column;
        let ty = f.ty;
        quote_spanned! {ty.span()=>
            #member: ::pgstream::__private::sqlx::Row::try_get::<#ty, _>(__row, #column)?
        }
    });

    // Two stream tables of one name in one module define this constant twice: E0428
    // "the name `__pgstream_stream_table_named__public__x` is defined multiple times",
    // pointing at both. Across modules the runtime's builder catches it at start-up.
    let marker = proc_macro2::Ident::new(
        &format!(
            "__pgstream_stream_table_named__{}__{}",
            ident_safe(schema),
            ident_safe(name)
        ),
        e.name_span,
    );
    let marker = quote_spanned! {e.name_span=>
        #[doc(hidden)]
        #[allow(dead_code, non_upper_case_globals)]
        const #marker: () = ();
    };

    quote! {
        #input

        #marker

        const _: () = {
            #(#tracked)*

            #[automatically_derived]
            impl ::pgstream::__private::StreamTable for #ident {
                const DEF: ::pgstream::__private::StreamTableDef = ::pgstream::__private::StreamTableDef {
                    schema: #schema,
                    name: #name,
                    query: #query,
                    schedule: #schedule,
                    mode: #mode,
                    columns: &[#(#columns),*],
                };
                const FIELDS: &'static [::pgstream::__private::FieldDef] = &[#(#fields),*];
                const COLUMN_LIST: &'static str = #column_list;
                const SELECT: &'static str = #select;
            }

            #[automatically_derived]
            impl<'__r> ::pgstream::__private::sqlx::FromRow<'__r, ::pgstream::__private::sqlx::postgres::PgRow>
                for #ident
            {
                fn from_row(
                    __row: &'__r ::pgstream::__private::sqlx::postgres::PgRow,
                ) -> ::core::result::Result<Self, ::pgstream::__private::sqlx::Error> {
                    ::core::result::Result::Ok(#ident {
                        #(#reads,)*
                    })
                }
            }
        };
    }
}

/// A name as identifier characters: others become `_xHH_`.
fn ident_safe(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push_str(&format!("_x{:x}_", c as u32));
        }
    }
    out
}

/// `DepartmentStats` → `department_stats`, `HTTPRequests` → `http_requests`.
pub(crate) fn snake_case(ident: &str) -> String {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()),
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The original item followed by the errors, so that code using the struct does not
/// fail a second time (tokio-macros' `token_stream_with_error`).
pub(crate) fn token_stream_with_error(mut item: TokenStream, error: syn::Error) -> TokenStream {
    item.extend(error.into_compile_error());
    item
}

/// After an error, stand-ins for the two impls, so that the code using the struct
/// (`register::<X>()`, `query_as::<_, X>`) does not add "the trait `StreamTable` is not
/// implemented" errors to the one that matters. They are never used: the build fails.
/// No `FromRow` stand-in when the struct derives one itself (that is an error too).
pub(crate) fn stand_in_impls(input: &DeriveInput) -> TokenStream {
    if !matches!(input.data, syn::Data::Struct(_)) {
        return TokenStream::new();
    }
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let from_row = if derives_from_row(input).is_some() || !input.generics.params.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            #[automatically_derived]
            impl<'__r> ::pgstream::__private::sqlx::FromRow<'__r, ::pgstream::__private::sqlx::postgres::PgRow>
                for #ident
            {
                fn from_row(
                    _: &'__r ::pgstream::__private::sqlx::postgres::PgRow,
                ) -> ::core::result::Result<Self, ::pgstream::__private::sqlx::Error> {
                    ::core::unreachable!("#[stream_table] failed to compile")
                }
            }
        }
    };
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics ::pgstream::__private::StreamTable for #ident #ty_generics #where_clause {
                const DEF: ::pgstream::__private::StreamTableDef = ::pgstream::__private::StreamTableDef {
                    schema: "",
                    name: "",
                    query: "",
                    schedule: "",
                    mode: ::pgstream::__private::Mode::Full,
                    columns: &[],
                };
                const FIELDS: &'static [::pgstream::__private::FieldDef] = &[];
                const COLUMN_LIST: &'static str = "";
                const SELECT: &'static str = "";
            }
            #from_row
        };
    }
}

/// The `FromRow` in a `#[derive(...)]` on the struct, if any (`FromRow`,
/// `sqlx::FromRow`, ...).
pub(crate) fn derives_from_row(input: &DeriveInput) -> Option<Span> {
    let mut found = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let _ = attr.parse_nested_meta(|meta| {
            if let Some(last) = meta.path.segments.last().filter(|s| s.ident == "FromRow") {
                found = Some(last.ident.span());
            }
            Ok(())
        });
    }
    found
}

/// The error for an item that is not even a struct, enum or union.
pub(crate) fn not_a_struct() -> syn::Error {
    syn::Error::new(
        Span::call_site(),
        "#[stream_table] applies to a struct with named fields, one per output column of the query",
    )
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("DepartmentStats"), "department_stats");
        assert_eq!(snake_case("HTTPRequests"), "http_requests");
        assert_eq!(snake_case("Stats2024Q1"), "stats2024_q1");
        assert_eq!(snake_case("already_snake"), "already_snake");
        assert_eq!(snake_case("A"), "a");
    }
}
