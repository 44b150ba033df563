//! The restriction of a source's window before its images are netted
//! (`render::window::window_sql`'s prefilter): the conditions every row derived from
//! the source's one leaf must pass on its way to the result, over the buffer row.
//!
//! - **Its own conditions**: the conjuncts of the filters, inner- and semi-join
//!   conditions and the `WHERE` on the leaf's path that read only its columns and
//!   cannot fail (`marker::total_over_leaf`), and of a disjunction of conjunctions
//!   the disjunction of their parts over the leaf.
//! - **Key links to restricted leaves**: where such a condition equates columns of
//!   the leaf with the whole primary key of another plain leaf `Y` (a reference to a
//!   dimension, `l_suppkey = s_suppkey`), and both leaves pass that condition on
//!   their way up, a row of the leaf reaches the result only along with a row of `Y`
//!   that passes `Y`'s own restriction (recursively: `s_nationkey = n_nationkey`,
//!   `n_regionkey = r_regionkey`, `r_name = 'ASIA'`). In every state the delta terms
//!   read, `Y`'s rows are among its current rows and the images of its buffer in
//!   this window (`Y_old ⊆ Y_new ∪ window images`), so the image is kept when its key
//!   is among the keys of those that pass:
//!
//!   ```text
//!   EXISTS (SELECT 1 FROM Y AS y WHERE y.pk = w.fk AND R(y))
//!     OR (w.fk) IN (SELECT y.pk FROM window_rows(Y) AS y WHERE R(y))
//!   ```
//!
//!   An image whose key is NULL joins nothing and is dropped. The `EXISTS` probes
//!   `Y`'s primary key once per image (work in proportion to the changes; as a semi
//!   join PostgreSQL hashed all of `Y`'s restricted rows instead), the `IN` over the
//!   window's images is hashed once. A nation that changes region in TPC-H Q5 is then
//!   dropped from the window unless one of its regions is `ASIA`, where before the
//!   refresh joined the nation's customers, orders, lineitems and suppliers before
//!   `region` discarded them.
//!
//! A link costs a probe per image, and saves work only where the image would
//! otherwise fan out before the restricting join discards it: it is taken from a
//! leaf that another leaf references by its whole primary key (a dimension; not
//! lineitem) to a leaf joined above the join that brings the leaf in (that join's
//! delta term reads the leaf's delta and the other side in one `FROM`, where the
//! planner applies the restriction itself). Measured on TPC-H at scale factor 0.1,
//! links from every leaf made Q3, Q4 and Q10 2× slower (1,800 lineitem images, each
//! probing its order); with this rule they are unchanged and Q5 and Q7 faster.
//!
//! Images equal in the columns the restriction reads pass or fail it together (the
//! other relations it reads are the same for all of them), so netting the images
//! that pass is netting all of them and keeping those that pass.

use super::*;

/// How many key links a restriction follows from the window's leaf (lineitem →
/// supplier → nation → region is three).
const MAX_HOPS: usize = 3;

/// The conditions every row derived from leaf `i` passes on its way up `t`: of the
/// filters and the inner and semi joins from the leaf up to the first other operator
/// (an outer join keeps rows that fail its condition, an anti join keeps exactly
/// those). Returns whether the leaf reaches the root of `t` that way (then the
/// block's `WHERE` holds for its rows too); `false` also when `i` is not in `t`.
fn path_conditions<'t>(t: &'t Tree, i: usize, out: &mut Vec<&'t Expr>) -> bool {
    fn walk<'t>(t: &'t Tree, i: usize, out: &mut Vec<&'t Expr>) -> Option<bool> {
        match t {
            Tree::Leaf(l) => (*l == i).then_some(true),
            Tree::Filter { input, pred, .. } => {
                let up = walk(input, i, out)?;
                if up {
                    out.push(pred);
                }
                Some(up)
            }
            Tree::Lateral { input, .. } => walk(input, i, out).map(|_| false),
            Tree::Join {
                kind,
                left,
                right,
                on,
                ..
            } => {
                let up = walk(left, i, out).or_else(|| walk(right, i, out))?;
                let passes = matches!(kind, JoinKind::Inner | JoinKind::Semi);
                if up && passes {
                    out.push(on);
                }
                Some(up && passes)
            }
        }
    }
    walk(t, i, out).unwrap_or(false)
}

