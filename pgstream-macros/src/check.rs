//! Rules that span the struct and the compiled query: one field per output column, and
//! each field's type matches its column's SQL type and nullability.

use crate::ast::Container;
use crate::ctxt::Ctxt;
use pgstream_core::rust_types::suggestion;
use pgstream_core::OutputColumn;

/// Every output column needs a field of the same name and every field a column. Order
/// does not matter: rows are read by column name.
pub(crate) fn check_fields(cx: &Ctxt, cont: &Container<'_>, columns: &[OutputColumn]) {
    let column_list = list(columns.iter().map(|c| c.name.as_str()));
    let field_list = list(cont.fields.iter().map(|f| f.column.as_str()));

    for field in &cont.fields {
        if !columns.iter().any(|c| c.name == field.column) {
            let mut msg = format!(
                "field `{}` is not an output column of the query\n  = note: query columns: {column_list}\n  = note: struct fields:  {field_list}",
                field.column
            );
            if let Some(near) = pgstream_core::catalog::nearest(
                &field.column,
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .filter(|c| !cont.fields.iter().any(|f| f.column == *c)),
            ) {
                msg.push_str(&format!("\n  = help: did you mean `{near}`?"));
            }
            cx.error_spanned_by(field.member, msg);
        }
    }

    let missing: Vec<&str> = columns
        .iter()
        .map(|c| c.name.as_str())
        .filter(|c| !cont.fields.iter().any(|f| f.column == *c))
        .collect();
    if !missing.is_empty() {
        let (noun, these) = if missing.len() == 1 {
            ("column", "it")
        } else {
            ("columns", "them")
        };
        let mut msg = format!(
            "struct `{}` has no field for the query's output {noun} {}\n  = note: query columns: {column_list}\n  = note: struct fields:  {field_list}\n  = help: add a field per column, or remove {these} from the query",
            cont.ident,
            list(missing.iter().copied()),
        );
        let unnamable: Vec<&str> = missing
            .iter()
            .copied()
            .filter(|c| !is_field_name(c))
            .collect();
        if !unnamable.is_empty() {
            msg.push_str(&format!(
                "\n  = help: no field can be named {}: give the expression an alias in the query (`... AS total`)",
                list(unnamable.into_iter()),
            ));
        }
        cx.error_spanned_by(cont.ident, msg);
    }

    for (i, c) in columns.iter().enumerate() {
        if columns[..i].iter().any(|p| p.name == c.name) {
            cx.error_spanned_by(
                cont.ident,
                format!(
                    "the query has two output columns named `{}`: give one an alias with `AS`",
                    c.name
                ),
            );
        }
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}

/// Whether a column name can be a field's name (possibly raw: `r#type`).
fn is_field_name(column: &str) -> bool {
    syn::parse_str::<syn::Ident>(column).is_ok()
        || syn::parse_str::<syn::Ident>(&format!("r#{column}")).is_ok()
}

/// Each field's Rust type against the SQL type and nullability inferred for its
/// column: the type sqlx decodes the column into, and `Option<T>` exactly where the
/// column can be NULL. Matching is on the last path segment (`Decimal`,
/// `rust_decimal::Decimal`), so a user type of another name is accepted, and so is a
/// column whose type pgstream could not infer: the runtime checks those at start-up.
pub(crate) fn check_types(
    cx: &Ctxt,
    cont: &Container<'_>,
    columns: &[OutputColumn],
    null_reason: impl Fn(&str) -> Option<String>,
) {
    for field in &cont.fields {
        let Some(col) = columns.iter().find(|c| c.name == field.column) else {
            continue;
        };
        let (is_option, inner) = match option_inner(field.ty) {
            Some(inner) => (true, inner),
            None => (false, field.ty),
        };
        let shown = show(field.ty);
        let column = &col.name;

        if let Some(sql) = &col.sql_type {
            let base = pgstream_core::base_type(sql);
            if let (Some(rust), Some(fix)) = (rust_sql_type(inner), suggestion(&base)) {
                if !accepts(&rust, &base) {
                    let option = col.nullable.unwrap_or(is_option);
                    let fixed = if option {
                        format!("Option<{fix}>")
                    } else {
                        fix.clone()
                    };
                    let null = match col.nullable {
                        Some(true) => ", nullable",
                        Some(false) => ", NOT NULL",
                        None => "",
                    };
                    let comparison = if base == "boolean" && accepts(&rust, "text") {
                        "\n  = note: a boolean column is a comparison or a condition; if it should be text, check the \
                         operators of its expression: `a || '' > '' || b` compares two strings, where `a || ' > ' || b` \
                         concatenates them"
                    } else {
                        ""
                    };
                    cx.error_spanned_by(
                        field.ty,
                        format!(
                            "field `{column}` has type `{shown}`, but the query's column `{column}` is `{sql}`{null}{comparison}\n  \
                             = note: `{shown}` reads {}\n  \
                             = help: declare the field as `{fixed}`, or cast the column in the query to a SQL type the field reads",
                            rust.describe(),
                        ),
                    );
                    continue;
                }
            }
        }

        let sql = col
            .sql_type
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        match (col.nullable, is_option) {
            (Some(true), false) => cx.error_spanned_by(
                field.ty,
                format!(
                    "the query's column `{column}`{sql} can be NULL, but field `{column}` has type `{shown}`, which cannot hold NULL\n  \
                     = note: {}\n  \
                     = help: declare the field as `Option<{shown}>`, or give the column a value for NULL in the query: `COALESCE(..., <default>) AS {column}`",
                    null_reason(column).unwrap_or_else(|| {
                        "a column can be NULL when its source column is nullable, when an outer join pads it, \
                         or when an aggregate other than count sees no rows"
                            .to_string()
                    })
                ),
            ),
            (Some(false), true) => cx.error_spanned_by(
                field.ty,
                format!(
                    "the query's column `{column}`{sql} is never NULL, but field `{column}` has type `{shown}`\n  \
                     = help: declare the field as `{}`",
                    show(inner)
                ),
            ),
            _ => {}
        }
    }
}

/// What the runtime's start-up check needs of a field: whether it is an `Option`, its
/// type as written, and the SQL types (without modifiers) it reads, empty for a type
/// this check does not know.
pub(crate) fn field_def(ty: &syn::Type) -> (bool, String, Vec<String>) {
    let (option, inner) = match option_inner(ty) {
        Some(inner) => (true, inner),
        None => (false, ty),
    };
    let types = match rust_sql_type(inner) {
        Some(RustSql::Scalar(types)) => types.iter().map(|t| t.to_string()).collect(),
        Some(RustSql::Array(elem)) => match *elem {
            RustSql::Scalar(types) => types.iter().map(|t| format!("{t}[]")).collect(),
            RustSql::Array(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    (option, show(ty), types)
}

/// `T` of `Option<T>` (matched on the last path segment).
fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let (name, args) = last_segment(ty)?;
    if name != "Option" {
        return None;
    }
    single_arg(args)
}

fn last_segment(ty: &syn::Type) -> Option<(String, &syn::PathArguments)> {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => {
            let seg = p.path.segments.last()?;
            Some((seg.ident.to_string(), &seg.arguments))
        }
        syn::Type::Group(g) => last_segment(&g.elem),
        syn::Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

fn single_arg(args: &syn::PathArguments) -> Option<&syn::Type> {
    let syn::PathArguments::AngleBracketed(a) = args else {
        return None;
    };
    let mut types = a.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    let t = types.next()?;
    types.next().is_none().then_some(t)
}

/// The SQL types a Rust type decodes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RustSql {
    /// One of these base types.
    Scalar(Vec<&'static str>),
    /// An array of the element's types.
    Array(Box<RustSql>),
}

impl RustSql {
    fn describe(&self) -> String {
        match self {
            RustSql::Scalar(types) => {
                let v: Vec<String> = types.iter().map(|t| format!("`{t}`")).collect();
                match v.as_slice() {
                    [one] => format!("the SQL type {one}"),
                    [init @ .., last] => format!("the SQL types {} and {last}", init.join(", ")),
                    [] => "nothing".into(),
                }
            }
            RustSql::Array(elem) => format!("arrays of {}", elem.describe()),
        }
    }
}

/// The SQL types of a Rust type that sqlx decodes, `None` for a type this check does
/// not know (a user type: accepted).
fn rust_sql_type(ty: &syn::Type) -> Option<RustSql> {
    let (name, args) = last_segment(ty)?;
    if name == "Vec" {
        let elem = single_arg(args)?;
        if last_segment(elem).is_some_and(|(n, _)| n == "u8") {
            return Some(RustSql::Scalar(vec!["bytea"]));
        }
        return Some(RustSql::Array(Box::new(rust_sql_type(elem)?)));
    }
    let types = pgstream_core::rust_types::sql_types_of(&name);
    (!types.is_empty()).then_some(RustSql::Scalar(types))
}

fn accepts(rust: &RustSql, base: &str) -> bool {
    match (rust, base.strip_suffix("[]")) {
        (RustSql::Scalar(types), None) => types.contains(&base),
        (RustSql::Array(elem), Some(e)) => accepts(elem, e),
        _ => false,
    }
}

/// A type as the user would write it: `Option<i32>`, not `Option < i32 >`.
fn show(ty: &syn::Type) -> String {
    let s = quote::quote!(#ty).to_string();
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars.peek().copied();
            let glue = matches!(prev, Some('<' | ':' | '&'))
                || matches!(next, Some('<' | '>' | ':' | ','));
            if glue {
                continue;
            }
        }
        out.push(c);
    }
    out
}
