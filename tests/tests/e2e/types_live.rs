//! The output types `#[stream_table]` checks fields against, compared with PostgreSQL:
//! for each query, the SQL type pgstream infers must be the type of the column that
//! `CREATE TABLE ... AS <query>` creates, whether the catalog comes from the
//! migrations' DDL or from the live database; and a column inferred NOT NULL must hold
//! no NULL on data made to produce NULLs (nullable columns holding NULL, a department
//! without employees, an empty table under a global aggregate).

use pgstream_core::{compile, Catalog, Mode, QualifiedName, Schedule, StreamTableSpec};
use pgstream_tests::test_db;

const SCHEMA: &str = "
CREATE TABLE departments (id SERIAL PRIMARY KEY, name TEXT NOT NULL, parent_id INT REFERENCES departments(id));
CREATE TABLE employees (id SERIAL PRIMARY KEY, name TEXT NOT NULL,
    department_id INT NOT NULL REFERENCES departments(id), salary NUMERIC(10,2) NOT NULL,
    bonus REAL, nick VARCHAR(20), hired DATE NOT NULL, seen TIMESTAMPTZ, tags TEXT[] NOT NULL,
    attrs JSONB NOT NULL, score DOUBLE PRECISION, level SMALLINT NOT NULL, badge BIGINT);
CREATE TABLE empty_table (id INT PRIMARY KEY, v INT NOT NULL);
";

const DATA: &str = "
INSERT INTO departments VALUES (1, 'Eng', NULL), (2, 'Sales', 1), (3, 'Empty', 1);
INSERT INTO employees (name, department_id, salary, bonus, nick, hired, seen, tags, attrs, score, level, badge) VALUES
  ('a', 1, 100, NULL, NULL, '2024-01-01', NULL, '{}', '{}', NULL, 1, NULL),
  ('b', 1, 200, 1.5, 'bee', '2024-02-01', now(), '{x,y}', '{\"k\": 1}', 2.5, 2, 7),
  ('c', 2, 300, NULL, NULL, '2024-03-01', NULL, '{z}', '{\"k\": null}', NULL, 3, NULL);
";

