//! Output types: the SQL type and nullability inferred for each output column, and
//! the comparisons PostgreSQL cannot make. Each expected type is what PostgreSQL 15's
//! `pg_typeof` reports for the same expression.
mod common;
use common::*;
use pgstream_core::*;

const SCHEMA: &str = "
CREATE TABLE t (
    id bigserial PRIMARY KEY,
    s smallint NOT NULL, i int NOT NULL, b bigint, n numeric(10,2) NOT NULL, r real, d float8 NOT NULL,
    txt text NOT NULL, vc varchar(20), flag boolean NOT NULL,
    day date NOT NULL, ts timestamp, tstz timestamptz NOT NULL, u uuid NOT NULL,
    j json, jb jsonb NOT NULL, x xml, p point, tags text[] NOT NULL
);
CREATE TABLE o (id int PRIMARY KEY, t_id bigint NOT NULL, qty int NOT NULL);
";

fn compiled(query: &str, mode: Mode) -> Result<Compiled> {
    compile(&spec(query, mode), &Catalog::from_ddl(SCHEMA).unwrap())
}

/// `(name, type, nullable)` of each output column of `query` in FULL mode.
fn types(query: &str) -> Vec<(String, Option<String>, Option<bool>)> {
    columns_of(&compiled(query, Mode::Full).unwrap())
}

fn columns_of(c: &Compiled) -> Vec<(String, Option<String>, Option<bool>)> {
    c.columns
        .iter()
        .map(|c| (c.name.clone(), c.sql_type.clone(), c.nullable))
        .collect()
}

/// The type and nullability of the single output column of `SELECT <expr> FROM t`.
fn one(expr: &str) -> (Option<String>, Option<bool>) {
    let mut v = types(&format!("SELECT {expr} AS c FROM t"));
    assert_eq!(v.len(), 1);
    let (_, t, n) = v.remove(0);
    (t, n)
}

