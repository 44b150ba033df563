//! Rules that span the struct and the compiled query: one field per output column.

use crate::ast::Container;
use crate::ctxt::Ctxt;
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
