// The tutorial's recursive `department_tree`, with the path separator fixed (`' > '`):
// maintained by recompute-and-diff in DIFFERENTIAL mode.
use pgstream::StreamTable;

#[pgstream::stream_table(
    query = "
    WITH RECURSIVE tree AS (
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
    SELECT id, name, parent_id, path, depth FROM tree",
    schedule = "30s"
)]
pub struct DepartmentTree {
    pub id: i32,
    pub name: String,
    pub parent_id: Option<i32>,
    pub path: String,
    pub depth: i32,
}

pub fn check() {
    assert_eq!(DepartmentTree::DEF.name, "department_tree");
    assert_eq!(
        DepartmentTree::DEF.columns,
        ["id", "name", "parent_id", "path", "depth"]
    );
}
