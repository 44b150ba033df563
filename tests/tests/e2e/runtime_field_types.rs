//! The start-up type check: a struct compiled against `migrations/` meets a database
//! whose schema differs. `Runtime::builder(..).register::<T>().start()` refuses with
//! `Error::SchemaDrift` naming the column, the SQL type found and the field's type:
//! before creating the stream table when the query's types can be inferred, and
//! against the storage table when they cannot (a function of the user's own).

use pgstream::{Error, Runtime, StreamTable};
use pgstream_tests::test_db;
use rust_decimal::Decimal;

#[pgstream::stream_table(query = "SELECT id, name, salary FROM employees", mode = "full")]
#[allow(dead_code)] // the check reads the fields' types, never their values
pub struct Salaries {
    pub id: i32,
    pub name: String,
    pub salary: Decimal,
}

#[pgstream::stream_table(
    query = "SELECT id, public.badge(id) AS badge FROM employees",
    mode = "full"
)]
#[allow(dead_code)] // as above
pub struct Badges {
    pub id: i32,
    pub badge: Option<i32>,
}

/// The tutorial's tables as the migrations define them, except what `changes` alters.
async fn database(changes: &str) -> pgstream_tests::TestDb {
    let db = test_db().await;
    db.exec(include_str!("../../migrations/0001_tutorial.sql"))
        .await;
    db.exec(changes).await;
    db
}

async fn stream_tables(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pgstream.pgs_stream_tables")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn matching_schema_starts() {
    let db = database(
        "CREATE FUNCTION public.badge(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 10'",
    )
    .await;
    assert_eq!(Salaries::FIELDS.len(), 3);
    assert_eq!(Salaries::FIELDS[2].sql_types, ["numeric"]);
    let rt = Runtime::builder(db.pool.clone())
        .register::<Salaries>()
        .register::<Badges>()
        .scheduler(false)
        .start()
        .await
        .unwrap();
    rt.shutdown().await;
}

#[tokio::test]
async fn retyped_column_is_refused_before_creation() {
    let db = database(
        "ALTER TABLE employees ALTER COLUMN salary TYPE double precision;
         ALTER TABLE employees ALTER COLUMN name DROP NOT NULL;",
    )
    .await;
    let err = match Runtime::builder(db.pool.clone())
        .register::<Salaries>()
        .scheduler(false)
        .start()
        .await
    {
        Ok(_) => panic!("the schema differs from the migrations"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(matches!(err, Error::SchemaDrift { .. }), "{msg}");
    assert!(msg.contains("salaries"), "{msg}");
    assert!(
        msg.contains("salary as `Decimal`, which reads numeric"),
        "{msg}"
    );
    assert!(msg.contains("salary double precision"), "{msg}");
    assert!(msg.contains("name as `String`"), "{msg}");
    assert!(msg.contains("name text that can be NULL"), "{msg}");
    assert_eq!(stream_tables(&db.pool).await, 0, "nothing created");
}

#[tokio::test]
async fn type_the_macro_could_not_infer_is_checked_on_the_storage_table() {
    let db = database("CREATE FUNCTION public.badge(int) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::text'").await;
    let err = match Runtime::builder(db.pool.clone())
        .register::<Badges>()
        .scheduler(false)
        .start()
        .await
    {
        Ok(_) => panic!("badge is text, the field an i32"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(matches!(err, Error::SchemaDrift { .. }), "{msg}");
    assert!(
        msg.contains("badge as `Option<i32>`, which reads integer"),
        "{msg}"
    );
    assert!(msg.contains("badge text"), "{msg}");
}

/// A registered struct whose tables are not in the database (the migrations were not
/// applied before `Runtime::start`) is told to apply them.
#[tokio::test]
async fn missing_tables_say_to_apply_the_migrations() {
    let db = test_db().await;
    let err = Runtime::builder(db.pool.clone())
        .register::<Salaries>()
        .scheduler(false)
        .start()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown table `employees`"), "{msg}");
    assert!(
        msg.contains("apply the migrations") && msg.contains("before `Runtime::start`"),
        "{msg}"
    );
}
