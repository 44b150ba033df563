// A query error is the only error: the code that uses the struct compiles against
// stand-in impls, instead of failing again with "`StreamTable` is not implemented".
#[pgstream::stream_table(query = "SELECT nmae FROM departments")]
pub struct Names {
    pub name: String,
}

async fn uses(pool: pgstream::sqlx::PgPool) {
    let _ = pgstream::Runtime::builder(pool.clone()).register::<Names>();
    let _: Vec<Names> = pgstream::sqlx::query_as("SELECT name FROM names")
        .fetch_all(&pool)
        .await
        .unwrap();
}

fn main() {
    let _ = uses;
}
