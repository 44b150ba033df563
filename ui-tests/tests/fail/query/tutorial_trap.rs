// The tutorial's recursive query as printed: `'' > ''` makes the path a boolean, so the
// two branches of the UNION do not agree on the column's type.
#[pgstream::stream_table(
    query = "
    WITH RECURSIVE tree AS (
        SELECT id, name, parent_id, name AS path, 0 AS depth
        FROM departments
        WHERE parent_id IS NULL
        UNION ALL
        SELECT d.id, d.name, d.parent_id,
               tree.path || '' > '' || d.name AS path,
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

fn main() {}