/// The condition of the join that brings leaf `i` in (the lowest join above it),
/// `None` when there is none. A delta term of that join reads the leaf's delta and
/// the other side's rows in one `FROM`, so the planner applies that join's
/// restrictions there: a link on that join saves nothing.
fn entry_condition(t: &Tree, i: usize) -> Option<&Expr> {
    fn walk(t: &Tree, i: usize) -> Option<Option<&Expr>> {
        match t {
            Tree::Leaf(l) => (*l == i).then_some(None),
            Tree::Filter { input, .. } => walk(input, i),
            Tree::Lateral { input, .. } => walk(input, i),
            Tree::Join {
                left, right, on, ..
            } => walk(left, i)
                .or_else(|| walk(right, i))
                .map(|below| below.or(Some(on))),
        }
    }
    walk(t, i).flatten()
}

/// A column of a leaf: `(leaf, column)`.
type Column = (usize, usize);

/// The conjuncts `a = b` of `conditions` between two columns: the condition each is
/// part of and its two columns `(leaf, column)`, once in each order.
fn column_equalities<'e>(conditions: &[&'e Expr]) -> Vec<(&'e Expr, Column, Column)> {
    let column = |e: &Expr| match expr::as_marker(unnest(e)) {
        Some(Marker::Col { leaf, col }) => Some((leaf, col)),
        _ => None,
    };
    let mut out = Vec::new();
    for &c in conditions {
        let mut parts = Vec::new();
        conjuncts(c, &mut parts);
        for p in parts {
            if let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = unnest(p)
            {
                if let (Some(a), Some(b)) = (column(left), column(right)) {
                    out.push((c, a, b));
                    out.push((c, b, a));
                }
            }
        }
    }
    out
}

/// The OR-ed parts of a condition, with the parentheses dropped.
fn disjuncts<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            disjuncts(left, out);
            disjuncts(right, out);
        }
        Expr::Nested(inner) => disjuncts(inner, out),
        other => out.push(other),
    }
}

