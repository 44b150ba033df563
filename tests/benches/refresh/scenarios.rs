//! The five scenarios: their queries, the base tables and the hand-written deltas.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Employees,
    Nodes,
    /// New leaves added to the tree of `nodes` (insert-only changes).
    NodeInserts,
}

pub(crate) struct Scenario {
    pub(crate) key: &'static str,
    pub(crate) title: &'static str,
    pub(crate) query: &'static str,
    /// Visible output columns, for the equivalence check.
    pub(crate) columns: &'static str,
    /// Unique key of the result (for the matview's unique index and the hand table).
    pub(crate) key_cols: &'static str,
    pub(crate) source: Source,
    /// MERGE/UPDATE of the hand-written delta; reads and empties `hand_buf`.
    pub(crate) hand_refresh: &'static str,
    /// What the hand-written delta handles (it is written for the benchmark's changes).
    pub(crate) hand_note: &'static str,
}

pub(crate) const Q_JOIN_AGG: &str = "SELECT d.id AS department_id, d.name AS department_name, \
COUNT(e.id) AS headcount, COALESCE(SUM(e.salary), 0) AS total_salary, \
COALESCE(AVG(e.salary), 0) AS avg_salary \
FROM departments d LEFT JOIN employees e ON e.department_id = d.id GROUP BY d.id, d.name";

pub(crate) const Q_FILTER: &str =
    "SELECT id, name, department_id, salary FROM employees WHERE salary >= 150000";

pub(crate) const Q_JOIN3: &str = "SELECT e.id, e.name, e.salary, d.name AS department_name, \
r.name AS region_name FROM employees e JOIN departments d ON d.id = e.department_id \
JOIN regions r ON r.id = d.region_id";

pub(crate) const Q_TREE: &str = "WITH RECURSIVE tree AS (\
SELECT id, name, name AS path, 0 AS depth FROM nodes WHERE parent_id IS NULL \
UNION ALL SELECT n.id, n.name, tree.path || ' > ' || n.name, tree.depth + 1 \
FROM nodes n JOIN tree ON n.parent_id = tree.id) SELECT id, name, path, depth FROM tree";

pub(crate) const Q_MINMAX: &str = "SELECT department_id, MIN(salary) AS min_salary, \
MAX(salary) AS max_salary FROM employees GROUP BY department_id";

pub(crate) const H_JOIN_AGG: &str =
    "WITH d AS (DELETE FROM hand_buf RETURNING w, department_id, salary)
MERGE INTO hand_t t
USING (SELECT department_id, sum(w) AS dc, sum(w * salary) AS ds FROM d GROUP BY department_id) s
ON t.department_id = s.department_id
WHEN MATCHED THEN UPDATE SET headcount = t.headcount + s.dc, total_salary = t.total_salary + s.ds,
  avg_salary = CASE WHEN t.headcount + s.dc > 0
                    THEN (t.total_salary + s.ds) / (t.headcount + s.dc)::numeric ELSE 0 END";

pub(crate) const H_FILTER: &str = "WITH d AS (DELETE FROM hand_buf RETURNING *),
n AS (SELECT DISTINCT ON (id) id, w, name, department_id, salary FROM d ORDER BY id, seq DESC)
MERGE INTO hand_t t USING n ON t.id = n.id
WHEN MATCHED AND (n.w < 0 OR NOT n.salary >= 150000) THEN DELETE
WHEN MATCHED THEN UPDATE SET name = n.name, department_id = n.department_id, salary = n.salary
WHEN NOT MATCHED AND n.w > 0 AND n.salary >= 150000 THEN
  INSERT VALUES (n.id, n.name, n.department_id, n.salary)";

pub(crate) const H_JOIN3: &str = "WITH d AS (DELETE FROM hand_buf RETURNING *),
n AS (SELECT DISTINCT ON (id) id, w, name, department_id, salary FROM d ORDER BY id, seq DESC),
s AS (SELECT n.id, n.w, n.name, n.salary, dd.name AS dname, r.name AS rname FROM n
      LEFT JOIN departments dd ON dd.id = n.department_id LEFT JOIN regions r ON r.id = dd.region_id)
MERGE INTO hand_t t USING s ON t.id = s.id
WHEN MATCHED AND (s.w < 0 OR s.rname IS NULL) THEN DELETE
WHEN MATCHED THEN UPDATE SET name = s.name, salary = s.salary, department_name = s.dname, region_name = s.rname
WHEN NOT MATCHED AND s.w > 0 AND s.rname IS NOT NULL THEN
  INSERT VALUES (s.id, s.name, s.salary, s.dname, s.rname)";

