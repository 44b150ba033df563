//! Output types: the SQL type and nullability of every output column of a defining
//! query, inferred from the sqlparser AST and the [`Catalog`] the way PostgreSQL
//! resolves them, so that `#[stream_table]` can check a struct's field types at
//! compile time.
//!
//! The inference is deliberately partial. Whatever it cannot decide is `None`, which
//! the macro accepts (the runtime checks it at start-up); whatever it decides must be
//! what PostgreSQL decides, because the macro turns a disagreement into an error.
//!
//! Rules, in PostgreSQL's terms:
//!
//! - column references take the catalog type; an outer join makes the padded side
//!   nullable; `ROLLUP`/`CUBE`/`GROUPING SETS` make grouped columns nullable;
//! - literals: integers are `integer`, `bigint` or `numeric` by size, decimals
//!   `numeric`, strings `unknown` (which becomes `text` as an output), `NULL` is a
//!   nullable `unknown`;
//! - operators are strict (NULL in, NULL out); `IS [NOT] NULL`, `IS [NOT] DISTINCT FROM`
//!   and `EXISTS` are never NULL;
//! - arithmetic follows the numeric ladder `smallint < integer < bigint < numeric`,
//!   and any `real`/`double precision` operand that is not matched by another `real`
//!   gives `double precision`; date and time arithmetic by the operator tables;
//! - `CASE`, `COALESCE`, `GREATEST`/`LEAST` and set operations take the common type
//!   (UNION's resolution rule); `COALESCE` is non-null when any argument is;
//! - aggregates: `count` → `bigint NOT NULL`; `sum` of `smallint`/`integer` → `bigint`,
//!   of `bigint`/`numeric` → `numeric`, of `real` → `real`, of `double precision` →
//!   `double precision`; `avg` of integers and `numeric` → `numeric`, of floats →
//!   `double precision`; `min`/`max` → the argument's type. All but `count` are
//!   nullable, except over a non-null argument in a `GROUP BY` query without
//!   `FILTER` (every group has a row).
//!
//! The same walk finds comparisons that PostgreSQL cannot make: `GROUP BY`, `DISTINCT`,
//! `UNION` (without `ALL`) and `=`/`<>`/... on `json`, `xml` or `point`, which have
//! no equality operator (`infer::check`).

use sqlparser::ast::{BinaryOperator as B, DataType, Value};

/// The type and nullability of an expression; `None` where it is not known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Ty {
    /// The type as `format_type` spells it; `unknown` for an untyped literal.
    pub(crate) sql: Option<String>,
    /// Whether the value can be NULL.
    pub(crate) null: Option<bool>,
}

impl Ty {
    pub(super) fn new(sql: &str, null: Option<bool>) -> Ty {
        Ty {
            sql: Some(sql.to_string()),
            null,
        }
    }
    pub(super) fn not_null(sql: &str) -> Ty {
        Ty::new(sql, Some(false))
    }
    pub(super) fn unknown() -> Ty {
        Ty::default()
    }
    pub(super) fn base(&self) -> Option<String> {
        self.sql.as_deref().map(base)
    }
}

/// Types that have an `=` operator but no default btree or hash operator class:
/// GROUP BY, DISTINCT and UNION cannot use it (`json`, `xml` and `point` have no `=`
/// at all and are reported by `Infer::incomparable`).
pub(super) const NOT_GROUPABLE: &[&str] = &[
    "box", "lseg", "line", "path", "polygon", "circle", "jsonpath",
];

// ---------------------------------------------------------------------------------
// Type names

