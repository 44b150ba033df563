//! IMMEDIATE mode in the compiler: it compiles a query as DIFFERENTIAL mode does
//! ([`crate::Mode::compiled_as`]), so it maintains exactly what DIFFERENTIAL mode
//! maintains; what it cannot maintain is said in its own name.

use crate::error::Error;

/// An error of compiling an IMMEDIATE stream table, worded for IMMEDIATE mode: the
/// binder's "DIFFERENTIAL mode cannot maintain X" becomes "IMMEDIATE mode cannot
/// maintain X", with a help that says why and what to use instead.
pub(crate) fn reword(e: Error) -> Error {
    match e {
        Error::Unsupported(mut d) => {
            d.message = d.message.replace("DIFFERENTIAL mode", "IMMEDIATE mode");
            d.help = Some(
                "IMMEDIATE mode applies the delta rules of DIFFERENTIAL mode inside each writing \
                 transaction and maintains the same queries; for this one use FULL mode \
                 (mode = \"full\") with a short schedule or `on commit`"
                    .into(),
            );
            Error::Unsupported(d)
        }
        Error::Invalid(mut d) => {
            // Volatile functions: "... so DIFFERENTIAL mode cannot maintain it".
            d.message = d.message.replace("DIFFERENTIAL mode", "IMMEDIATE mode");
            Error::Invalid(d)
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use crate::{compile, Catalog, Error, Mode, QualifiedName, Schedule, StreamTableSpec};

    fn spec(query: &str, mode: Mode) -> StreamTableSpec {
        StreamTableSpec {
            name: QualifiedName::new("public", "st"),
            query: query.into(),
            schedule: Schedule::default(),
            mode,
        }
    }

    #[test]
    fn immediate_compiles_as_differential() {
        let cat = Catalog::from_ddl(
            "CREATE TABLE t (id int PRIMARY KEY, g int, v numeric);
             CREATE TABLE u (id int PRIMARY KEY, t_id int);",
        )
        .unwrap();
        let q =
            "SELECT t.g, count(*) AS n, sum(t.v) AS s FROM t JOIN u ON u.t_id = t.id GROUP BY t.g";
        let d = compile(&spec(q, Mode::Differential), &cat).unwrap();
        let i = compile(&spec(q, Mode::Immediate), &cat).unwrap();
        assert_eq!(d.strategy, i.strategy);
        let ctx = crate::RenderContext {
            st_id: 7,
            sources: vec![
                crate::SourceBinding { oid: 1 },
                crate::SourceBinding { oid: 2 },
            ],
        };
        assert_eq!(d.render(&ctx), i.render(&ctx));
        assert!(i.render(&ctx).refresh_function.is_some());

        // What DIFFERENTIAL rejects, IMMEDIATE rejects, in its own words.
        let bad = "SELECT g, v, random() AS r FROM t";
        let e = compile(&spec(bad, Mode::Immediate), &cat).unwrap_err();
        assert!(e.to_string().contains("IMMEDIATE mode"), "{e}");
        assert!(!e.to_string().contains("DIFFERENTIAL mode cannot"), "{e}");
        let bad = "SELECT g, v FROM t LIMIT 3";
        match compile(&spec(bad, Mode::Immediate), &cat) {
            Err(Error::Unsupported(d)) => {
                assert!(
                    d.message.starts_with("IMMEDIATE mode cannot maintain"),
                    "{}",
                    d.message
                );
                assert!(d.help.unwrap().contains("FULL mode"));
            }
            other => panic!("{other:?}"),
        }
    }
}
