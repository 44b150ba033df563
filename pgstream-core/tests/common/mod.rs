//! Shared fixtures for the core's tests.
#![allow(dead_code)]

use pgstream_core::*;

pub const TUTORIAL_SCHEMA: &str = "
CREATE TABLE departments (id SERIAL PRIMARY KEY, name TEXT NOT NULL, parent_id INT REFERENCES departments(id));
CREATE TABLE employees (id SERIAL PRIMARY KEY, name TEXT NOT NULL,
    department_id INT NOT NULL REFERENCES departments(id), salary NUMERIC(10,2) NOT NULL);
CREATE TABLE events (at timestamptz, kind text, amount int);
";

pub const DEPARTMENT_STATS: &str = "SELECT
        d.id AS department_id,
        d.name AS department_name,
        COUNT(e.id) AS headcount,
        COALESCE(SUM(e.salary), 0) AS total_salary,
        COALESCE(AVG(e.salary), 0) AS avg_salary
    FROM departments d
    LEFT JOIN employees e ON e.department_id = d.id
    GROUP BY d.id, d.name";

pub const DEPARTMENT_TREE: &str = "WITH RECURSIVE tree AS (
        SELECT id, name, parent_id, name AS path, 0 AS depth
        FROM departments
        WHERE parent_id IS NULL
        UNION ALL
        SELECT d.id, d.name, d.parent_id,
               tree.path || ' > ' || d.name AS path,
               tree.depth + 1
        FROM departments d
        JOIN tree ON d.parent_id = tree.id
    )
    SELECT id, name, parent_id, path, depth FROM tree";

pub fn catalog() -> Catalog {
    Catalog::from_ddl(TUTORIAL_SCHEMA).unwrap()
}

pub fn spec(query: &str, mode: Mode) -> StreamTableSpec {
    StreamTableSpec {
        name: QualifiedName::new("public", "st"),
        query: query.to_string(),
        schedule: Schedule::default(),
        mode,
    }
}

pub fn diff(query: &str) -> Result<Compiled> {
    compile(&spec(query, Mode::Differential), &catalog())
}

pub fn err(query: &str) -> Error {
    diff(query).expect_err("expected a compile error")
}

/// `sql` laid out one clause per line, nested queries indented (whitespace only):
/// the form snapshots are kept in.
pub fn pretty(sql: &str) -> String {
    let options = sqlformat::FormatOptions {
        indent: sqlformat::Indent::Spaces(2),
        lines_between_queries: 1,
        ..sqlformat::FormatOptions::default()
    };
    sqlformat::format(sql, &sqlformat::QueryParams::None, &options)
}

/// The artifacts of `c` for stream table 7 over sources of OIDs 16400, 16401, ...: the
/// fixed context snapshots are taken in.
pub fn render_fixed(c: &Compiled) -> Artifacts {
    let ctx = RenderContext {
        st_id: 7,
        sources: (0..c.sources.len())
            .map(|i| SourceBinding {
                oid: 16400 + i as u32,
            })
            .collect(),
    };
    c.render(&ctx)
}

/// An error's message and help, as one line.
pub fn message(e: &Error) -> String {
    e.diagnostic()
        .map(|d| format!("{} | {}", d.message, d.help.clone().unwrap_or_default()))
        .unwrap_or_default()
}

/// `query` compiled in DIFFERENTIAL mode, which must maintain it incrementally.
pub fn incremental(query: &str) -> Compiled {
    let c = diff(query).unwrap_or_else(|e| panic!("{query}: {}", e.render(query)));
    assert_eq!(c.strategy, Strategy::Incremental, "{query}");
    c
}

/// Check that `c` is recomputed for a reason that mentions `what`.
pub fn assert_recomputed_for(c: &Compiled, what: &str) {
    assert!(
        matches!(&c.strategy, Strategy::RecomputeDiff { reason } if reason.contains(what)),
        "{}: {:?}",
        c.spec.query,
        c.strategy
    );
}

/// The output columns of `c` as `name type [NOT NULL], ...` (`unknown` for a type the
/// compiler cannot know).
pub fn signature(c: &Compiled) -> String {
    c.columns
        .iter()
        .map(|col| {
            let t = col.sql_type.as_deref().unwrap_or("unknown");
            match col.nullable {
                Some(false) => format!("{} {t} NOT NULL", col.name),
                _ => format!("{} {t}", col.name),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The differential refresh statement of `c`, rendered with placeholder names.
pub fn differential_sql(c: &Compiled) -> String {
    c.render(&c.placeholder_context())
        .differential_refresh
        .unwrap()
}
