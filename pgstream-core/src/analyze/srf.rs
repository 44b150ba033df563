//! Set-returning functions in FROM (`unnest(o.tags) AS t(tag)`, `generate_series(1,
//! 10) g`, `jsonb_each(o.doc)`, `jsonb_to_recordset(o.items) AS r(a int, b text)`):
//! which calls a FROM item makes ([`item`]) and the columns it outputs, with their
//! types ([`columns`]), by PostgreSQL's naming rules: a function returning one
//! scalar column is named by the alias (else the function), composite results by
//! their OUT parameters; a column alias list renames them in order, the ordinality
//! column (`WITH ORDINALITY`, `bigint`) last. Only functions of `pg_catalog` whose
//! result shape is known here are described; the binder refuses the others.

use super::types::{base, canonical, numeric_rank, Ty};
use crate::sql::ident::ident_value;
use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, ObjectName, TableAlias, TableFactor};

/// One function call of a FROM item.
#[derive(Debug)]
pub(crate) struct Call<'q> {
    /// The schema, when written.
    pub schema: Option<String>,
    /// The function name (lower case unless quoted).
    pub name: String,
    /// The arguments, in order.
    pub args: Vec<&'q Expr>,
}

/// A function FROM item.
#[derive(Debug)]
pub(crate) struct Item<'q> {
    /// The calls, zipped as `ROWS FROM (...)` zips them (`unnest(a, b)` is two).
    pub calls: Vec<Call<'q>>,
    /// `AS alias(columns)`; a column list with types is a column definition list.
    pub alias: Option<&'q TableAlias>,
    /// `WITH ORDINALITY`.
    pub ordinality: bool,
}

impl Item<'_> {
    /// The column definition list (`AS r(a int, b text)`): names and types.
    pub fn coldefs(&self) -> Option<Vec<(String, String)>> {
        let a = self.alias?;
        if a.columns.is_empty() || a.columns.iter().any(|c| c.data_type.is_none()) {
            return None;
        }
        Some(
            a.columns
                .iter()
                .map(|c| {
                    (
                        ident_value(&c.name),
                        canonical(&c.data_type.as_ref().expect("typed").to_string()),
                    )
                })
                .collect(),
        )
    }

    /// The name the item is referenced by: its alias, else the (first) function's name.
    pub fn rel_name(&self) -> String {
        match self.alias {
            Some(a) => ident_value(&a.name),
            None => self
                .calls
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default(),
        }
    }
}

/// Why a FROM item cannot be described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A construct DIFFERENTIAL mode does not maintain (the text names it).
    Unsupported(String),
    /// An error PostgreSQL would raise too.
    Invalid(String),
}

fn unnamed(args: &[FunctionArg]) -> Result<Vec<&Expr>, Refusal> {
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            _ => Err(Refusal::Unsupported(
                "named or `*` arguments of a function in FROM".into(),
            )),
        })
        .collect()
}

/// The calls of a function FROM item; `None` when `f` is not one.
pub(crate) fn item(f: &TableFactor) -> Option<Result<Item<'_>, Refusal>> {
    let (name, args, alias, ordinality): (&ObjectName, &[FunctionArg], _, bool) = match f {
        TableFactor::Table {
            name,
            alias,
            args: Some(a),
            with_ordinality,
            ..
        } => (name, &a.args, alias.as_ref(), *with_ordinality),
        TableFactor::Function {
            name, args, alias, ..
        } => (name, args, alias.as_ref(), false),
        TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset,
            with_ordinality,
            ..
        } => {
            if *with_offset {
                return Some(Err(Refusal::Invalid(
                    "`WITH OFFSET` is not PostgreSQL; write `WITH ORDINALITY`".into(),
                )));
            }
            return Some(Ok(Item {
                calls: array_exprs
                    .iter()
                    .map(|e| Call {
                        schema: None,
                        name: "unnest".into(),
                        args: vec![e],
                    })
                    .collect(),
                alias: alias.as_ref(),
                ordinality: *with_ordinality,
            }));
        }
        _ => return None,
    };
    let (schema, fname) = crate::sql::ident::name_parts(name);
    let args = match unnamed(args) {
        Ok(a) => a,
        Err(e) => return Some(Err(e)),
    };
    // `unnest(a, b)` is `ROWS FROM (unnest(a), unnest(b))`.
    let calls = if fname == "unnest" && args.len() > 1 {
        args.into_iter()
            .map(|a| Call {
                schema: schema.clone(),
                name: fname.clone(),
                args: vec![a],
            })
            .collect()
    } else {
        vec![Call {
            schema,
            name: fname,
            args,
        }]
    };
    Some(Ok(Item {
        calls,
        alias,
        ordinality,
    }))
}

/// The columns one call returns: `None` as the name of a scalar result (named by the
/// alias or the function).
type CallColumns = Vec<(Option<String>, Ty)>;

fn nn(t: &str) -> Ty {
    Ty::new(t, Some(false))
}

fn nullable(t: &str) -> Ty {
    Ty::new(t, Some(true))
}

