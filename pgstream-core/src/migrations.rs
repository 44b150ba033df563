//! Migrations: DDL scripts applied to a [`Catalog`] (CREATE/ALTER/DROP TABLE, the
//! view statements), the way the macro reads a crate's `migrations/`.

use crate::catalog::{is_migration_file, Catalog, Column, MigrationError, Table, View};
use crate::error::Result;
use crate::spec::QualifiedName;
use crate::sql::ident::{ident_value, last_ident, qualified};
use crate::sql::parse;
use crate::sql::parse::split_statements;
use sqlparser::ast::{
    AlterTableOperation, ColumnOption, DataType, ObjectType, Statement, TableConstraint,
};

impl Catalog {
    /// Remove the views that read `name` (directly or through other views), as
    /// `DROP ... CASCADE` does.
    fn drop_dependent_views(&mut self, name: &QualifiedName) {
        let mut gone = vec![name.clone()];
        while let Some(n) = gone.pop() {
            let (dependent, rest): (Vec<View>, Vec<View>) = std::mem::take(&mut self.views)
                .into_iter()
                .partition(|v| crate::sql::relations::reads(&v.query).contains(&n));
            self.views = rest;
            gone.extend(dependent.into_iter().map(|v| v.name));
        }
    }

    /// Rename a table or view in the bodies of the views that read it (PostgreSQL's
    /// views follow a renamed relation).
    fn rename_in_views(&mut self, old: &QualifiedName, new: &QualifiedName) {
        for v in &mut self.views {
            if let Some(q) = crate::sql::relations::rename_relation(&v.query, old, new) {
                v.query = q;
            }
        }
    }

    /// Build a catalog from DDL text (see [`Catalog::apply_ddl`]).
    pub fn from_ddl(sql: &str) -> Result<Self> {
        let mut c = Catalog::new();
        c.apply_ddl(sql)?;
        Ok(c)
    }

