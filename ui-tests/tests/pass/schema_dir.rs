// `schema` points at another directory of migrations, applied in file-name order
// (`0002` adds a column to the table `0001` creates; `*.down.sql` is skipped).
use pgstream::StreamTable;

#[pgstream::stream_table(
    query = "SELECT id, customer, total FROM orders WHERE total > 100",
    schema = "fixtures/shop",
    name = "big_orders"
)]
pub struct BigOrder {
    pub id: i64,
    pub customer: String,
    pub total: rust_decimal::Decimal,
}

pub fn check() {
    assert_eq!(BigOrder::DEF.name, "big_orders");
    assert_eq!(BigOrder::DEF.columns, ["id", "customer", "total"]);
}