pub(crate) const H_TREE: &str = "WITH RECURSIVE d AS (DELETE FROM hand_buf RETURNING id),
start AS (SELECT n.id, n.name, t.depth, p.path AS ppath
          FROM (SELECT DISTINCT id FROM d) c JOIN nodes n ON n.id = c.id
          JOIN hand_t t ON t.id = n.id LEFT JOIN hand_t p ON p.id = n.parent_id),
sub AS (SELECT id, depth AS sdepth, CASE WHEN ppath IS NULL THEN name ELSE ppath || ' > ' || name END AS path, name
        FROM start
        UNION ALL
        SELECT c.id, sub.sdepth, sub.path || ' > ' || c.name, c.name FROM nodes c JOIN sub ON c.parent_id = sub.id),
best AS (SELECT DISTINCT ON (id) id, name, path FROM sub ORDER BY id, sdepth)
UPDATE hand_t t SET name = b.name, path = b.path FROM best b
WHERE t.id = b.id AND (t.path, t.name) IS DISTINCT FROM (b.path, b.name)";

pub(crate) const H_TREE_INSERT: &str = "WITH d AS (DELETE FROM hand_buf RETURNING id)
INSERT INTO hand_t SELECT n.id, n.name, p.path || ' > ' || n.name, p.depth + 1
FROM d JOIN nodes n ON n.id = d.id JOIN hand_t p ON p.id = n.parent_id";

pub(crate) const H_MINMAX: &str = "WITH d AS (DELETE FROM hand_buf RETURNING department_id),
s AS (SELECT g.department_id, m.mn, m.mx, m.c FROM (SELECT DISTINCT department_id FROM d) g
      CROSS JOIN LATERAL (SELECT min(e.salary) AS mn, max(e.salary) AS mx, count(*) AS c
                          FROM employees e WHERE e.department_id = g.department_id) m)
MERGE INTO hand_t t USING s ON t.department_id = s.department_id
WHEN MATCHED AND s.c = 0 THEN DELETE
WHEN MATCHED THEN UPDATE SET min_salary = s.mn, max_salary = s.mx
WHEN NOT MATCHED AND s.c > 0 THEN INSERT VALUES (s.department_id, s.mn, s.mx)";

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        key: "join_agg",
        title: "Join + aggregate (the tutorial's department_stats: departments ⟕ employees GROUP BY, COUNT/SUM/AVG, 1,000 departments)",
        query: Q_JOIN_AGG,
        columns: "department_id, department_name, headcount, total_salary, avg_salary",
        key_cols: "department_id",
        source: Source::Employees,
        hand_refresh: H_JOIN_AGG,
        hand_note: "employee changes only (count and sum per department, AVG = sum / count)",
    },
    Scenario {
        key: "filter",
        title: "Filter (employees WHERE salary >= 150000, about 29% of the rows)",
        query: Q_FILTER,
        columns: "id, name, department_id, salary",
        key_cols: "id",
        source: Source::Employees,
        hand_refresh: H_FILTER,
        hand_note: "last image per id, MERGE on id",
    },
    Scenario {
        key: "join3",
        title: "Three-table join (employees ⋈ departments ⋈ regions)",
        query: Q_JOIN3,
        columns: "id, name, salary, department_name, region_name",
        key_cols: "id",
        source: Source::Employees,
        hand_refresh: H_JOIN3,
        hand_note: "employee changes only (departments and regions are not captured)",
    },
    Scenario {
        key: "tree",
        title: "Recursive tree (WITH RECURSIVE paths over a 10-ary tree of `nodes`)",
        query: Q_TREE,
        columns: "id, name, path, depth",
        key_cols: "id",
        source: Source::Nodes,
        hand_refresh: H_TREE,
        hand_note: "renames only: recomputes the paths of the renamed nodes' subtrees",
    },
    Scenario {
        key: "tree_insert",
        title: "Recursive tree, insert-only changes (the same WITH RECURSIVE query; k new leaves under random nodes)",
        query: Q_TREE,
        columns: "id, name, path, depth",
        key_cols: "id",
        source: Source::NodeInserts,
        hand_refresh: H_TREE_INSERT,
        hand_note: "new leaves only: each joins its parent's stored path",
    },
    Scenario {
        key: "minmax",
        title: "MIN/MAX per group (employees GROUP BY department_id)",
        query: Q_MINMAX,
        columns: "department_id, min_salary, max_salary",
        key_cols: "department_id",
        source: Source::Employees,
        hand_refresh: H_MINMAX,
        hand_note: "recomputes the affected groups through the index on department_id",
    },
];

pub(crate) const DEPARTMENTS: i64 = 1_000;