    /// Build a catalog from migration files given as `(file name, text)`: the files
    /// sqlx names `<version>_<description>.sql` (or `.up.sql`), applied in file-name
    /// order; other files and `.down.sql` are ignored. One loader for the macro, the
    /// command line and the runtime, so they agree on the schema.
    pub fn from_migrations<I>(files: I) -> std::result::Result<Self, MigrationError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut files: Vec<(String, String)> = files
            .into_iter()
            .filter(|(n, _)| is_migration_file(n))
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut c = Catalog::new();
        for (file, text) in files {
            c.apply_ddl(&text)
                .map_err(|error| MigrationError { file, error })?;
        }
        Ok(c)
    }

    /// Apply the table-shaping statements of a DDL script: CREATE TABLE, ALTER TABLE
    /// (ADD/DROP/RENAME COLUMN, ALTER COLUMN TYPE, RENAME TO, ADD PRIMARY KEY), DROP
    /// TABLE; and the view statements: CREATE [OR REPLACE] [MATERIALIZED] VIEW (with a
    /// column list or without), ALTER [MATERIALIZED] VIEW ... RENAME TO / RENAME
    /// COLUMN / SET SCHEMA, DROP [MATERIALIZED] VIEW. Other statements (indexes,
    /// inserts, functions, comments, ...) are skipped. Statements that sqlparser cannot
    /// parse are skipped one by one, so a migration that defines a PL/pgSQL function
    /// does not hide the tables around it.
    pub fn apply_ddl(&mut self, sql: &str) -> Result<()> {
        for stmt_text in split_statements(sql) {
            if self.apply_view_statement(&stmt_text) {
                continue;
            }
            let stmts = match parse::statements(&stmt_text) {
                Ok(s) => s,
                Err(_) => continue,
            };
            for stmt in stmts {
                self.apply_statement(stmt)?;
            }
        }
        Ok(())
    }

    /// Rename a view (and the references to it in other views' bodies).
    fn rename_view(&mut self, old: &QualifiedName, new: QualifiedName) {
        let Some(v) = self.views.iter_mut().find(|v| v.name == *old) else {
            return;
        };
        v.name = new.clone();
        self.rename_in_views(old, &new);
    }

    /// The view statements sqlparser does not parse (or not as PostgreSQL means
    /// them), read from the tokens: `CREATE MATERIALIZED VIEW name ...`,
    /// `ALTER [MATERIALIZED] VIEW [IF EXISTS] name RENAME TO new` / `RENAME [COLUMN] a
    /// TO b` / `SET SCHEMA s`, `DROP MATERIALIZED VIEW [IF EXISTS] names [CASCADE]`.
    /// Whether the statement was one of them.
    fn apply_view_statement(&mut self, text: &str) -> bool {
        use sqlparser::tokenizer::Token;
        let Ok(tokens) = parse::tokens(text) else {
            return false;
        };
        let tokens: Vec<Token> = tokens
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        let mut pos = 0;
        let kw = |pos: &mut usize, word: &str| -> bool {
            match tokens.get(*pos) {
                Some(Token::Word(w))
                    if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) =>
                {
                    *pos += 1;
                    true
                }
                _ => false,
            }
        };
        let ident = |pos: &mut usize| -> Option<String> {
            match tokens.get(*pos) {
                Some(Token::Word(w)) => {
                    *pos += 1;
                    Some(ident_value(&sqlparser::ast::Ident {
                        value: w.value.clone(),
                        quote_style: w.quote_style,
                        span: sqlparser::tokenizer::Span::empty(),
                    }))
                }
                _ => None,
            }
        };
        let name = |pos: &mut usize| -> Option<QualifiedName> {
            let mut parts = vec![ident(pos)?];
            while matches!(tokens.get(*pos), Some(Token::Period)) {
                *pos += 1;
                parts.push(ident(pos)?);
            }
            let n = parts.pop()?;
            Some(QualifiedName::new(
                parts.pop().unwrap_or_else(|| "public".into()),
                n,
            ))
        };
        if kw(&mut pos, "create") {
            if !(kw(&mut pos, "materialized") && kw(&mut pos, "view")) {
                return false;
            }
            let _ = kw(&mut pos, "if") && kw(&mut pos, "not") && kw(&mut pos, "exists");
            let Some(n) = name(&mut pos) else {
                return false;
            };
            self.add_view(View {
                name: n,
                query: String::new(),
                columns: Vec::new(),
                materialized: true,
            });
            return true;
        }
        if kw(&mut pos, "drop") {
            if !(kw(&mut pos, "materialized") && kw(&mut pos, "view")) {
                return false;
            }
            let _ = kw(&mut pos, "if") && kw(&mut pos, "exists");
            let mut names = Vec::new();
            while let Some(n) = name(&mut pos) {
                names.push(n);
                if !matches!(tokens.get(pos), Some(Token::Comma)) {
                    break;
                }
                pos += 1;
            }
            let cascade = kw(&mut pos, "cascade");
            for n in names {
                self.views.retain(|v| v.name != n);
                if cascade {
                    self.drop_dependent_views(&n);
                }
            }
            return true;
        }
        if !kw(&mut pos, "alter") {
            return false;
        }
        let _ = kw(&mut pos, "materialized");
        if !kw(&mut pos, "view") {
            return false;
        }
        let _ = kw(&mut pos, "if") && kw(&mut pos, "exists");
        let Some(old) = name(&mut pos) else {
            return false;
        };
        if kw(&mut pos, "set") {
            if !kw(&mut pos, "schema") {
                return false;
            }
            if let Some(schema) = ident(&mut pos) {
                self.rename_view(&old, QualifiedName::new(schema, old.name.clone()));
            }
            return true;
        }
        if !kw(&mut pos, "rename") {
            return false;
        }
        if kw(&mut pos, "to") {
            if let Some(n) = ident(&mut pos) {
                self.rename_view(&old, QualifiedName::new(old.schema.clone(), n));
            }
            return true;
        }
        let _ = kw(&mut pos, "column");
        let (Some(from), true, Some(to)) = (ident(&mut pos), kw(&mut pos, "to"), ident(&mut pos))
        else {
            return false;
        };
        // The body keeps its names; the column list renames the outputs by position.
        let Some(names) = self.view_columns(&old) else {
            return true;
        };
        if let Some(v) = self.views.iter_mut().find(|v| v.name == old) {
            v.columns = names
                .into_iter()
                .map(|n| if n == from { to.clone() } else { n })
                .collect();
        }
        true
    }

    fn apply_statement(&mut self, stmt: Statement) -> Result<()> {
        match stmt {
            Statement::CreateTable(ct) => {
                let name = qualified(&ct.name);
                let mut columns = Vec::new();
                let mut pk = Vec::new();
                for col in &ct.columns {
                    let mut nullable = true;
                    for opt in &col.options {
                        match &opt.option {
                            ColumnOption::NotNull => nullable = false,
                            ColumnOption::PrimaryKey(_) => {
                                nullable = false;
                                pk.push(ident_value(&col.name));
                            }
                            // an identity column is NOT NULL (a generated one is not)
                            ColumnOption::Generated {
                                generation_expr: None,
                                ..
                            } => nullable = false,
                            _ => {}
                        }
                    }
                    let (sql_type, serial) = normalize_type(&col.data_type);
                    if serial {
                        nullable = false;
                    }
                    columns.push(Column {
                        name: ident_value(&col.name),
                        sql_type,
                        nullable,
                    });
                }
                for c in &ct.constraints {
                    if let TableConstraint::PrimaryKey(key) = c {
                        pk.extend(key_columns(&key.columns));
                    }
                }
                for k in &pk {
                    if let Some(c) = columns.iter_mut().find(|c| &c.name == k) {
                        c.nullable = false;
                    }
                }
                if ct.if_not_exists && self.lookup(Some(&name.schema), &name.name).is_some() {
                    return Ok(());
                }
                self.add_table(Table {
                    name,
                    columns,
                    primary_key: pk,
                    oid: None,
                });
            }
            Statement::CreateView(v) if !v.temporary => self.add_view(View {
                name: qualified(&v.name),
                query: crate::sql::relations::qualify_relations(*v.query),
                columns: v.columns.iter().map(|c| ident_value(&c.name)).collect(),
                materialized: v.materialized,
            }),
            Statement::AlterView(sqlparser::ast::AlterView {
                name,
                operation: sqlparser::ast::AlterViewOperation::As { columns, query, .. },
                ..
            }) => self.add_view(View {
                name: qualified(&name),
                query: crate::sql::relations::qualify_relations(*query),
                columns: columns.iter().map(ident_value).collect(),
                materialized: false,
            }),
            Statement::Drop {
                object_type,
                names,
                cascade,
                ..
            } => {
                for n in names {
                    let q = qualified(&n);
                    match object_type {
                        ObjectType::Table => self.tables.retain(|t| t.name != q),
                        ObjectType::View => self.views.retain(|v| v.name != q),
                        _ => continue,
                    }
                    if cascade {
                        self.drop_dependent_views(&q);
                    }
                }
            }
            Statement::AlterTable(sqlparser::ast::AlterTable {
                name, operations, ..
            }) => {
                let q = qualified(&name);
                let Some(idx) = self.tables.iter().position(|t| t.name == q) else {
                    // ALTER TABLE works on a view too, for RENAME TO
                    for op in operations {
                        if let AlterTableOperation::RenameTable { table_name } = op {
                            let new = QualifiedName::new(
                                q.schema.clone(),
                                last_ident(renamed(&table_name)),
                            );
                            self.rename_view(&q, new);
                        }
                    }
                    return Ok(());
                };
                for op in operations {
                    let t = &mut self.tables[idx];
                    match op {
                        AlterTableOperation::AddColumn { column_def, .. } => {
                            let (sql_type, serial) = normalize_type(&column_def.data_type);
                            let mut nullable = !serial;
                            for o in &column_def.options {
                                if matches!(o.option, ColumnOption::NotNull) {
                                    nullable = false;
                                }
                                if let ColumnOption::PrimaryKey(_) = o.option {
                                    nullable = false;
                                    t.primary_key.push(ident_value(&column_def.name));
                                }
                            }
                            t.columns.push(Column {
                                name: ident_value(&column_def.name),
                                sql_type,
                                nullable,
                            });
                        }
                        AlterTableOperation::DropColumn { column_names, .. } => {
                            for column_name in &column_names {
                                t.columns.retain(|c| c.name != ident_value(column_name));
                                t.primary_key.retain(|c| *c != ident_value(column_name));
                            }
                        }
                        AlterTableOperation::RenameColumn {
                            old_column_name,
                            new_column_name,
                        } => {
                            for c in t
                                .columns
                                .iter_mut()
                                .filter(|c| c.name == ident_value(&old_column_name))
                            {
                                c.name = ident_value(&new_column_name);
                            }
                            for c in t
                                .primary_key
                                .iter_mut()
                                .filter(|c| **c == ident_value(&old_column_name))
                            {
                                *c = ident_value(&new_column_name);
                            }
                        }
                        AlterTableOperation::RenameTable { table_name } => {
                            let old = t.name.clone();
                            t.name = QualifiedName::new(
                                t.name.schema.clone(),
                                last_ident(renamed(&table_name)),
                            );
                            let new = t.name.clone();
                            self.rename_in_views(&old, &new);
                        }
                        AlterTableOperation::AlterColumn { column_name, op } => {
                            use sqlparser::ast::AlterColumnOperation as A;
                            if let Some(c) = t
                                .columns
                                .iter_mut()
                                .find(|c| c.name == ident_value(&column_name))
                            {
                                match op {
                                    A::SetNotNull => c.nullable = false,
                                    A::DropNotNull => c.nullable = true,
                                    A::SetDataType { data_type, .. } => {
                                        c.sql_type = normalize_type(&data_type).0
                                    }
                                    _ => {}
                                }
                            }
                        }
                        AlterTableOperation::AddConstraint {
                            constraint: TableConstraint::PrimaryKey(key),
                            ..
                        } => {
                            t.primary_key = key_columns(&key.columns);
                            for c in t
                                .columns
                                .iter_mut()
                                .filter(|c| t.primary_key.contains(&c.name))
                            {
                                c.nullable = false;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Map a parsed data type to the spelling PostgreSQL's `format_type` uses; the flag
/// says whether it was a `serial` pseudo-type (which implies NOT NULL).
fn normalize_type(dt: &DataType) -> (String, bool) {
    let text = dt.to_string().to_lowercase();
    let t = text.trim();
    let mapped = match t {
        "serial" | "serial4" => return ("integer".into(), true),
        "bigserial" | "serial8" => return ("bigint".into(), true),
        "smallserial" | "serial2" => return ("smallint".into(), true),
        "int" | "int4" | "integer" => "integer".to_string(),
        "int8" | "bigint" => "bigint".to_string(),
        "int2" | "smallint" => "smallint".to_string(),
        "float8" | "double precision" | "double" => "double precision".to_string(),
        "float4" | "real" => "real".to_string(),
        "bool" | "boolean" => "boolean".to_string(),
        "decimal" | "numeric" => "numeric".to_string(),
        "varchar" | "character varying" => "character varying".to_string(),
        "timestamptz" | "timestamp with time zone" => "timestamp with time zone".to_string(),
        "timestamp" | "timestamp without time zone" => "timestamp without time zone".to_string(),
        other => {
            if let Some(rest) = other.strip_prefix("decimal") {
                format!("numeric{}", rest.replace(' ', ""))
            } else if other.starts_with("numeric") {
                other.replace(' ', "")
            } else if let Some(rest) = other.strip_prefix("varchar") {
                format!("character varying{rest}")
            } else {
                other.to_string()
            }
        }
    };
    (mapped, false)
}

/// The new name of `RENAME TO new` (or `RENAME AS new`).
fn renamed(kind: &sqlparser::ast::RenameTableNameKind) -> &sqlparser::ast::ObjectName {
    match kind {
        sqlparser::ast::RenameTableNameKind::As(n) | sqlparser::ast::RenameTableNameKind::To(n) => {
            n
        }
    }
}

/// The column names of a key's column list (`PRIMARY KEY (a, b)`).
fn key_columns(columns: &[sqlparser::ast::IndexColumn]) -> Vec<String> {
    columns
        .iter()
        .filter_map(|c| match &c.column.expr {
            sqlparser::ast::Expr::Identifier(i) => Some(ident_value(i)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::nearest;

    /// The tutorial's migration (the workspace's copy that the end-to-end tests apply),
    /// an index, and a statement the catalog skips.
    const TUTORIAL: &str = concat!(
        include_str!("../../tests/migrations/0001_tutorial.sql"),
        "\nCREATE INDEX ON employees (department_id);\n",
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n",
    );

    #[test]
    fn tutorial_schema() {
        let c = Catalog::from_ddl(TUTORIAL).unwrap();
        let e = c.lookup(None, "employees").unwrap();
        assert_eq!(e.primary_key, vec!["id"]);
        assert_eq!(e.columns[3].sql_type, "numeric(10,2)");
        assert!(!e.columns[0].nullable);
        let d = c.lookup(Some("public"), "departments").unwrap();
        assert_eq!(d.columns[2].sql_type, "integer");
        assert!(d.columns[2].nullable);
    }

    #[test]
    fn unquoted_column_names_fold_to_lower_case() {
        let c = Catalog::from_ddl(
            r#"CREATE TABLE Staff (Id INT, Name TEXT NOT NULL, "Quoted" INT, PRIMARY KEY (ID));
               ALTER TABLE staff ADD COLUMN Extra INT;
               ALTER TABLE staff RENAME COLUMN EXTRA TO More;"#,
        )
        .unwrap();
        let t = c.lookup(None, "staff").unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "Quoted", "more"]);
        assert_eq!(t.primary_key, ["id"]);
        assert!(!t.columns[0].nullable);
    }

    #[test]
    fn identity_columns_are_not_null_generated_ones_nullable() {
        let c = Catalog::from_ddl(
            "CREATE TABLE t (a bigint GENERATED ALWAYS AS IDENTITY, b int GENERATED BY DEFAULT AS IDENTITY,
                             c int, d int GENERATED ALWAYS AS (c * 2) STORED);",
        )
        .unwrap();
        let t = c.lookup(None, "t").unwrap();
        let nulls: Vec<bool> = t.columns.iter().map(|c| c.nullable).collect();
        assert_eq!(nulls, [false, false, true, true]);
    }

    #[test]
    fn alter_and_drop() {
        let c = Catalog::from_ddl(
            "CREATE TABLE s.t (a int, b text, PRIMARY KEY (a));
             ALTER TABLE s.t ADD COLUMN c bigint NOT NULL;
             ALTER TABLE s.t RENAME COLUMN b TO bb;
             ALTER TABLE s.t DROP COLUMN c;
             CREATE TABLE gone (x int); DROP TABLE gone;",
        )
        .unwrap();
        let t = c.lookup(Some("s"), "t").unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "bb"]);
        assert!(c.lookup(None, "gone").is_none());
    }

    #[test]
    fn migrations_apply_in_file_name_order_without_down_files() {
        let c = Catalog::from_migrations([
            (
                "0002_add.sql".to_string(),
                "ALTER TABLE t ADD COLUMN b int;".to_string(),
            ),
            (
                "0001_init.up.sql".to_string(),
                "CREATE TABLE t (a int);".to_string(),
            ),
            (
                "0001_init.down.sql".to_string(),
                "DROP TABLE t;".to_string(),
            ),
            ("README.md".to_string(), "not sql".to_string()),
        ])
        .unwrap();
        assert_eq!(c.lookup(None, "t").unwrap().columns.len(), 2);
    }

    #[test]
    fn splits_scripts() {
        let s = split_statements("a; 'x;y'; $$ ; $$; -- c;\n b");
        assert_eq!(s, vec!["a", "'x;y'", "$$ ; $$", "-- c;\n b"]);
        assert_eq!(
            nearest("employe", ["departments", "employees"].into_iter()).as_deref(),
            Some("employees")
        );
    }

    #[test]
    fn views_from_migrations() {
        let c = Catalog::from_migrations([
            (
                "0001_init.sql".to_string(),
                "CREATE TABLE t (a int PRIMARY KEY, b text);
                 CREATE VIEW v AS SELECT a, b FROM t WHERE a > 0;
                 CREATE VIEW app.w (x, y) AS WITH c AS (SELECT a FROM t) SELECT a, 1 FROM c;
                 CREATE MATERIALIZED VIEW m AS SELECT a FROM t WITH NO DATA;"
                    .to_string(),
            ),
            (
                "0002_more.sql".to_string(),
                "CREATE OR REPLACE VIEW v AS SELECT a, b, upper(b) AS c FROM t;
                 ALTER TABLE t RENAME TO t2;
                 ALTER VIEW v RENAME TO v2;
                 CREATE VIEW over AS SELECT * FROM v2;
                 ALTER VIEW over RENAME COLUMN c TO cc;
                 DROP MATERIALIZED VIEW IF EXISTS m;"
                    .to_string(),
            ),
        ])
        .unwrap();
        assert!(c.lookup_view(None, "v").is_none());
        let v = c.lookup_view(None, "v2").unwrap();
        // the body's tables are qualified, and follow the rename
        assert_eq!(v.query, "SELECT a, b, upper(b) AS c FROM \"public\".\"t2\"");
        assert!(!v.materialized);
        let w = c.lookup_view(Some("app"), "w").unwrap();
        assert_eq!(w.columns, ["x", "y"]);
        assert!(
            w.query.contains("FROM c"),
            "a CTE stays unqualified: {}",
            w.query
        );
        let over = c.lookup_view(None, "over").unwrap();
        assert!(over.query.contains("public.v2"), "{}", over.query);
        assert_eq!(
            c.view_columns(&over.name).unwrap(),
            ["a", "b", "cc"],
            "RENAME COLUMN renames by position"
        );
        assert!(c.lookup_view(None, "m").is_none());
        assert_eq!(c.nearest_table("ovr").as_deref(), Some("over"));
    }

    #[test]
    fn drop_view_and_cascade() {
        let c = Catalog::from_ddl(
            "CREATE TABLE t (a int);
             CREATE VIEW v AS SELECT a FROM t;
             CREATE VIEW w AS SELECT a FROM v;
             CREATE VIEW u AS SELECT a FROM t;
             DROP VIEW u;
             CREATE MATERIALIZED VIEW m AS SELECT a FROM t;
             DROP TABLE t CASCADE;",
        )
        .unwrap();
        assert!(c.lookup(None, "t").is_none());
        assert!(c.views().iter().all(|v| v.materialized), "{:?}", c.views());
        assert!(c.lookup_view(None, "m").unwrap().materialized);
        // DROP VIEW does not drop a table of that name, nor DROP TABLE a view
        let c = Catalog::from_ddl(
            "CREATE TABLE t (a int); CREATE VIEW v AS SELECT a FROM t; DROP VIEW t; DROP TABLE v;",
        )
        .unwrap();
        assert!(c.lookup(None, "t").is_some());
        assert!(c.lookup_view(None, "v").is_some());
    }
}
