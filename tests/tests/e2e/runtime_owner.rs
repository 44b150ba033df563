//! pgstream installed and used by the database's owner without superuser (managed
//! PostgreSQL): no DDL event trigger, so nothing rebuilds a capture function after
//! an ALTER TABLE. The application's writes must go on whatever happens to the
//! table's shape (issue 11, item 6); the stream tables that read a changed column go
//! to ERROR at their next refresh, the others stay exact.

use pgstream_runtime::{Mode, RuntimeHandle};
use pgstream_tests::compare::difference;
use pgstream_tests::{test_db, TestDb};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

async fn exec(pool: &PgPool, sql: &str) {
    if let Err(e) = sqlx::raw_sql(sql).execute(pool).await {
        panic!("SQL failed: {e}\n{sql}");
    }
}

/// A database owned by a role without superuser, and a pool of that role.
async fn owner_db() -> (TestDb, PgPool) {
    let db = test_db().await;
    let role = format!("owner_{}", db.name);
    db.exec(&format!(
        "CREATE ROLE {role} LOGIN NOSUPERUSER; ALTER DATABASE {} OWNER TO {role};",
        db.name
    ))
    .await;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(db.connect_options().username(&role))
        .await
        .unwrap();
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!superuser);
    (db, pool)
}

const ORDERS: &str = "CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, quantity int, price numeric NOT NULL, note text);
     INSERT INTO orders SELECT g, g % 5, g, g * 1.5, 'n' || g FROM generate_series(1, 20) g;";
const BY_CUSTOMER: &str =
    "SELECT customer, sum(quantity) AS q, count(*) AS n FROM orders GROUP BY customer";
const PRICES: &str = "SELECT id, price FROM orders WHERE customer <> 3";

/// The reader of `quantity` and the stream table that does not read it.
async fn create_both(h: &RuntimeHandle) {
    h.create_stream_table("by_customer", BY_CUSTOMER, "1h", Mode::Differential)
        .await
        .unwrap();
    h.create_stream_table("prices", PRICES, "1h", Mode::Differential)
        .await
        .unwrap();
}

#[tokio::test]
async fn writes_go_on_after_a_captured_column_changes_without_the_event_trigger() {
    for ddl in [
        "ALTER TABLE orders DROP COLUMN quantity",
        "ALTER TABLE orders RENAME COLUMN quantity TO qty",
        "ALTER TABLE orders ALTER COLUMN quantity TYPE text",
        "ALTER TABLE orders ALTER COLUMN quantity TYPE bigint",
    ] {
        let (_db, pool) = owner_db().await;
        pgstream_runtime::install(&pool).await.unwrap();
        assert!(!pgstream_runtime::event_trigger_installed(&pool)
            .await
            .unwrap());
        exec(&pool, ORDERS).await;
        let h = RuntimeHandle::new(pool.clone());
        create_both(&h).await;
        exec(&pool, ddl).await;
        // Every kind of write still works, from the application's role.
        let value = if ddl.contains("DROP") { "" } else { ", 7" };
        let cols = if ddl.contains("DROP") {
            "(id, customer, price, note)"
        } else if ddl.contains("RENAME") {
            "(id, customer, price, note, qty)"
        } else {
            "(id, customer, price, note, quantity)"
        };
        exec(
            &pool,
            &format!(
                "INSERT INTO orders {cols} VALUES (100, 1, 9.5, 'new'{value});
                 UPDATE orders SET price = price + 1 WHERE id <= 5;
                 UPDATE orders SET customer = 3 WHERE id = 6;
                 DELETE FROM orders WHERE id = 7;"
            ),
        )
        .await;
        // The reader of the changed column: ERROR at its refresh, naming the column.
        let err = h.refresh("by_customer").await.unwrap_err();
        assert_eq!(err.sqlstate().as_deref(), Some("PGS01"), "{ddl}: {err}");
        assert!(err.to_string().contains("quantity"), "{ddl}: {err}");
        // The other reader: exact.
        h.refresh("prices").await.unwrap();
        assert_eq!(
            difference(&pool, PRICES, "prices", "id, price").await,
            0,
            "{ddl}"
        );
        exec(
            &pool,
            "INSERT INTO orders (id, customer, price) VALUES (101, 2, 1)",
        )
        .await;
        h.refresh("prices").await.unwrap();
        assert_eq!(
            difference(&pool, PRICES, "prices", "id, price").await,
            0,
            "{ddl}"
        );
        pool.close().await;
    }
}

#[tokio::test]
async fn a_column_renamed_and_back_then_resumed_is_exact() {
    // Changes captured while `quantity` was renamed hold NULL for it: resuming out
    // of ERROR refreshes in full.
    let (_db, pool) = owner_db().await;
    exec(&pool, ORDERS).await;
    let h = RuntimeHandle::new(pool.clone());
    h.create_stream_table("by_customer", BY_CUSTOMER, "1h", Mode::Differential)
        .await
        .unwrap();
    exec(
        &pool,
        "ALTER TABLE orders RENAME COLUMN quantity TO qty;
         UPDATE orders SET qty = qty + 100 WHERE id <= 10;
         INSERT INTO orders (id, customer, qty, price) VALUES (200, 4, 1000, 1);",
    )
    .await;
    let err = h.refresh("by_customer").await.unwrap_err();
    assert_eq!(err.sqlstate().as_deref(), Some("PGS01"), "{err}");
    exec(&pool, "ALTER TABLE orders RENAME COLUMN qty TO quantity").await;
    h.resume("by_customer").await.unwrap();
    h.refresh("by_customer").await.unwrap();
    assert_eq!(
        difference(&pool, BY_CUSTOMER, "by_customer", "customer, q, n").await,
        0
    );
}

/// The event trigger disabled after the capture functions were built without the
/// per-statement shape check: the next install (a start of the runtime) rebuilds them
/// with it, so that the application's writes survive the next ALTER TABLE; enabled
/// again, the next install takes the check out.
#[tokio::test]
async fn install_rebuilds_capture_when_the_event_trigger_comes_and_goes() {
    let db = test_db().await;
    let pool = db.new_pool(4).await;
    pgstream_runtime::install(&pool).await.unwrap();
    assert!(pgstream_runtime::event_trigger_installed(&pool)
        .await
        .unwrap());
    exec(&pool, ORDERS).await;
    let h = RuntimeHandle::new(pool.clone());
    create_both(&h).await;
    let has_guard = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT p.prosrc LIKE '%no event trigger rebuilt this function%'
               FROM pg_proc p WHERE p.proname = 'capture_' || 'orders'::regclass::oid",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert!(!has_guard().await);

    exec(&pool, "ALTER EVENT TRIGGER pgstream_ddl DISABLE").await;
    pgstream_runtime::install(&pool).await.unwrap();
    assert!(
        has_guard().await,
        "no trigger: the capture checks the shape"
    );
    exec(&pool, "ALTER TABLE orders DROP COLUMN quantity").await;
    exec(
        &pool,
        "INSERT INTO orders (id, customer, price) VALUES (100, 1, 9.5);
         UPDATE orders SET price = price + 1 WHERE id <= 5;
         DELETE FROM orders WHERE id = 7;",
    )
    .await;
    h.refresh("prices").await.unwrap();
    assert_eq!(difference(&pool, PRICES, "prices", "id, price").await, 0);

    exec(&pool, "ALTER EVENT TRIGGER pgstream_ddl ENABLE").await;
    pgstream_runtime::install(&pool).await.unwrap();
    assert!(!has_guard().await, "the trigger is back: no check needed");
}