/// The spelling `format_type` uses for a type name as written.
pub(crate) fn canonical(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(elem) = t.strip_suffix("[]") {
        return format!("{}[]", canonical(elem));
    }
    let (head, args) = match t.find('(') {
        Some(i) => {
            let close = t.rfind(')').unwrap_or(t.len() - 1);
            (
                format!("{} {}", t[..i].trim(), t[close + 1..].trim())
                    .trim()
                    .to_string(),
                Some(t[i..=close].replace(' ', "")),
            )
        }
        None => (t.clone(), None),
    };
    let name = match head.as_str() {
        "int" | "int4" | "integer" | "serial" | "serial4" => "integer",
        "int8" | "bigint" | "bigserial" | "serial8" => "bigint",
        "int2" | "smallint" | "smallserial" | "serial2" => "smallint",
        "float8" | "double precision" | "double" => "double precision",
        "float4" | "real" => "real",
        "float" => match &args {
            Some(a)
                if a.trim_matches(|c| c == '(' || c == ')')
                    .parse::<u32>()
                    .unwrap_or(53)
                    <= 24 =>
            {
                return "real".into()
            }
            _ => return "double precision".into(),
        },
        "bool" | "boolean" => "boolean",
        "decimal" | "numeric" => "numeric",
        "varchar" | "character varying" => "character varying",
        "char" | "character" | "bpchar" => "character",
        "timestamptz" | "timestamp with time zone" => "timestamp with time zone",
        "timestamp" | "timestamp without time zone" => "timestamp without time zone",
        "timetz" | "time with time zone" => "time with time zone",
        "time" | "time without time zone" => "time without time zone",
        other => other,
    };
    match args {
        // PostgreSQL prints the precision inside the name: timestamp(3) with time zone
        Some(a) if name.starts_with("timestamp ") || name.starts_with("time ") => {
            let (first, rest) = name.split_once(' ').expect("has a space");
            format!("{first}{a} {rest}")
        }
        Some(a) => format!("{name}{a}"),
        None => name.to_string(),
    }
}

