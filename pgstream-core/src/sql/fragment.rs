//! A typed SQL fragment: [`Sql`] is text the compiler emits, built only from quoted
//! identifiers and literals ([`Sql::ident`], [`Sql::qualified`], [`Sql::literal`]),
//! SQL the code itself writes (`&'static str`: [`Sql::fixed`], the templates of
//! [`sql!`]), numbers ([`Sql::number`]), type names as the catalog spells them
//! ([`Sql::type_name`]), printed AST nodes ([`Sql::expr`], [`Sql::query`],
//! [`Sql::ast`]) and other fragments ([`Sql::join`], [`JoinSql`], [`sql!`], which
//! checks its template against its arguments at compile time and substitutes them
//! with [`Sql::format`]). No `String` becomes `Sql`, so a name cannot reach the
//! generated SQL unquoted, and an identifier and an expression cannot be mixed up by
//! accident: a function that takes or returns SQL says so in its type.
//!
//! Expressions: [`Sql::expr_replacing`] renders an AST expression with some of its
//! nodes replaced by fragments (how a bound expression's column markers become the
//! columns of the relation a statement reads); the AST node that carries a fragment
//! exists only inside this module. The AST is trusted as sqlparser prints it: a
//! parsed identifier prints as the query wrote it; one built by hand without a quote
//! style prints its text as is (only `marker::shown` builds such, for explain).

use crate::spec::QualifiedName;
use sqlparser::ast::{
    BinaryOperator, Expr, Ident, ObjectName, ObjectNamePart, OrderByOptions, Query, Select,
    TableFactor, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::tokenizer::Span;
use std::borrow::Cow;
use std::fmt;
use std::ops::ControlFlow;

/// A piece of generated SQL (see the module doc for how one is made). `Display`
/// emits it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sql(Cow<'static, str>);

/// AST types a fragment can be made of ([`Sql::ast`]): sqlparser prints them as SQL.
pub trait Ast: fmt::Display + private::SealedAst {}

macro_rules! ast_nodes {
    ($($t:ty),*) => {$(
        impl private::SealedAst for $t {}
        impl Ast for $t {}
    )*};
}
ast_nodes!(
    Expr,
    Query,
    Select,
    OrderByOptions,
    ValueWithSpan,
    BinaryOperator
);

/// Integer types a fragment can be made of ([`Sql::number`], or as an argument of
/// [`sql!`]).
pub trait Number: fmt::Display + Copy + private::Sealed {}

mod private {
    /// Only the integer types below are [`super::Number`]s.
    pub trait Sealed {}
    /// Only the AST types below are [`super::Ast`]s.
    pub trait SealedAst {}
}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl private::Sealed for $t {}
        impl Number for $t {}
        impl SqlArg for $t {}
        impl SqlArg for &$t {}
    )*};
}
numbers!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl Sql {
    /// An identifier, always double-quoted, embedded quotes doubled.
    pub fn ident(name: &str) -> Sql {
        Sql(format!("\"{}\"", name.replace('"', "\"\"")).into())
    }

    /// `"schema"."name"`.
    pub fn qualified(name: &QualifiedName) -> Sql {
        Sql(format!("{}.{}", Sql::ident(&name.schema), Sql::ident(&name.name)).into())
    }

    /// A string literal (standard-conforming strings; backslashes are literal).
    pub fn literal(text: &str) -> Sql {
        Sql(format!("'{}'", text.replace('\'', "''")).into())
    }

    /// SQL the code itself writes: keywords, operators, fixed names.
    pub const fn fixed(text: &'static str) -> Sql {
        Sql(Cow::Borrowed(text))
    }

    /// A type as the catalog spells it (`format_type`'s output, or sqlparser's
    /// rendering of a DDL type: `numeric(10,2)`, `timestamp with time zone`,
    /// `"my type"[]`). Outside its double-quoted names a type has only letters,
    /// digits, spaces and `_ , . ( ) [ ]`; text with anything else there (a `;`, a
    /// `'`, a comment) or an unclosed quote is not a type name: it is quoted as one
    /// identifier, so that it cannot end the statement.
    pub fn type_name(text: &str) -> Sql {
        let mut quoted = false;
        let plain = text.chars().all(|c| {
            if c == '"' {
                quoted = !quoted;
            }
            quoted
                || c.is_alphanumeric()
                || matches!(c, '"' | '_' | ' ' | ',' | '.' | '(' | ')' | '[' | ']')
        });
        if plain && !quoted {
            Sql(text.to_string().into())
        } else {
            Sql::ident(text)
        }
    }

    /// An integer.
    pub fn number(n: impl Number) -> Sql {
        Sql(n.to_string().into())
    }

    /// A node of the AST (an [`Ast`] type), as sqlparser prints it.
    pub fn ast(node: &impl Ast) -> Sql {
        Sql(node.to_string().into())
    }

    /// An expression of the AST, as sqlparser prints it.
    pub fn expr(e: &Expr) -> Sql {
        Sql(e.to_string().into())
    }

    /// A query of the AST, as sqlparser prints it.
    pub fn query(q: &Query) -> Sql {
        Sql(q.to_string().into())
    }

    /// A SELECT of the AST, as sqlparser prints it.
    pub fn select(s: &Select) -> Sql {
        Sql(s.to_string().into())
    }

    /// The expression `e` with each node for which `f` returns a fragment replaced by
    /// that fragment (outermost first; a replaced node's children are not visited).
    pub fn expr_replacing(e: &Expr, f: &mut dyn FnMut(&Expr) -> Option<Sql>) -> Sql {
        struct Replace<'a>(&'a mut dyn FnMut(&Expr) -> Option<Sql>);
        impl VisitorMut for Replace<'_> {
            type Break = ();
            fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
                if let Some(new) = (self.0)(expr) {
                    *expr = new.into_expr();
                }
                ControlFlow::Continue(())
            }
        }
        let mut e = e.clone();
        let _ = e.visit(&mut Replace(f));
        Sql::expr(&e)
    }

    /// The fragment as an AST node that prints it verbatim (an unquoted identifier
    /// holding the text). Private: only a fragment becomes such a node.
    fn into_expr(self) -> Expr {
        Expr::Identifier(Ident {
            value: self.0.into_owned(),
            quote_style: None,
            span: Span::empty(),
        })
    }

    /// The fragment, a query, as the relation `(query) AS "alias"` of a FROM clause,
    /// printed verbatim without being parsed again.
    pub(crate) fn into_derived_table(self, alias: &str) -> TableFactor {
        let name = Ident {
            value: format!("({})", self.0),
            quote_style: None,
            span: Span::empty(),
        };
        crate::sql::walk::table_factor(ObjectName(vec![ObjectNamePart::Identifier(name)]), alias)
    }

    /// The fragments in order with `sep` between them (empty for none).
    pub fn join(items: impl IntoIterator<Item = Sql>, sep: &'static str) -> Sql {
        let mut out = String::new();
        for (i, s) in items.into_iter().enumerate() {
            if i > 0 {
                out.push_str(sep);
            }
            out.push_str(&s.0);
        }
        Sql(out.into())
    }

    /// The text, for the public boundary (statements in `Artifacts`) and explain.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, for the public boundary (statements in `Artifacts`).
    pub fn into_string(self) -> String {
        self.0.into_owned()
    }

    /// The static template `template` with its placeholders replaced by `args`:
    /// `{}` takes the next argument, `{n}` the `n`-th; `{{` and `}}` are braces.
    /// [`sql!`] calls it after checking the template against its arguments at
    /// compile time ([`template_fits`]); there is no other way from text to `Sql`.
    pub fn format(template: &'static str, args: &[&dyn SqlArg]) -> Sql {
        use fmt::Write;
        let mut out = String::with_capacity(template.len() + 16 * args.len());
        let mut next = 0;
        let mut rest = template;
        while let Some(at) = rest.find(['{', '}']) {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                out.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            let close = tail.find('}').expect("sql!: a checked template");
            let k = match &tail[1..close] {
                "" => {
                    next += 1;
                    next - 1
                }
                n => n.parse::<usize>().expect("sql!: a checked template"),
            };
            write!(out, "{}", args[k]).expect("writing to a String");
            rest = &tail[close + 1..];
        }
        out.push_str(rest);
        Sql(out.into())
    }
}

