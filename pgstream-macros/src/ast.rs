//! The annotated struct, modelled for the checks and the expansion.
//!
//! Like serde_derive's `internals/ast.rs`, each node keeps a reference to its
//! `original` syntax so that errors can point at the user's tokens.

use crate::ctxt::Ctxt;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, Ident, Type};

/// A struct with named fields: the row type of a stream table.
pub(crate) struct Container<'a> {
    /// The struct's name.
    pub(crate) ident: &'a Ident,
    /// Its fields, in declaration order.
    pub(crate) fields: Vec<Field<'a>>,
}

/// One field: one output column of the defining query.
pub(crate) struct Field<'a> {
    /// The field's identifier as written (possibly raw, `r#type`).
    pub(crate) member: &'a Ident,
    /// The column it reads: the identifier without `r#`.
    pub(crate) column: String,
    /// The field's type.
    pub(crate) ty: &'a Type,
}

impl<'a> Container<'a> {
    /// Model `item`, reporting why it cannot be a stream table if it cannot.
    pub(crate) fn from_ast(cx: &Ctxt, item: &'a DeriveInput) -> Option<Container<'a>> {
        let fields = match &item.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => &named.named,
                Fields::Unnamed(unnamed) => {
                    cx.error_spanned_by(
                        unnamed,
                        "#[stream_table] needs a struct with named fields, one per output column of the query; \
                         found a tuple struct",
                    );
                    return None;
                }
                Fields::Unit => {
                    cx.error_spanned_by(
                        item,
                        "#[stream_table] needs a struct with named fields, one per output column of the query; \
                         found a unit struct",
                    );
                    return None;
                }
            },
            Data::Enum(data) => {
                cx.error_at(
                    data.enum_token.span,
                    "#[stream_table] applies to structs with named fields, not to enums",
                );
                return None;
            }
            Data::Union(data) => {
                cx.error_at(
                    data.union_token.span,
                    "#[stream_table] applies to structs with named fields, not to unions",
                );
                return None;
            }
        };
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            cx.error_spanned_by(
                &item.generics,
                "a #[stream_table] struct cannot be generic: it describes the rows of one table",
            );
        }
        let fields = fields
            .iter()
            .map(|f| {
                let member = f.ident.as_ref().expect("named field");
                Field {
                    member,
                    column: member.unraw().to_string(),
                    ty: &f.ty,
                }
            })
            .collect();
        Some(Container {
            ident: &item.ident,
            fields,
        })
    }
}