const QUERIES: &[&str] = &[
    // the tutorial's department_stats
    "SELECT d.id AS department_id, d.name AS department_name, COUNT(e.id) AS headcount,
            COALESCE(SUM(e.salary), 0) AS total_salary, COALESCE(AVG(e.salary), 0) AS avg_salary
     FROM departments d LEFT JOIN employees e ON e.department_id = d.id GROUP BY d.id, d.name",
    // the tutorial's department_tree
    "WITH RECURSIVE tree AS (
        SELECT id, name, parent_id, name AS path, 0 AS depth FROM departments WHERE parent_id IS NULL
        UNION ALL
        SELECT d.id, d.name, d.parent_id, tree.path || ' > ' || d.name AS path, tree.depth + 1
        FROM departments d JOIN tree ON d.parent_id = tree.id)
     SELECT id, name, parent_id, path, depth FROM tree",
    "SELECT * FROM employees",
    "SELECT e.id, e.salary * 2 AS double_salary, e.salary + e.level AS plus, e.level + e.level AS ll,
            e.bonus + 1 AS bonus_plus, e.score * e.salary AS mixed, e.badge / 2 AS half_badge,
            e.hired + 30 AS due, e.seen - INTERVAL '1 day' AS before, -e.level AS neg
     FROM employees e",
    "SELECT e.id, e.name || ' (' || e.nick || ')' AS label, e.name || e.id AS tag,
            e.salary > 150 AS rich, e.bonus IS NULL AS no_bonus, e.nick LIKE 'b%' AS b_nick,
            e.attrs ->> 'k' AS k, e.attrs -> 'k' AS kj, e.tags || e.name AS more_tags,
            concat(e.nick, '!') AS shout, lower(e.nick) AS low, length(e.name) AS len
     FROM employees e",
    "SELECT e.id, CASE WHEN e.salary > 150 THEN 'high' ELSE 'low' END AS band,
            CASE WHEN e.salary > 150 THEN e.salary END AS high_only,
            CASE WHEN e.level > 1 THEN e.level ELSE e.badge END AS lvl,
            COALESCE(e.nick, e.name) AS display, COALESCE(e.bonus, 0) AS bonus0,
            NULLIF(e.level, 1) AS not_one, GREATEST(e.level, e.badge) AS g,
            e.salary::int AS salary_int, CAST(e.level AS text) AS level_text,
            date_trunc('month', e.seen) AS month, EXTRACT(YEAR FROM e.hired) AS year
     FROM employees e",
    "SELECT COUNT(*) AS n, SUM(level) AS s2, SUM(id) AS s4, SUM(badge) AS s8, SUM(salary) AS sn,
            SUM(bonus) AS sr, SUM(score) AS sd, AVG(level) AS a2, AVG(salary) AS an, AVG(score) AS ad,
            MIN(name) AS first_name, MAX(seen) AS last_seen, bool_and(salary > 0) AS all_paid,
            string_agg(name, ',') AS names, array_agg(id) AS ids
     FROM employees",
    "SELECT COUNT(*) AS n, SUM(v) AS s, MAX(v) AS m FROM empty_table",
    "SELECT department_id, COUNT(*) AS n, SUM(salary) AS total, MAX(name) AS last_name,
            SUM(bonus) AS bonuses, MIN(hired) AS first_hired
     FROM employees GROUP BY department_id",
    "SELECT d.id, d.name, e.name AS employee, e.salary
     FROM departments d LEFT JOIN employees e ON e.department_id = d.id",
    "SELECT d.name AS department, e.name AS employee
     FROM employees e RIGHT JOIN departments d ON e.department_id = d.id",
    "SELECT d.name AS department, e.name AS employee
     FROM employees e FULL JOIN departments d ON e.department_id = d.id",
    "SELECT d.id, (SELECT MAX(salary) FROM employees e WHERE e.department_id = d.id) AS top
     FROM departments d",
    "SELECT id, name FROM departments UNION SELECT id, nick FROM employees",
    "SELECT x.id, x.total FROM (SELECT department_id AS id, SUM(salary) AS total
                                FROM employees GROUP BY department_id) x",
    "SELECT department_id, level, COUNT(*) AS n FROM employees GROUP BY ROLLUP (department_id, level)",
];

fn spec(query: &str) -> StreamTableSpec {
    StreamTableSpec {
        name: QualifiedName::new("public", "probe"),
        query: query.to_string(),
        schedule: Schedule::default(),
        mode: Mode::Full,
    }
}

#[tokio::test]
async fn inferred_types_match_postgres_and_not_null_holds() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    db.exec(DATA).await;
    let ddl_catalog = Catalog::from_ddl(SCHEMA).unwrap();
    let live_catalog = {
        let mut conn = db.connect().await;
        pgstream_runtime::load_catalog(&mut conn).await.unwrap()
    };
    let mut checked = 0;
    for (i, query) in QUERIES.iter().enumerate() {
        let from_ddl =
            compile(&spec(query), &ddl_catalog).unwrap_or_else(|e| panic!("{query}: {e}"));
        let from_live = compile(&spec(query), &live_catalog).unwrap();
        let table = format!("probe_{i}");
        db.exec(&format!("CREATE TABLE {table} AS {query}")).await;
        for (c, live) in from_ddl.columns.iter().zip(&from_live.columns) {
            assert_eq!(
                (&c.sql_type, c.nullable),
                (&live.sql_type, live.nullable),
                "{query}: column {} differs between the migrations' catalog and the live one",
                c.name
            );
            let (pg_type, nulls): (String, i64) = sqlx::query_as(&format!(
                "SELECT (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                          WHERE attrelid = '{table}'::regclass AND attname = $1),
                        (SELECT count(*) FROM {table} WHERE {col} IS NULL)",
                col = pgstream_core::quote_ident(&c.name)
            ))
            .bind(&c.name)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            if let Some(t) = &c.sql_type {
                assert_eq!(t, &pg_type, "{query}: type of column {}", c.name);
                checked += 1;
            }
            if c.nullable == Some(false) {
                assert_eq!(
                    nulls, 0,
                    "{query}: column {} inferred NOT NULL holds NULL",
                    c.name
                );
            }
        }
    }
    assert!(checked > 80, "only {checked} column types were inferred");
}
