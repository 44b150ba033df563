// Every problem is reported in one build, and code using the struct still compiles.
#[pgstream::stream_table(
    query = "SELECT id, name FROM employees",
    schedule = "soon",
    colour = "blue"
)]
pub struct Staff {
    pub id: i32,
    pub name: String,
    pub salary: f64,
}

fn main() {
    let s = Staff {
        id: 1,
        name: String::new(),
        salary: 0.0,
    };
    let _ = (s.id, s.name, s.salary);
}