/// Check every `<expression> ==> <type> [NOT NULL]` line of section `## <section>` of
/// `types/expressions.txt` with [`one`]; all mismatches are reported at once.
fn check_expressions(section: &str) {
    const CASES: &str = include_str!("types/expressions.txt");
    let mut lines = CASES
        .lines()
        .skip_while(|l| l.strip_prefix("## ") != Some(section))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .peekable();
    assert!(lines.peek().is_some(), "no cases for `{section}`");
    let mut wrong = Vec::new();
    for line in lines {
        let (expr, want) = line.split_once(" ==> ").expect("`expression ==> type`");
        let want = match want.strip_suffix(" NOT NULL") {
            _ if want == "unknown" => (None, None),
            Some(t) => (Some(t.to_string()), Some(false)),
            None => (Some(want.to_string()), Some(true)),
        };
        let got = one(expr);
        if got != want {
            wrong.push(format!("{expr}: got {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn column_references_take_the_catalog_type_and_nullability() {
    check_expressions("column_references_take_the_catalog_type_and_nullability");
}

#[test]
fn wildcard_expands_in_table_order() {
    let v = types("SELECT * FROM o");
    assert_eq!(
        v,
        [
            ("id".to_string(), Some("integer".to_string()), Some(false)),
            ("t_id".to_string(), Some("bigint".to_string()), Some(false)),
            ("qty".to_string(), Some("integer".to_string()), Some(false)),
        ]
    );
}

#[test]
fn literals() {
    check_expressions("literals");
}

#[test]
fn casts_keep_nullability() {
    check_expressions("casts_keep_nullability");
}

#[test]
fn arithmetic_follows_the_numeric_ladder() {
    check_expressions("arithmetic_follows_the_numeric_ladder");
}

#[test]
fn strings_comparisons_and_predicates() {
    check_expressions("strings_comparisons_and_predicates");
}

#[test]
fn case_coalesce_nullif() {
    check_expressions("case_coalesce_nullif");
}

#[test]
fn unknown_is_none() {
    check_expressions("unknown_is_none");
}

#[test]
fn global_aggregates_are_nullable_except_count() {
    let v = types(
        "SELECT count(*) AS c, count(b) AS cb, sum(s) AS s2, sum(i) AS s4, sum(b) AS s8,
                sum(n) AS sn, sum(r) AS sr, sum(d) AS sd, avg(i) AS ai, avg(n) AS an,
                avg(r) AS ar, avg(d) AS ad, min(txt) AS mt, max(tstz) AS mx,
                min(n) AS mn, bool_and(flag) AS ba, string_agg(txt, ',') AS sa
         FROM t",
    );
    let expect = [
        ("c", "bigint", false),
        ("cb", "bigint", false),
        ("s2", "bigint", true),
        ("s4", "bigint", true),
        ("s8", "numeric", true),
        ("sn", "numeric", true),
        ("sr", "real", true),
        ("sd", "double precision", true),
        ("ai", "numeric", true),
        ("an", "numeric", true),
        ("ar", "double precision", true),
        ("ad", "double precision", true),
        ("mt", "text", true),
        ("mx", "timestamp with time zone", true),
        ("mn", "numeric", true),
        ("ba", "boolean", true),
        ("sa", "text", true),
    ];
    assert_eq!(v.len(), expect.len());
    for ((name, t, n), (en, et, enull)) in v.iter().zip(expect) {
        assert_eq!(
            (name.as_str(), t.as_deref(), *n),
            (en, Some(et), Some(enull)),
            "column {en}"
        );
    }
}

#[test]
fn grouped_aggregates_of_non_null_arguments_are_not_null() {
    // every group has at least one row, so SUM of a NOT NULL column is never NULL
    let v = types(
        "SELECT s, sum(i) AS si, sum(b) AS sb, max(txt) AS mt,
                sum(i) FILTER (WHERE flag) AS sf, count(*) AS c
         FROM t GROUP BY s",
    );
    let got: Vec<(&str, Option<bool>)> = v.iter().map(|(n, _, x)| (n.as_str(), *x)).collect();
    assert_eq!(
        got,
        [
            ("s", Some(false)),
            ("si", Some(false)),
            ("sb", Some(true)),
            ("mt", Some(false)),
            ("sf", Some(true)),
            ("c", Some(false)),
        ]
    );
}

#[test]
fn rollup_makes_grouped_columns_nullable() {
    let v = types("SELECT s, count(*) AS c FROM t GROUP BY ROLLUP (s)");
    assert_eq!(v[0].2, Some(true));
    assert_eq!(v[1].2, Some(false));
}

#[test]
fn outer_joins_pad_with_null() {
    let v = types("SELECT t.id AS a, o.qty AS b FROM t LEFT JOIN o ON o.t_id = t.id");
    assert_eq!(v[0].2, Some(false));
    assert_eq!(v[1].2, Some(true));
    let v = types("SELECT t.id AS a, o.qty AS b FROM t RIGHT JOIN o ON o.t_id = t.id");
    assert_eq!((v[0].2, v[1].2), (Some(true), Some(false)));
    let v = types("SELECT t.id AS a, o.qty AS b FROM t FULL JOIN o ON o.t_id = t.id");
    assert_eq!((v[0].2, v[1].2), (Some(true), Some(true)));
    let v = types("SELECT t.id AS a, o.qty AS b FROM t JOIN o ON o.t_id = t.id");
    assert_eq!((v[0].2, v[1].2), (Some(false), Some(false)));
    // the padded side's nullability reaches aggregates
    let v = types("SELECT t.id, sum(o.qty) AS q FROM t LEFT JOIN o ON o.t_id = t.id GROUP BY t.id");
    assert_eq!(v[1], ("q".into(), Some("bigint".into()), Some(true)));
}

#[test]
fn subqueries_ctes_and_set_operations() {
    for (query, want) in [
        (
            "SELECT x.k FROM (SELECT i + 1 AS k FROM t) x",
            "k integer NOT NULL",
        ),
        (
            "WITH c AS (SELECT b AS k FROM t) SELECT k FROM c",
            "k bigint",
        ),
        (
            "SELECT i AS k FROM t UNION SELECT qty FROM o",
            "k integer NOT NULL",
        ),
        (
            "SELECT i AS k FROM t UNION ALL SELECT t_id FROM o",
            "k bigint NOT NULL",
        ),
        (
            "SELECT i AS k FROM t UNION ALL SELECT NULL FROM o",
            "k integer",
        ),
        (
            "SELECT (SELECT max(qty) FROM o WHERE o.t_id = t.id) AS m FROM t",
            "m integer",
        ),
    ] {
        assert_eq!(
            signature(&compiled(query, Mode::Full).unwrap()),
            want,
            "{query}"
        );
    }
}

#[test]
fn tutorial_stream_tables() {
    for (query, want) in [
        (
            DEPARTMENT_STATS,
            "department_id integer NOT NULL, department_name text NOT NULL, \
             headcount bigint NOT NULL, total_salary numeric NOT NULL, avg_salary numeric NOT NULL",
        ),
        (
            DEPARTMENT_TREE,
            "id integer NOT NULL, name text NOT NULL, parent_id integer, path text NOT NULL, \
             depth integer NOT NULL",
        ),
    ] {
        assert_eq!(signature(&diff(query).unwrap()), want);
    }
}

#[test]
fn no_equality_for_json_xml_point() {
    for (query, what) in [
        ("SELECT j, count(*) AS c FROM t GROUP BY j", "json"),
        ("SELECT DISTINCT x FROM t", "xml"),
        ("SELECT p, count(*) AS c FROM t GROUP BY 1", "point"),
        ("SELECT t.id FROM t JOIN t AS t2 ON t.j = t2.j", "json"),
        ("SELECT j FROM t UNION SELECT j FROM t", "json"),
    ] {
        for mode in [Mode::Full, Mode::Differential] {
            let e = compiled(query, mode).expect_err(query);
            let Error::Invalid(d) = &e else {
                panic!("{query}: {e:?}")
            };
            assert!(
                d.message
                    .contains(&format!("cannot compare two values of type `{what}`")),
                "{query}: {}",
                d.message
            );
            assert!(d.help.is_some());
        }
    }
    let e = compiled("SELECT j, count(*) AS c FROM t GROUP BY j", Mode::Full).unwrap_err();
    let d = e.diagnostic().unwrap();
    assert_eq!(
        &"SELECT j, count(*) AS c FROM t GROUP BY j"[d.span.clone().unwrap()],
        "j"
    );
    assert!(d.help.as_deref().unwrap().contains("jsonb"));
    // jsonb has equality; UNION ALL does not compare
    compiled("SELECT jb, count(*) AS c FROM t GROUP BY jb", Mode::Full).unwrap();
    compiled("SELECT j FROM t UNION ALL SELECT j FROM t", Mode::Full).unwrap();
    compiled(
        "SELECT j::jsonb AS k, count(*) AS c FROM t GROUP BY j::jsonb",
        Mode::Full,
    )
    .unwrap();
}

#[test]
fn aggregates_that_are_null_for_one_row_or_unknown() {
    let v = types(
        "SELECT s, stddev(d) AS sd, stddev_pop(d) AS sp, corr(d, d) AS c
         FROM t GROUP BY s",
    );
    assert_eq!(
        v[1],
        ("sd".into(), Some("double precision".into()), Some(true))
    );
    assert_eq!(
        v[2],
        ("sp".into(), Some("double precision".into()), Some(false))
    );
    assert_eq!(v[3].2, None);
}

#[test]
fn nullable_reasons_name_the_cause() {
    let c = Catalog::from_ddl(SCHEMA).unwrap();
    let reason = |q: &str, col: &str| nullable_reason(q, &c, col).unwrap_or_default();
    assert!(reason(
        "SELECT t.id, o.qty FROM t LEFT JOIN o ON o.t_id = t.id",
        "qty"
    )
    .contains("the LEFT JOIN pads `o` with NULL"));
    assert!(reason("SELECT b FROM t", "b").contains("`t.b` can be NULL"));
    assert!(reason("SELECT sum(i) AS s FROM t", "s").contains("without GROUP BY"));
    assert!(
        reason("SELECT CASE WHEN flag THEN 1 END AS c FROM t", "c").contains("CASE without ELSE")
    );
    assert_eq!(nullable_reason("SELECT i FROM t", &c, "i"), None);
}

#[test]
fn field_def_mismatch_accepts_unknown_types() {
    let f = FieldDef {
        column: "v",
        rust_type: "i32",
        sql_types: &["integer"],
        option: false,
    };
    assert_eq!(f.mismatch(Some("integer"), Some(false)), None);
    assert_eq!(f.mismatch(Some("positive_int"), Some(false)), None); // a domain
    assert_eq!(f.mismatch(None, None), None);
    assert!(f
        .mismatch(Some("bigint"), None)
        .unwrap()
        .contains("`bigint`"));
    assert!(f
        .mismatch(Some("integer"), Some(true))
        .unwrap()
        .contains("NULL"));
}