/// What [`sql!`] takes as an argument: a fragment, an integer, or a `&'static str`
/// (SQL the code itself writes, like [`Sql::fixed`]). Not a `String`, nor a `&str`
/// borrowed from one.
pub trait SqlArg: fmt::Display {}

impl SqlArg for Sql {}
impl SqlArg for &Sql {}
impl SqlArg for &&Sql {}
impl SqlArg for &'static str {}

impl fmt::Display for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&'static str> for Sql {
    /// SQL the code itself writes ([`Sql::fixed`]).
    fn from(text: &'static str) -> Sql {
        Sql::fixed(text)
    }
}

/// `join_sql` on a slice of fragments: [`Sql::join`] of clones, so that a
/// `Vec<Sql>` joins like a `Vec<String>` does.
pub trait JoinSql {
    /// The fragments in order with `sep` between them.
    fn join_sql(&self, sep: &'static str) -> Sql;
}

impl JoinSql for [Sql] {
    fn join_sql(&self, sep: &'static str) -> Sql {
        Sql::join(self.iter().cloned(), sep)
    }
}

/// Whether the template of [`sql!`] fits its `n` arguments as a `format!` template
/// would: only positional placeholders, `{}` (the next argument) or `{0}` (the
/// first), and `{{`, `}}` for braces; no named or inline argument (`format!` would
/// take it from the scope, whatever its type) and no format spec; every argument
/// used and none missing. Evaluated at compile time by [`sql!`].
pub const fn template_fits(t: &str, n: usize) -> bool {
    let b = t.as_bytes();
    let (mut i, mut next, mut used) = (0, 0, 0u128);
    if n > 128 {
        return false;
    }
    while i < b.len() {
        if b[i] == b'}' {
            if i + 1 < b.len() && b[i + 1] == b'}' {
                i += 2;
                continue;
            }
            return false;
        }
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        if i + 1 < b.len() && b[i + 1] == b'{' {
            i += 2;
            continue;
        }
        let (mut j, mut k) = (i + 1, 0);
        while j < b.len() && b[j].is_ascii_digit() {
            k = k * 10 + (b[j] - b'0') as usize;
            j += 1;
        }
        if j >= b.len() || b[j] != b'}' {
            return false;
        }
        if j == i + 1 {
            k = next;
            next += 1;
        }
        if k >= n {
            return false;
        }
        used |= 1 << k;
        i = j + 1;
    }
    n == 0 || used == u128::MAX >> (128 - n)
}

/// A fragment from a static template whose placeholders (`{}`, `{0}`) take `Sql`
/// arguments (or integers or `&'static str`s, see [`SqlArg`]): `sql!("{} AS {}", e,
/// Sql::ident(name))`. A named or inline placeholder (`{x}`), a format spec, an
/// argument too many or too few, or an argument that is a `String` or a borrowed
/// `&str` does not compile.
macro_rules! sql {
    ($tpl:literal $(, $arg:expr)* $(,)?) => {{
        const _: () = assert!(
            $crate::sql::fragment::template_fits($tpl, 0 $(+ { let _ = stringify!($arg); 1 })*),
            "sql!: positional placeholders only, one argument each"
        );
        $crate::sql::fragment::Sql::format(
            $tpl,
            &[$(&$arg as &dyn $crate::sql::fragment::SqlArg),*],
        )
    }};
}
pub(crate) use sql;

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn parse_expr(s: &str) -> Expr {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(s)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(Sql::ident(r#"a"b"#).to_string(), r#""a""b""#);
        assert_eq!(
            Sql::ident("x; DROP TABLE t").to_string(),
            r#""x; DROP TABLE t""#
        );
        assert_eq!(Sql::literal("it's").to_string(), "'it''s'");
        assert_eq!(
            Sql::qualified(&QualifiedName::new("s", "t\"")).to_string(),
            r#""s"."t""""#
        );
        assert_eq!(Sql::number(42usize).to_string(), "42");
        assert_eq!(
            Sql::type_name("numeric(10,2)[]").to_string(),
            "numeric(10,2)[]"
        );
        assert_eq!(Sql::type_name("int; DROP").to_string(), r#""int; DROP""#);
        assert_eq!(
            Sql::type_name(r#"s."a-b; c"[]"#).to_string(),
            r#"s."a-b; c"[]"#
        );
        assert_eq!(Sql::type_name(r#"x"; DROP"#).to_string(), r#""x""; DROP""#);
        assert_eq!(Sql::number(-1i64).to_string(), "-1");
    }

    #[test]
    fn composition() {
        let cols = Sql::join([Sql::ident("a"), Sql::ident("b")], ", ");
        let s = sql!(
            "SELECT {} FROM {}",
            cols,
            Sql::qualified(&QualifiedName::new("public", "t"))
        );
        assert_eq!(s.to_string(), r#"SELECT "a", "b" FROM "public"."t""#);
        assert_eq!(Sql::join(Vec::new(), ", ").to_string(), "");
        // Braces are escaped as in `format!`.
        assert_eq!(
            sql!("'{{}}'::int[] {}", Sql::fixed("x")).to_string(),
            "'{}'::int[] x"
        );
    }

    #[test]
    fn templates_take_positional_placeholders_one_per_argument() {
        assert!(template_fits("{} AND {}", 2));
        assert!(template_fits("'{{1}}'", 0));
        assert!(template_fits("{0} = {1} OR {0}", 2));
        assert!(!template_fits("{name}", 1));
        assert!(!template_fits("{:?}", 1));
        assert!(!template_fits("{0:?}", 1));
        assert!(!template_fits("}", 0));
        // Every argument used, none missing.
        assert!(!template_fits("{} AND {}", 1));
        assert!(!template_fits("{} AND {}", 3));
        assert!(!template_fits("{0} = {2}", 3));
        assert!(template_fits("{2}{1}{0}", 3));
    }

    #[test]
    fn expressions_with_nodes_replaced() {
        let e = parse_expr("a + f(b) > 1");
        let s = Sql::expr_replacing(&e, &mut |x| match x {
            Expr::Identifier(i) if i.value == "b" => {
                Some(sql!("{}.{}", Sql::fixed("l"), Sql::ident("B")))
            }
            _ => None,
        });
        assert_eq!(s.to_string(), r#"a + f(l."B") > 1"#);
        // A replaced node's children are not visited again.
        let s = Sql::expr_replacing(&e, &mut |x| match x {
            Expr::BinaryOp { .. } => Some(Sql::fixed("TRUE")),
            _ => None,
        });
        assert_eq!(s.to_string(), "TRUE");
    }
}