impl IncrementalRenderer<'_> {
    /// The restriction the only reader of source `source` puts on its rows, over the
    /// buffer row `w`, for the window to apply before netting (`window_sql`): one
    /// plain leaf reads the source, and of the conditions every row derived from it
    /// must pass (`path_conditions`), the conjuncts that read only its columns and
    /// cannot fail (`marker::total_over_leaf`), and of a disjunction of conjunctions
    /// the disjunction of their parts over the leaf, when each has one (TPC-H Q19's
    /// `(p = l AND brand AND l_quantity ...) OR (...)` restricts lineitem's window to
    /// the quantities, modes and instructions of the three branches; PostgreSQL
    /// derives the same restriction for a scan of the table), and its key links to
    /// restricted leaves (the module doc). A set operation's branches share windows:
    /// none.
    pub(super) fn window_prefilter(&self, source: usize) -> Option<Sql> {
        let i = self.window_reader(source)?;
        let restrictions = self.leaf_restrictions(i, &Sql::fixed("w"), &mut vec![i]);
        (!restrictions.is_empty()).then(|| restrictions.join_sql(" AND "))
    }

    /// The leaf whose restriction the window of `source` applies: the one plain leaf
    /// that reads it, outside set operations. Any other plain reader's delta applies
    /// its restriction itself (`scan_delta`).
    pub(super) fn window_reader(&self, source: usize) -> Option<usize> {
        if matches!(self.block.shape, Shape::SetOp { .. }) {
            return None;
        }
        let mut readers = self
            .block
            .leaves
            .iter()
            .enumerate()
            .filter(|(_, l)| l.reads(source));
        let (i, leaf) = readers.next()?;
        (readers.next().is_none() && leaf.agg.is_none() && leaf.func.is_none()).then_some(i)
    }

    /// The conditions every row derived from leaf `i` passes on its way to the
    /// result: `path_conditions`, and the block's `WHERE` when the leaf reaches the
    /// root that way.
    fn must_pass(&self, i: usize) -> Vec<&Expr> {
        let mut conditions = Vec::new();
        if path_conditions(&self.block.tree, i, &mut conditions) {
            conditions.extend(self.block.filter.as_ref());
        }
        conditions
    }

    /// The restriction of leaf `i`'s rows (a plain leaf), over its row `q`, as
    /// conjuncts: its own conditions, then its key links to restricted leaves not on
    /// `path` (the leaves the restriction came through), at most [`MAX_HOPS`] deep.
    pub(super) fn leaf_restrictions(&self, i: usize, q: &Sql, path: &mut Vec<usize>) -> Vec<Sql> {
        let conditions = self.must_pass(i);
        let mut restrictions = self.own_restrictions(i, q, &conditions);
        if path.len() > MAX_HOPS {
            return restrictions;
        }
        // From the window's leaf, only the links that save work: the leaf is referenced
        // by its key (its changes fan out) and the linked leaf is joined above the join
        // that brings it in (`entry_condition`).
        let entry = (path.len() == 1).then(|| entry_condition(&self.block.tree, i));
        if entry.is_some() && !self.referenced_by_key(i, &conditions) {
            return restrictions;
        }
        for (y, pairs) in self.key_links(i, &conditions) {
            if path.contains(&y) {
                continue;
            }
            if let Some(entry) = entry {
                let joined_at_entry = pairs
                    .iter()
                    .all(|&(x, k)| entry.is_some_and(|on| self.equates(on, (i, x), (y, k))));
                if joined_at_entry {
                    continue;
                }
            }
            let ya = Sql::ident(&format!("__pgs_y{}", path.len()));
            path.push(y);
            let inner = self.leaf_restrictions(y, &ya, path);
            path.pop();
            if inner.is_empty() {
                continue;
            }
            let column = |leaf: usize, c: usize, q: &Sql| {
                sql!(
                    "{}.{}",
                    q,
                    Sql::ident(&self.block.leaves[leaf].table.columns[c].name)
                )
            };
            let xs: Vec<Sql> = pairs.iter().map(|&(x, _)| column(i, x, q)).collect();
            let ys: Vec<Sql> = pairs.iter().map(|&(_, c)| column(y, c, &ya)).collect();
            let equal: Vec<Sql> = ys
                .iter()
                .zip(&xs)
                .map(|(y, x)| sql!("{} = {}", y, x))
                .collect();
            let r = inner.join_sql(" AND ");
            let yl = &self.block.leaves[y];
            // A probe of Y's current rows by its key per image (an `IN` over them was
            // planned as a hash of all of Y's restricted rows: at TPC-H scale factor
            // 1, Q8's 5,947 order images hashed 150,000 customers, 78 ms), or the
            // keys of its window's images, hashed once.
            restrictions.push(sql!(
                "(EXISTS (SELECT 1 FROM {} AS {} WHERE {} AND {}) OR ({}) IN (SELECT {} FROM ({}) AS {} WHERE {}))",
                Sql::qualified(&yl.table.name),
                ya,
                equal.join_sql(" AND "),
                r,
                xs.join_sql(", "),
                ys.join_sql(", "),
                window_rows_sql(self.ctx, yl.source),
                ya,
                r
            ));
        }
        restrictions
    }

    /// Whether `on` has the conjunct `a = b` (either way round) of the two columns.
    fn equates(&self, on: &Expr, a: (usize, usize), b: (usize, usize)) -> bool {
        column_equalities(&[on])
            .into_iter()
            .any(|(_, x, y)| x == a && y == b)
    }

    /// Whether some other leaf's rows reference leaf `i`'s rows by its whole primary
    /// key among `conditions` (`i` is the "one" side of a join): a change of `i`
    /// then fans out to many rows before the join that restricts it.
    fn referenced_by_key(&self, i: usize, conditions: &[&Expr]) -> bool {
        let t = &self.block.leaves[i].table;
        let mut by: Vec<(usize, Vec<usize>)> = Vec::new();
        for (_, (leaf, col), (other, _)) in column_equalities(conditions) {
            if leaf == i && other != i {
                match by.iter_mut().find(|(o, _)| *o == other) {
                    Some((_, cols)) => cols.push(col),
                    None => by.push((other, vec![col])),
                }
            }
        }
        !t.primary_key.is_empty()
            && by.iter().any(|(_, cols)| {
                t.primary_key.iter().all(|k| {
                    cols.iter()
                        .any(|&c| t.columns.get(c).is_some_and(|col| col.name == *k))
                })
            })
    }

    /// The key links of leaf `i` among its must-pass `conditions`: for each other
    /// plain leaf `y` whose whole primary key some equalities `i.x = y.k` of those
    /// conditions cover, and that passes the same conditions on its way up, the
    /// pairs of columns `(x, k)` (all the equalities with `y`, the key's among them).
    fn key_links(&self, i: usize, conditions: &[&Expr]) -> Vec<(usize, Vec<(usize, usize)>)> {
        let mut links: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
        for (c, (la, x), (y, k)) in column_equalities(conditions) {
            let yl = &self.block.leaves[y];
            if la != i
                || y == i
                || yl.agg.is_some()
                || yl.func.is_some()
                || !self.must_pass(y).iter().any(|d| std::ptr::eq(*d, c))
            {
                continue;
            }
            match links.iter_mut().find(|(l, _)| *l == y) {
                Some((_, pairs)) if !pairs.contains(&(x, k)) => pairs.push((x, k)),
                Some(_) => {}
                None => links.push((y, vec![(x, k)])),
            }
        }
        links.retain(|(y, pairs)| {
            let t = &self.block.leaves[*y].table;
            !t.primary_key.is_empty()
                && t.primary_key.iter().all(|k| {
                    pairs
                        .iter()
                        .any(|&(_, c)| t.columns.get(c).is_some_and(|col| col.name == *k))
                })
        });
        links
    }

    /// The conjuncts of `conditions` that read only leaf `i`'s columns and cannot
    /// fail, over its row `q`, and of a disjunction of conjunctions the disjunction
    /// of their parts over the leaf, when each branch has one.
    fn own_restrictions(&self, i: usize, q: &Sql, conditions: &[&Expr]) -> Vec<Sql> {
        let mut parts = Vec::new();
        for c in conditions {
            conjuncts(c, &mut parts);
        }
        let columns = &self.block.leaves[i].table.columns;
        let over_leaf = |e: &Expr| {
            expr::render_with(e, &mut |m| match m {
                Marker::Col { leaf: l, col: c } if l == i => {
                    Some(sql!("{}.{}", q, Sql::ident(&columns.get(c)?.name)))
                }
                _ => None,
            })
        };
        parts
            .into_iter()
            .filter_map(|p| {
                if expr::total_over_leaf(p, i) {
                    return Some(over_leaf(p));
                }
                let mut branches = Vec::new();
                disjuncts(p, &mut branches);
                if branches.len() < 2 {
                    return None;
                }
                let implied: Option<Vec<Sql>> = branches
                    .into_iter()
                    .map(|b| {
                        let mut cs = Vec::new();
                        conjuncts(b, &mut cs);
                        let own: Vec<Sql> = cs
                            .into_iter()
                            .filter(|c| expr::total_over_leaf(c, i))
                            .map(|c| sql!("({})", over_leaf(c)))
                            .collect();
                        (!own.is_empty()).then(|| sql!("({})", own.join_sql(" AND ")))
                    })
                    .collect();
                implied.map(|v| sql!("({})", v.join_sql(" OR ")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {

    const ORG: &str = "CREATE TABLE departments (id int PRIMARY KEY, name text NOT NULL, parent_id int);
        CREATE TABLE employees (id int PRIMARY KEY, name text, department_id int, salary numeric(10,2));
        CREATE TABLE projects (id int PRIMARY KEY, department_id int NOT NULL, budget int);";

    /// The window CTE of the source `table` (by its position in the query's sources)
    /// in the differential refresh of `q`.
    fn window_of(q: &str, table: &str) -> String {
        let c = crate::testing::compile_differential(q, ORG);
        let s = c
            .sources
            .iter()
            .position(|t| t.name.name == table)
            .expect("a source");
        let d = c
            .render(&c.placeholder_context())
            .differential_refresh
            .unwrap();
        let start = d
            .find(&format!("\"__pgs_win{s}\" AS "))
            .unwrap_or_else(|| panic!("no window of {table}: {d}"));
        let rest = &d[start..];
        rest[..rest.find("),\n\"").unwrap_or(rest.len())].to_string()
    }

    /// The queries of the `key_link_*` oracle cases (`tests/tests/e2e/oracle_pushdown.rs`):
    /// the employees' window is restricted by their department's restriction where
    /// employees are referenced by their key (their changes fan out to projects) and
    /// the department is joined above that; not through a LEFT JOIN; not where the
    /// department is joined with the employees first (their delta term reads it in
    /// the same FROM).
    #[test]
    fn key_links_restrict_where_changes_fan_out() {
        let linked = "(EXISTS (SELECT 1 FROM \"public\".\"departments\" AS \"__pgs_y1\" WHERE \"__pgs_y1\".\"id\" = w.\"department_id\" AND ";
        for q in [
            "SELECT e.id, e.salary, p.id AS pid, d.name FROM employees e, projects p, departments d \
             WHERE p.budget = e.id AND e.department_id = d.id AND d.parent_id IN (1, 2, 3)",
            "SELECT d.parent_id, count(*) AS n, sum(e.salary) AS s FROM projects p JOIN employees e \
             ON e.id = p.budget JOIN departments d ON d.id = e.department_id WHERE d.parent_id > 5 \
             GROUP BY d.parent_id",
            "SELECT e.id, p.id AS pid FROM employees e, projects p WHERE p.budget = e.id AND EXISTS \
             (SELECT 1 FROM departments d WHERE d.id = e.department_id AND d.parent_id < 5)",
        ] {
            let w = window_of(q, "employees");
            assert!(w.contains(linked), "{q}\n{w}");
            // The departments' images count too (a department that exists only in
            // the window, or one whose restriction changed).
            assert!(
                w.contains("OR (w.\"department_id\") IN (SELECT \"__pgs_y1\".\"id\" FROM (SELECT b.* FROM"),
                "{w}"
            );
        }
        // Two hops: the department's parent, by its key.
        let w = window_of(
            "SELECT e.id, p.id AS pid, d.id AS did FROM employees e, projects p, departments d, departments up \
             WHERE p.budget = e.id AND e.department_id = d.id AND d.parent_id = up.id AND up.parent_id < 4",
            "employees",
        );
        assert!(
            w.contains("(EXISTS (SELECT 1 FROM \"public\".\"departments\" AS \"__pgs_y2\" WHERE \"__pgs_y2\".\"id\" = \"__pgs_y1\".\"parent_id\" AND \"__pgs_y2\".\"parent_id\" < 4"),
            "{w}"
        );
        for q in [
            // The department's rows may be NULL-padded: no restriction.
            "SELECT e.id, d.name, p.id AS pid FROM employees e JOIN projects p ON p.budget = e.id \
             LEFT JOIN departments d ON d.id = e.department_id AND d.parent_id > 3",
            // Employees referenced by nothing: their changes do not fan out.
            "SELECT e.id, e.salary, d.name FROM employees e, departments d \
             WHERE e.department_id = d.id AND d.parent_id IN (1, 2, 3)",
            // Joined with the department first: the same FROM in the delta term.
            "SELECT e.id, p.id AS pid FROM employees e, departments d, projects p \
             WHERE e.department_id = d.id AND p.budget = e.id AND d.parent_id IN (1, 2, 3)",
        ] {
            let w = window_of(q, "employees");
            assert!(!w.contains(") IN (SELECT"), "{q}\n{w}");
        }
    }
}