/// Set-returning functions of one column whose type does not depend on the
/// arguments: name, the argument counts it takes, the column's type, and whether
/// the column can be NULL.
const ONE_COLUMN: &[(&str, std::ops::RangeInclusive<usize>, &str, bool)] = &[
    ("generate_subscripts", 2..=3, "integer", false),
    ("jsonb_object_keys", 1..=1, "text", false),
    ("json_object_keys", 1..=1, "text", false),
    ("jsonb_path_query", 2..=4, "jsonb", false),
    ("regexp_split_to_table", 2..=3, "text", false),
    ("regexp_matches", 2..=3, "text[]", false),
    ("string_to_table", 2..=3, "text", true),
];

/// The result shape of one call, from its argument types.
fn call_columns(
    c: &Call,
    arg_types: &[Ty],
    coldefs: Option<&[(String, String)]>,
) -> Result<CallColumns, Refusal> {
    if c.schema.as_deref().is_some_and(|s| s != "pg_catalog") {
        return Err(Refusal::Unsupported(format!(
            "the function `{}.{}` in FROM (the set-returning functions of pg_catalog are maintained)",
            c.schema.as_deref().unwrap_or_default(),
            c.name
        )));
    }
    let n = arg_types.len();
    let arity = |ok: bool| -> Result<(), Refusal> {
        if ok {
            Ok(())
        } else {
            Err(Refusal::Invalid(format!(
                "function {}() does not take {n} argument{}",
                c.name,
                if n == 1 { "" } else { "s" }
            )))
        }
    };
    let scalar = |t: Ty| Ok(vec![(None, t)]);
    let json = |name: &str| {
        if name.starts_with("jsonb") {
            "jsonb"
        } else {
            "json"
        }
    };
    let name = c.name.as_str();
    if let Some((_, args, ty, null)) = ONE_COLUMN.iter().find(|f| f.0 == name) {
        arity(args.contains(&n))?;
        return scalar(if *null { nullable(ty) } else { nn(ty) });
    }
    match name {
        "unnest" => {
            arity(n == 1)?;
            let elem = arg_types[0]
                .sql
                .as_deref()
                .and_then(|t| t.strip_suffix("[]"))
                .map(base);
            scalar(Ty {
                sql: elem,
                null: Some(true),
            })
        }
        "generate_series" => {
            arity((2..=4).contains(&n))?;
            let bases: Vec<Option<String>> = arg_types[..2].iter().map(|t| t.base()).collect();
            let t = match (bases[0].as_deref(), bases[1].as_deref()) {
                (Some(a), Some(b)) => match (numeric_rank(a), numeric_rank(b)) {
                    (Some(x), Some(y)) if x <= 4 && y <= 4 => {
                        let r = x.max(y).max(2);
                        Some(
                            match r {
                                2 => "integer",
                                3 => "bigint",
                                _ => "numeric",
                            }
                            .to_string(),
                        )
                    }
                    _ if a == "timestamp without time zone" && b == a => Some(a.to_string()),
                    _ if matches!(a, "timestamp with time zone" | "date")
                        && matches!(b, "timestamp with time zone" | "date") =>
                    {
                        Some("timestamp with time zone".into())
                    }
                    _ => None,
                },
                _ => None,
            };
            scalar(Ty {
                sql: t,
                null: Some(false),
            })
        }
        "jsonb_array_elements" | "json_array_elements" => {
            arity(n == 1)?;
            Ok(vec![(Some("value".into()), nn(json(name)))])
        }
        "jsonb_array_elements_text" | "json_array_elements_text" => {
            arity(n == 1)?;
            Ok(vec![(Some("value".into()), nullable("text"))])
        }
        "jsonb_each" | "json_each" => {
            arity(n == 1)?;
            Ok(vec![
                (Some("key".into()), nn("text")),
                (Some("value".into()), nn(json(name))),
            ])
        }
        "jsonb_each_text" | "json_each_text" => {
            arity(n == 1)?;
            Ok(vec![
                (Some("key".into()), nn("text")),
                (Some("value".into()), nullable("text")),
            ])
        }
        "jsonb_to_recordset" | "json_to_recordset" | "jsonb_to_record" | "json_to_record" => {
            arity(n == 1)?;
            let Some(defs) = coldefs else {
                return Err(Refusal::Invalid(format!(
                    "a column definition list is required for {name}: write `{name}(...) AS x(a integer, b text)`"
                )));
            };
            Ok(defs
                .iter()
                .map(|(n, t)| (Some(n.clone()), nullable(t)))
                .collect())
        }
        other => Err(Refusal::Unsupported(format!(
            "the function `{other}` in FROM (the set-returning functions whose columns pgstream knows are maintained: {})",
            KNOWN.join(", ")
        ))),
    }
}

/// The functions [`columns`] describes.
pub(crate) const KNOWN: &[&str] = &[
    "unnest",
    "generate_series",
    "generate_subscripts",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "jsonb_each",
    "jsonb_each_text",
    "jsonb_object_keys",
    "jsonb_to_recordset",
    "jsonb_to_record",
    "jsonb_path_query",
    "json_array_elements",
    "json_array_elements_text",
    "json_each",
    "json_each_text",
    "json_object_keys",
    "json_to_recordset",
    "json_to_record",
    "regexp_split_to_table",
    "regexp_matches",
    "string_to_table",
];

