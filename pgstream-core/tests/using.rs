//! `JOIN ... USING`, `NATURAL JOIN` and column aliases on tables (`t AS x(a, b)`):
//! bound for delta rules, with PostgreSQL's output columns.
mod common;
use common::*;
use pgstream_core::*;

const SCHEMA: &str = "
CREATE TABLE a (id int PRIMARY KEY, k int, x text);
CREATE TABLE b (id int PRIMARY KEY, k int, y text);
CREATE TABLE c (k int PRIMARY KEY, z text);";

fn compile_q(q: &str) -> Result<Compiled> {
    compile(
        &spec(q, Mode::Differential),
        &Catalog::from_ddl(SCHEMA).unwrap(),
    )
}

fn ok(q: &str) -> Compiled {
    let c = compile_q(q).unwrap_or_else(|e| panic!("{}", e.render(q)));
    assert_eq!(c.strategy, Strategy::Incremental, "{q}");
    c
}

fn names(c: &Compiled) -> Vec<&str> {
    c.columns.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn using_merges_the_columns() {
    let c = ok("SELECT * FROM a JOIN b USING (id, k)");
    assert_eq!(names(&c), ["id", "k", "x", "y"]);
    let c = ok("SELECT k, a.k AS ak, b.k AS bk FROM a LEFT JOIN b USING (k)");
    assert_eq!(names(&c), ["k", "ak", "bk"]);
    let c = ok("SELECT k, z FROM a JOIN b USING (k) JOIN c USING (k)");
    assert_eq!(names(&c), ["k", "z"]);
    let c = ok("SELECT * FROM a FULL JOIN c USING (k)");
    assert_eq!(names(&c), ["k", "id", "x", "z"]);
    assert!(
        c.explain().contains("FULL JOIN ON USING (k)"),
        "{}",
        c.explain()
    );
}

#[test]
fn natural_join_uses_the_common_names() {
    let c = ok("SELECT * FROM b NATURAL JOIN c");
    assert_eq!(names(&c), ["k", "id", "y", "z"]);
    // a and b share id and k.
    let c = ok("SELECT * FROM a NATURAL JOIN b");
    assert_eq!(names(&c), ["id", "k", "x", "y"]);
}

#[test]
fn using_errors() {
    for (q, msg) in [
        (
            "SELECT 1 AS one FROM a JOIN b USING (nope)",
            "does not exist in the left table",
        ),
        (
            "SELECT 1 AS one FROM a JOIN c USING (id)",
            "does not exist in the right table",
        ),
        ("SELECT k FROM a JOIN b ON a.id = b.id", "ambiguous"),
    ] {
        let e = compile_q(q).expect_err(q);
        assert!(e.render(q).contains(msg), "{q}: {}", e.render(q));
    }
}

#[test]
fn column_aliases_on_a_table() {
    let c = ok("SELECT t.n, t.kk, t.x FROM a AS t(n, kk)");
    assert_eq!(names(&c), ["n", "kk", "x"]);
    let c = ok("SELECT * FROM a AS t(n) JOIN c AS u(k2, zz) ON u.k2 = t.k");
    assert_eq!(names(&c), ["n", "k", "x", "k2", "zz"]);
    let c = ok("SELECT t.* FROM a AS t(n)");
    assert_eq!(names(&c), ["n", "k", "x"]);
    let q = "SELECT t.id FROM a AS t(n)";
    assert!(
        compile_q(q).is_err(),
        "the renamed column is not reachable by its old name"
    );
    let q = "SELECT 1 AS one FROM c AS t(p, q, r)";
    assert!(compile_q(q)
        .unwrap_err()
        .render(q)
        .contains("2 columns available"));
}