/// Base tables of the refresh benchmark for `n` rows (employees and nodes).
pub(crate) fn schema_sql(n: i64, with_nodes: bool) -> String {
    let mut s = format!(
        "DROP TABLE IF EXISTS regions, departments, employees, nodes CASCADE;
CREATE TABLE regions (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE departments (id int PRIMARY KEY, name text NOT NULL, parent_id int, region_id int NOT NULL);
CREATE TABLE employees (id int PRIMARY KEY, name text NOT NULL, department_id int NOT NULL,
                        salary numeric(10,2) NOT NULL);
INSERT INTO regions SELECT g, 'region ' || g FROM generate_series(1, 50) g;
INSERT INTO departments SELECT g, 'dept ' || g, NULL, 1 + g % 50 FROM generate_series(1, {DEPARTMENTS}) g;
INSERT INTO employees SELECT g, 'emp ' || g, 1 + (g::bigint * 7919) % {DEPARTMENTS},
       30000 + (g::bigint * 104729) % 170000 FROM generate_series(1, {n}) g;
CREATE INDEX employees_department_id_idx ON employees (department_id);
"
    );
    if with_nodes {
        write!(
            s,
            "CREATE TABLE nodes (id int PRIMARY KEY, parent_id int, name text NOT NULL);
INSERT INTO nodes SELECT g, CASE WHEN g = 1 THEN NULL ELSE (g + 8) / 10 END, 'n' || g
       FROM generate_series(1, {n}) g;
CREATE INDEX nodes_parent_id_idx ON nodes (parent_id);
"
        )
        .unwrap();
    }
    s
}

/// Capture functions of the hand-written deltas (statement-level, transition tables,
/// like pgstream's).
pub(crate) const HAND_FUNCTIONS: &str = "
CREATE OR REPLACE FUNCTION hand_cap_emp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO hand_buf (w, id, name, department_id, salary)
    SELECT -1, id, name, department_id, salary FROM old_t;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    INSERT INTO hand_buf (w, id, name, department_id, salary)
    SELECT 1, id, name, department_id, salary FROM new_t;
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION hand_cap_node() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO hand_buf (id) SELECT id FROM new_t;
  RETURN NULL;
END $$;
";

pub(crate) fn hand_setup_sql(sc: &Scenario) -> String {
    let mut s = String::new();
    match sc.source {
        Source::Employees => s.push_str(
            "CREATE TABLE hand_buf (seq bigserial PRIMARY KEY, w smallint NOT NULL, id int, name text,
                                    department_id int, salary numeric(10,2));
CREATE TRIGGER hand_ins AFTER INSERT ON employees REFERENCING NEW TABLE AS new_t
  FOR EACH STATEMENT EXECUTE FUNCTION hand_cap_emp();
CREATE TRIGGER hand_upd AFTER UPDATE ON employees REFERENCING OLD TABLE AS old_t NEW TABLE AS new_t
  FOR EACH STATEMENT EXECUTE FUNCTION hand_cap_emp();
CREATE TRIGGER hand_del AFTER DELETE ON employees REFERENCING OLD TABLE AS old_t
  FOR EACH STATEMENT EXECUTE FUNCTION hand_cap_emp();
",
        ),
        Source::Nodes => s.push_str(
            "CREATE TABLE hand_buf (id int NOT NULL);
CREATE TRIGGER hand_upd AFTER UPDATE ON nodes REFERENCING NEW TABLE AS new_t
  FOR EACH STATEMENT EXECUTE FUNCTION hand_cap_node();
",
        ),
        Source::NodeInserts => s.push_str(
            "CREATE TABLE hand_buf (id int NOT NULL);
CREATE TRIGGER hand_ins AFTER INSERT ON nodes REFERENCING NEW TABLE AS new_t
  FOR EACH STATEMENT EXECUTE FUNCTION hand_cap_node();
",
        ),
    }
    write!(
        s,
        "CREATE TABLE hand_t AS {};\nALTER TABLE hand_t ADD PRIMARY KEY ({});\n",
        sc.query, sc.key_cols
    )
    .unwrap();
    s
}

pub(crate) fn hand_teardown_sql(sc: &Scenario) -> String {
    let table = match sc.source {
        Source::Employees => "employees",
        Source::Nodes | Source::NodeInserts => "nodes",
    };
    let mut s = String::from("DROP TABLE IF EXISTS hand_t, hand_buf;\n");
    for t in ["hand_ins", "hand_upd", "hand_del"] {
        writeln!(s, "DROP TRIGGER IF EXISTS {t} ON {table};").unwrap();
    }
    s
}
