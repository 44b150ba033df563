#[pgstream::stream_table(
    query = "SELECT e.id, e.salery FROM employees e WHERE e.department_id = 5"
)]
struct Backend {
    id: i32,
    salery: rust_decimal::Decimal,
}

fn main() {}
