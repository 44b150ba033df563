//! Stream table names PostgreSQL would truncate (more than 63 bytes) are refused by the
//! runtime with the limit in the message, and nothing is created.

use pgstream_runtime::{Mode, RuntimeHandle};
use pgstream_tests::test_db;

#[tokio::test]
async fn names_longer_than_63_bytes_are_refused() {
    let db = test_db().await;
    db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    let h = RuntimeHandle::new(db.pool.clone());
    // 64 bytes, and 32 two-byte characters (64 bytes in 32 characters).
    for name in [
        "n".repeat(64),
        "é".repeat(32),
        format!("{}.t", "s".repeat(64)),
    ] {
        let err = h
            .create_stream_table(&name, "SELECT id FROM t", "1h", Mode::Differential)
            .await
            .expect_err(&name)
            .to_string();
        assert!(err.contains("at most 63 bytes"), "{name}: {err}");
    }
    // Nothing was created (the storage table would be the name truncated to 63 bytes).
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname LIKE 'nnn%' OR relname LIKE 'é%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(n, 0);
    // 63 bytes is the longest name PostgreSQL keeps: accepted, refreshed, dropped by it.
    let name = "n".repeat(63);
    h.create_stream_table(&name, "SELECT id FROM t", "1h", Mode::Differential)
        .await
        .unwrap();
    db.exec("INSERT INTO t VALUES (1)").await;
    h.refresh(&name).await.unwrap();
    pgstream_runtime::drop_stream_table(&db.pool, &name)
        .await
        .unwrap();
}
