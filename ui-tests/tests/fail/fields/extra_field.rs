#[pgstream::stream_table(query = "SELECT id, name FROM employees", schedule = "30s")]
pub struct Staff {
    pub id: i32,
    pub name: String,
    pub salary: rust_decimal::Decimal,
}

fn main() {}
