//! Storage columns are `NOT NULL` where the compiler proved the output non-nullable
//! (issue 16), so that `sqlx::query_as!` over a stream table infers the same field
//! types as `#[stream_table]` checks; nullable outputs (a nullable source column, a
//! sum, the padded side of a LEFT JOIN) stay nullable, and refreshes keep working.

use pgstream_runtime::{Mode, RuntimeHandle};
use pgstream_tests::test_db;

#[tokio::test]
async fn proven_non_nullable_outputs_are_not_null() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE d (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE e (id int PRIMARY KEY, d_id int NOT NULL, pay int);",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    for mode in [Mode::Differential, Mode::Full] {
        db.exec(
            "TRUNCATE d, e;
             INSERT INTO d VALUES (1, 'a'), (2, 'b');
             INSERT INTO e VALUES (1, 1, 10), (2, 1, NULL);",
        )
        .await;
        let name = format!("per_d_{}", mode.as_str().to_lowercase());
        h.create_stream_table(
            &name,
            "SELECT d.id, d.name, count(e.id) AS n, sum(e.pay) AS total, max(e.pay) AS top
               FROM d LEFT JOIN e ON e.d_id = d.id GROUP BY d.id, d.name",
            "1h",
            mode,
        )
        .await
        .unwrap();
        let not_null: Vec<(String, bool)> = sqlx::query_as(
            "SELECT attname::text, attnotnull FROM pg_attribute
              WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
                AND attname !~ '^__pgs' ORDER BY attnum",
        )
        .bind(&name)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            not_null,
            [
                ("id".to_string(), true),
                ("name".to_string(), true),
                ("n".to_string(), true),
                ("total".to_string(), false),
                ("top".to_string(), false),
            ],
            "{name}"
        );
        db.exec("INSERT INTO d VALUES (3, 'c'); DELETE FROM e WHERE id = 1; UPDATE d SET name = 'z' WHERE id = 2;")
            .await;
        h.refresh(&name).await.unwrap();
        db.exec("DELETE FROM d WHERE id = 3; INSERT INTO e VALUES (3, 2, 5);")
            .await;
        h.refresh(&name).await.unwrap();
        let (rows, nulls): (i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*), count(*) FILTER (WHERE total IS NULL) FROM {name}"
        ))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!((rows, nulls), (2, 1), "{name}");
    }
}