/// The type without modifiers: `numeric(10,2)` → `numeric`,
/// `timestamp(3) with time zone` → `timestamp with time zone`.
pub(crate) fn base(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut depth = 0;
    for c in t.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn numeric_rank(t: &str) -> Option<u8> {
    Some(match t {
        "smallint" => 1,
        "integer" => 2,
        "bigint" => 3,
        "numeric" => 4,
        "real" => 5,
        "double precision" => 6,
        _ => return None,
    })
}

pub(super) fn is_string(t: &str) -> bool {
    matches!(t, "text" | "character varying" | "character" | "name")
}

pub(super) fn is_array(t: &str) -> bool {
    t.ends_with("[]")
}

/// The common type of CASE branches, COALESCE arguments and UNION columns (PostgreSQL's
/// "UNION, CASE, and related constructs" rule, for the types this module knows).
pub(super) fn common(types: &[Option<String>]) -> Option<String> {
    let mut known: Vec<&str> = Vec::new();
    for t in types {
        match t.as_deref() {
            None => return None,
            Some("unknown") => {}
            Some(t) => known.push(t),
        }
    }
    let Some(first) = known.first() else {
        return Some("unknown".into());
    };
    // an untyped NULL or literal has no type modifier, so the result has none either
    let unknowns = known.len() < types.len();
    if known.iter().all(|t| t == first) && !unknowns {
        return Some(first.to_string());
    }
    let bases: Vec<String> = known.iter().map(|t| base(t)).collect();
    if bases.iter().all(|b| *b == bases[0]) {
        return Some(bases[0].clone());
    }
    if let Some(ranks) = bases
        .iter()
        .map(|b| numeric_rank(b))
        .collect::<Option<Vec<u8>>>()
    {
        let max = ranks.iter().copied().max().expect("not empty");
        return Some(bases[ranks.iter().position(|r| *r == max).expect("max")].clone());
    }
    if bases.iter().all(|b| is_string(b)) {
        // text and varchar convert to each other implicitly: the first one stays
        return Some(bases[0].clone());
    }
    let ts = |b: &str| {
        matches!(
            b,
            "date" | "timestamp without time zone" | "timestamp with time zone"
        )
    };
    if bases.iter().all(|b| ts(b)) {
        return Some(
            if bases.iter().any(|b| b == "timestamp with time zone") {
                "timestamp with time zone"
            } else {
                "timestamp without time zone"
            }
            .into(),
        );
    }
    None
}

/// NULL in, NULL out: nullable if any input is, not null if all inputs are not.
pub(super) fn strict(nulls: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut all_known = true;
    for n in nulls {
        match n {
            Some(true) => return Some(true),
            None => all_known = false,
            Some(false) => {}
        }
    }
    all_known.then_some(false)
}

/// Not null if any input is not null (COALESCE, GREATEST, LEAST).
pub(super) fn any_not_null(nulls: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    strict(nulls.into_iter().map(|n| n.map(|null| !null))).map(|some_null| !some_null)
}

pub(super) fn arithmetic(op: &B, l: &Ty, r: &Ty) -> Option<String> {
    let (l, r) = (l.base()?, r.base()?);
    let (l, r) = match (l.as_str(), r.as_str()) {
        ("unknown", "unknown") => return None,
        ("unknown", o) | (o, "unknown") => (o.to_string(), o.to_string()),
        _ => (l, r),
    };
    if let (Some(a), Some(b)) = (numeric_rank(&l), numeric_rank(&r)) {
        if matches!(op, B::PGExp) {
            return Some(
                if a.max(b) == 4 && a.max(b) < 5 {
                    "numeric"
                } else {
                    "double precision"
                }
                .into(),
            );
        }
        let t = match (a, b) {
            (5, 5) => "real",
            _ if a >= 5 || b >= 5 => "double precision",
            _ => return Some(if a >= b { l } else { r }),
        };
        return Some(t.into());
    }
    let int = |t: &str| matches!(t, "smallint" | "integer" | "bigint");
    let t = match (op, l.as_str(), r.as_str()) {
        (B::Plus, "date", i) | (B::Plus | B::Minus, i, "date") | (B::Minus, "date", i)
            if int(i) =>
        {
            "date"
        }
        (B::Minus, "date", "date") => "integer",
        (B::Plus, "date", "interval")
        | (B::Plus, "interval", "date")
        | (B::Minus, "date", "interval") => "timestamp without time zone",
        (B::Plus | B::Minus, t, "interval") | (B::Plus, "interval", t)
            if t.starts_with("timestamp") || t.starts_with("time ") || t == "interval" =>
        {
            return Some(t.to_string())
        }
        (B::Minus, a, b) if a == b && a.starts_with("timestamp") => "interval",
        (B::Multiply | B::Divide, "interval", n) | (B::Multiply, n, "interval")
            if numeric_rank(n).is_some() =>
        {
            "interval"
        }
        _ => return None,
    };
    Some(t.into())
}

// ---------------------------------------------------------------------------------
// Scopes

pub(super) fn aggregate_type(name: &str, arg: Option<&str>, star: bool) -> Option<String> {
    let t = match (name, arg) {
        ("count", _) => "bigint",
        (_, _) if star => return None,
        ("sum", Some("smallint" | "integer")) => "bigint",
        ("sum", Some("bigint" | "numeric")) => "numeric",
        ("sum", Some(t @ ("real" | "double precision" | "interval" | "money"))) => t,
        ("avg", Some("smallint" | "integer" | "bigint" | "numeric")) => "numeric",
        ("avg", Some("real" | "double precision")) => "double precision",
        ("avg", Some("interval")) => "interval",
        ("min" | "max", Some(t)) if t != "unknown" => t,
        ("string_agg", _) => "text",
        ("bool_and" | "bool_or" | "every", _) => "boolean",
        ("bit_and" | "bit_or" | "bit_xor", Some(t)) if t != "unknown" => t,
        ("json_agg" | "json_object_agg", _) => "json",
        ("jsonb_agg" | "jsonb_object_agg", _) => "jsonb",
        ("array_agg", Some(t)) if t != "unknown" && !is_array(t) => return Some(format!("{t}[]")),
        (
            "stddev" | "stddev_pop" | "stddev_samp" | "variance" | "var_pop" | "var_samp",
            Some(t),
        ) => match t {
            "real" | "double precision" => "double precision",
            "smallint" | "integer" | "bigint" | "numeric" => "numeric",
            _ => return None,
        },
        _ => return None,
    };
    Some(t.to_string())
}

pub(super) fn rounding(t: &Ty) -> Option<String> {
    match t.base()?.as_str() {
        "numeric" => Some("numeric".into()),
        "real" | "double precision" | "smallint" | "integer" | "bigint" => {
            Some("double precision".into())
        }
        _ => None,
    }
}

pub(super) fn literal(v: &Value) -> Ty {
    match v {
        Value::Number(n, _) => {
            let t = if n.contains(['.', 'e', 'E']) {
                "numeric"
            } else if n.parse::<i32>().is_ok() {
                "integer"
            } else if n.parse::<i64>().is_ok() {
                "bigint"
            } else {
                "numeric"
            };
            Ty::not_null(t)
        }
        Value::Boolean(_) => Ty::not_null("boolean"),
        Value::Null => Ty::new("unknown", Some(true)),
        Value::Placeholder(_) => Ty::unknown(),
        _ => Ty::not_null("unknown"),
    }
}

pub(super) fn type_name(dt: &DataType) -> String {
    canonical(&dt.to_string())
}
