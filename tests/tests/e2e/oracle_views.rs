//! The equivalence oracle over stream tables that read views: the view is expanded
//! into its body at creation, change capture goes on the tables it reads, and the
//! stream table must equal the query run directly (PostgreSQL evaluating the view).
//! Random INSERT/UPDATE/DELETE batches with NULLs, duplicates, key changes, both
//! sides of joins, delete-and-reinsert and TRUNCATE, as in the other oracle files.
//!
//! `PGS_ORACLE_BATCHES` overrides the number of batches, `PGS_ORACLE_SEED` the seed.

use crate::common;
use common::Tables;
use pgstream_core::Mode;

use Mode::Differential as D;
use Tables::*;

/// A view with a join and a filter.
const STAFF: &str = "CREATE VIEW staff AS
    SELECT e.id, e.name, e.salary, e.department_id, d.name AS dept, d.parent_id
      FROM employees e JOIN departments d ON d.id = e.department_id
     WHERE e.salary > 15";
/// A view over that view, with a column list.
const NAMED_STAFF: &str = "CREATE VIEW named_staff (staff_id, staff_name) AS
    SELECT id, name, dept, parent_id FROM staff WHERE name IS NOT NULL";
/// A view with a column list, read by an aggregate.
const PAY: &str = "CREATE VIEW pay (dept, amount) AS SELECT department_id, salary FROM employees";
/// A view with GROUP BY.
const DEPT_TOTALS: &str = "CREATE VIEW dept_totals AS
    SELECT department_id, sum(salary) AS total, count(*) AS n FROM employees GROUP BY department_id";

oracle!(
    view_with_join_and_filter_joined_with_a_table,
    D,
    OrgProjects,
    501,
    ddl = [STAFF],
    "SELECT s.id, s.dept, p.id AS project, p.budget \
     FROM staff s JOIN projects p ON p.department_id = s.parent_id"
);
oracle!(
    view_over_view_under_left_join,
    D,
    Org,
    502,
    ddl = [STAFF, NAMED_STAFF],
    "SELECT d.id, d.name, n.staff_id, n.staff_name, n.dept \
     FROM departments d LEFT JOIN named_staff n ON n.parent_id = d.id"
);
oracle!(
    aggregate_over_view_with_column_list,
    D,
    Org,
    503,
    ddl = [PAY],
    "SELECT dept, sum(amount) AS total, count(*) AS n, min(amount) AS low FROM pay GROUP BY dept"
);
oracle!(
    view_in_exists_and_not_in,
    D,
    Org,
    504,
    ddl = [STAFF],
    "SELECT d.id, d.name FROM departments d \
     WHERE EXISTS (SELECT 1 FROM staff s WHERE s.department_id = d.id) \
     AND d.id NOT IN (SELECT parent_id FROM staff WHERE parent_id IS NOT NULL)"
);
oracle!(
    view_referenced_twice,
    D,
    Org,
    505,
    ddl = [STAFF],
    "SELECT a.id, b.id AS colleague FROM staff a JOIN staff b \
     ON a.department_id = b.department_id AND a.id < b.id"
);
oracle!(
    aggregating_view_in_full_mode,
    Mode::Full,
    Org,
    506,
    ddl = [DEPT_TOTALS],
    "SELECT d.name, t.total, t.n FROM dept_totals t JOIN departments d ON d.id = t.department_id"
);

oracle!(
    aggregating_view_joined_with_a_table,
    D,
    Org,
    507,
    ddl = [DEPT_TOTALS],
    "SELECT d.name, t.total, t.n FROM dept_totals t JOIN departments d ON d.id = t.department_id"
);

/// Change capture goes on the tables a view reads, never on the view; the recorded
/// source columns (drift detection) are those base columns; a column rename under the
/// view is drift; a materialized view is refused at creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_and_drift_are_on_the_base_tables() {
    use pgstream_core::{QualifiedName, Schedule, StreamTableSpec};
    let db = pgstream_tests::test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, a int, b text, unused int);
         CREATE TABLE u (id int PRIMARY KEY, t_id int, c int);
         CREATE SCHEMA app;
         CREATE VIEW app.v AS SELECT t.id, t.a, u.c FROM t JOIN u ON u.t_id = t.id WHERE t.a > 0;
         CREATE VIEW w AS SELECT id, c AS cc FROM app.v;
         CREATE MATERIALIZED VIEW mv AS SELECT id, a FROM t;
         INSERT INTO t VALUES (1, 1, 'x', 0), (2, 0, 'y', 0);
         INSERT INTO u VALUES (10, 1, 5), (11, 2, 6);",
    )
    .await;
    let spec = |name: &str, query: &str| StreamTableSpec {
        name: QualifiedName::new("public", name),
        query: query.into(),
        schedule: Schedule::default(),
        mode: Mode::Differential,
    };
    pgstream_runtime::create_stream_table(&db.pool, &spec("st", "SELECT id, cc FROM w"))
        .await
        .unwrap();
    let sources: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name || '.' || table_name FROM pgstream.pgs_sources ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(sources, ["public.t", "public.u"]);
    let view_triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('app.v'::regclass, 'w'::regclass)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(view_triggers, 0);
    let recorded: String = sqlx::query_scalar(
        "SELECT string_agg(e->>'table' || '.' || (e->>'column'), ' '
                          ORDER BY e->>'table', e->>'column')
           FROM pgstream.pgs_stream_tables, jsonb_array_elements(source_columns) e",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // The columns the delta statements read: those the query uses, and the primary
    // keys the windows consolidate on (u.id: dropping it breaks the maintenance too).
    assert_eq!(
        recorded,
        "public.t.a public.t.id public.u.c public.u.id public.u.t_id"
    );

    // Changes under the view are maintained.
    db.exec("UPDATE t SET a = 3 WHERE id = 2; INSERT INTO u VALUES (12, 1, 7); DELETE FROM u WHERE id = 10")
        .await;
    db.exec("SELECT pgstream.refresh_stream_table('st')").await;
    let diff: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ((SELECT id, cc FROM w EXCEPT ALL SELECT id, cc FROM st)
                         UNION ALL (SELECT id, cc FROM st EXCEPT ALL SELECT id, cc FROM w)) d",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(diff, 0);

    // PostgreSQL's view follows a column rename; the stream table's query was expanded
    // at creation, so the rename is drift.
    db.exec("ALTER TABLE t RENAME COLUMN a TO aa").await;
    let err = sqlx::query("SELECT pgstream.refresh_stream_table('st')")
        .execute(&db.pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("source column public.t.a was renamed to aa"),
        "{err}"
    );

    let err =
        pgstream_runtime::create_stream_table(&db.pool, &spec("from_mv", "SELECT id FROM mv"))
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("`mv` is a materialized view"), "{err}");
}