/// The output columns of `item` (name, type), given each call's argument types: the
/// function columns, then the ordinality column (`bigint`, not NULL), named by the
/// alias list or `ordinality`, or `__pgs_ord` (hidden) when `WITH ORDINALITY` is not
/// written.
pub(crate) fn columns(item: &Item, arg_types: &[Vec<Ty>]) -> Result<Vec<(String, Ty)>, Refusal> {
    let coldefs = item.coldefs();
    if coldefs.is_some() && item.calls.len() > 1 {
        return Err(Refusal::Invalid(
            "a column definition list is only allowed for a single function".into(),
        ));
    }
    let mut cols: Vec<(Option<String>, Ty)> = Vec::new();
    for (c, types) in item.calls.iter().zip(arg_types) {
        cols.extend(call_columns(c, types, coldefs.as_deref())?);
    }
    let single_scalar = cols.len() == 1 && cols[0].0.is_none() && item.calls.len() == 1;
    let mut named: Vec<(String, Ty)> = cols
        .into_iter()
        .zip(item.calls.iter().cycle())
        .map(|((n, t), c)| {
            let n = n.unwrap_or_else(|| match (single_scalar, item.alias) {
                (true, Some(a)) => ident_value(&a.name),
                _ => c.name.clone(),
            });
            (n, t)
        })
        .collect();
    let width = named.len();
    named.push((
        if item.ordinality {
            "ordinality".into()
        } else {
            "__pgs_ord".into()
        },
        Ty::new("bigint", Some(false)),
    ));
    if coldefs.is_none() {
        if let Some(a) = item.alias {
            let visible = width + usize::from(item.ordinality);
            if a.columns.len() > visible {
                return Err(Refusal::Invalid(format!(
                    "`{}` has {visible} columns available but {} columns specified",
                    ident_value(&a.name),
                    a.columns.len()
                )));
            }
            for (c, alias) in named.iter_mut().zip(&a.columns) {
                c.0 = ident_value(&alias.name);
            }
        }
    }
    Ok(named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse::defining_query;
    use sqlparser::ast::SetExpr;

    fn shape(
        sql: &str,
        types: &[&[Option<&str>]],
    ) -> Result<Vec<(String, Option<String>)>, Refusal> {
        let q = defining_query(sql).unwrap();
        let SetExpr::Select(s) = q.body.as_ref() else {
            panic!()
        };
        let f = &s.from[0].relation;
        let it = item(f).expect("a function item")?;
        let types: Vec<Vec<Ty>> = types
            .iter()
            .map(|ts| {
                ts.iter()
                    .map(|t| Ty {
                        sql: t.map(str::to_string),
                        null: None,
                    })
                    .collect()
            })
            .collect();
        Ok(columns(&it, &types)?
            .into_iter()
            .map(|(n, t)| (n, t.sql))
            .collect())
    }

    fn s(n: &str, t: &str) -> (String, Option<String>) {
        (n.into(), Some(t.into()))
    }

    #[test]
    fn names_and_types_follow_postgresql() {
        assert_eq!(
            shape("SELECT * FROM unnest(x) AS t", &[&[Some("integer[]")]]).unwrap(),
            vec![s("t", "integer"), s("__pgs_ord", "bigint")]
        );
        assert_eq!(
            shape(
                "SELECT * FROM unnest(a, b) WITH ORDINALITY AS t(x, y, n)",
                &[&[Some("numeric(10,2)[]")], &[Some("text[]")]]
            )
            .unwrap(),
            vec![s("x", "numeric"), s("y", "text"), s("n", "bigint")]
        );
        assert_eq!(
            shape(
                "SELECT * FROM generate_series(1, 10)",
                &[&[Some("integer"), Some("integer")]]
            )
            .unwrap(),
            vec![s("generate_series", "integer"), s("__pgs_ord", "bigint")]
        );
        assert_eq!(
            shape(
                "SELECT * FROM jsonb_each(d) WITH ORDINALITY",
                &[&[Some("jsonb")]]
            )
            .unwrap(),
            vec![
                s("key", "text"),
                s("value", "jsonb"),
                s("ordinality", "bigint")
            ]
        );
        assert_eq!(
            shape(
                "SELECT * FROM jsonb_to_recordset(d) AS r(a int, b varchar(3))",
                &[&[Some("jsonb")]]
            )
            .unwrap(),
            vec![
                s("a", "integer"),
                s("b", "character varying(3)"),
                s("__pgs_ord", "bigint")
            ]
        );
        assert!(matches!(
            shape(
                "SELECT * FROM jsonb_to_recordset(d) AS r",
                &[&[Some("jsonb")]]
            ),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            shape("SELECT * FROM myschema.f(d)", &[&[Some("jsonb")]]),
            Err(Refusal::Unsupported(_))
        ));
        assert!(matches!(
            shape(
                "SELECT * FROM unnest(x) AS t(a, b)",
                &[&[Some("integer[]")]]
            ),
            Err(Refusal::Invalid(_))
        ));
    }
}
