//! The schema catalog the compiler binds queries against: tables, their columns and
//! types, and their primary keys; and views, whose defining queries are expanded in
//! place where a query reads them. Built from DDL text at compile time (the crate's
//! migrations) or from the live database by the runtime.

use crate::error::Error;
use crate::spec::QualifiedName;
pub use crate::sql::parse::split_statements;

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column's name, as PostgreSQL stores it.
    pub name: String,
    /// The type as PostgreSQL's `format_type` prints it (e.g. `numeric(10,2)`, `integer`).
    pub sql_type: String,
    /// Whether the column may hold NULL.
    pub nullable: bool,
}

/// A table (or a stream table, which is a table too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Schema and name.
    pub name: QualifiedName,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Names of the primary key columns; empty when the table has none.
    pub primary_key: Vec<String>,
    /// The table's OID, when the catalog was read from a live database.
    pub oid: Option<u32>,
}

impl Table {
    /// The index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A view. A defining query that reads it is compiled as if the view's body had been
/// written in its place as a subquery (`(body) AS alias`), so change capture goes on
/// the tables the body reads. A materialized view cannot be read that way: it is kept
/// only to say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Schema and name.
    pub name: QualifiedName,
    /// The body: the query after `AS`. From migrations, every table and view it reads
    /// is schema-qualified when the view is created (PostgreSQL binds a view's names
    /// then too); from the live database, `pg_get_viewdef` under pgstream's pinned
    /// `search_path`.
    pub query: String,
    /// Output column names that rename the body's outputs by position
    /// (`CREATE VIEW v (a, b) AS ...`, or the live view's columns); may be shorter
    /// than the body's select list, or empty.
    pub columns: Vec<String>,
    /// A materialized view: its contents change only on `REFRESH MATERIALIZED VIEW`,
    /// which no trigger can capture, so a stream table cannot read it.
    pub materialized: bool,
}

/// A set of tables and views.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub(crate) tables: Vec<Table>,
    pub(crate) views: Vec<View>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// A catalog of `tables` and `views` in one pass: what adding them one by one
    /// gives (a later item replaces an earlier one of the same name), in time linear
    /// in their number. The runtime reads a live database this way: adding each of
    /// 10,000 tables with [`Catalog::add_table`], which replaces by name, compared
    /// every name with every other.
    pub fn from_parts(
        tables: impl IntoIterator<Item = Table>,
        views: impl IntoIterator<Item = View>,
    ) -> Self {
        Catalog {
            tables: last_of_each_name(tables, |t| &t.name),
            views: last_of_each_name(views, |v| &v.name),
        }
    }

    /// Add or replace a table.
    pub fn add_table(&mut self, table: Table) {
        upsert(&mut self.tables, table, |t| &t.name);
    }

    /// All tables.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// Look up a table by optional schema and name; an unqualified name is searched in
    /// `public` (the default search path).
    pub fn lookup(&self, schema: Option<&str>, name: &str) -> Option<&Table> {
        find(&self.tables, schema, name, |t| &t.name)
    }

    /// The table (or view) names closest to `name`, for "did you mean" help.
    pub fn nearest_table(&self, name: &str) -> Option<String> {
        nearest(
            name,
            self.tables
                .iter()
                .map(|t| t.name.name.as_str())
                .chain(self.views.iter().map(|v| v.name.name.as_str())),
        )
    }

    /// Look up a view by optional schema and name, like [`Catalog::lookup`]. A table of
    /// the same name wins (PostgreSQL does not allow both).
    pub fn lookup_view(&self, schema: Option<&str>, name: &str) -> Option<&View> {
        find(&self.views, schema, name, |v| &v.name)
    }

    /// All views, materialized ones included.
    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// Add or replace a view (`CREATE OR REPLACE VIEW`).
    pub fn add_view(&mut self, view: View) {
        upsert(&mut self.views, view, |v| &v.name);
    }
}

/// `items` without those a later one of the same name replaces, in the order
/// [`upsert`] would leave them (each where its last occurrence was added).
fn last_of_each_name<T>(
    items: impl IntoIterator<Item = T>,
    name: impl Fn(&T) -> &QualifiedName,
) -> Vec<T> {
    let items: Vec<T> = items.into_iter().collect();
    let mut last = std::collections::HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        last.insert(name(item).clone(), i);
    }
    items
        .into_iter()
        .enumerate()
        .filter(|(i, item)| last.get(name(item)) == Some(i))
        .map(|(_, item)| item)
        .collect()
}

/// Put `item` in `items` in place of the one of the same name.
fn upsert<T>(items: &mut Vec<T>, item: T, name: impl Fn(&T) -> &QualifiedName) {
    items.retain(|i| name(i) != name(&item));
    items.push(item);
}

/// The item named `schema.name` (`public` when no schema is given).
fn find<'a, T>(
    items: &'a [T],
    schema: Option<&str>,
    name: &str,
    name_of: impl Fn(&T) -> &QualifiedName,
) -> Option<&'a T> {
    let schema = schema.unwrap_or("public");
    items.iter().find(|i| {
        let n = name_of(i);
        n.schema == schema && n.name == name
    })
}

/// Whether a file of a migrations folder is a migration to apply (`*.sql`, but not
/// the `*.down.sql` that undoes one).
pub fn is_migration_file(name: &str) -> bool {
    name.ends_with(".sql") && !name.ends_with(".down.sql")
}

/// A migration that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationError {
    /// The file's name.
    pub file: String,
    /// What went wrong.
    pub error: Error,
}

impl std::fmt::Display for MigrationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "in migration `{}`: {}", self.file, self.error)
    }
}

impl std::error::Error for MigrationError {}

/// The candidate closest to `name` by edit distance, if it is close enough to help.
pub fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(&name.to_lowercase(), &c.to_lowercase());
        if best.map(|(bd, _)| d < bd).unwrap_or(true) {
            best = Some((d, c));
        }
    }
    best.filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, column: &str) -> Table {
        Table {
            name: QualifiedName::new("public", name),
            columns: vec![Column {
                name: column.into(),
                sql_type: "integer".into(),
                nullable: true,
            }],
            primary_key: vec![],
            oid: None,
        }
    }

    #[test]
    fn from_parts_is_adding_one_by_one() {
        let tables = vec![
            table("a", "x"),
            table("b", "y"),
            table("a", "z"),
            table("c", "w"),
        ];
        let mut one_by_one = Catalog::new();
        for t in tables.clone() {
            one_by_one.add_table(t);
        }
        let at_once = Catalog::from_parts(tables, vec![]);
        assert_eq!(at_once, one_by_one);
        assert_eq!(at_once.tables().len(), 3);
        assert_eq!(at_once.lookup(None, "a").unwrap().columns[0].name, "z");
    }
}
