//! Tests of the harness itself: isolated fresh databases, a working server.

use pgstream_tests::test_db;

#[tokio::test]
async fn version_works() {
    let db = test_db().await;
    let v: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(v.starts_with("PostgreSQL"), "{v}");
    eprintln!("server: {v}");
    let current: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(current, db.name);
}

#[tokio::test]
async fn databases_are_isolated() {
    let (a, b) = tokio::join!(test_db(), test_db());
    assert_ne!(a.name, b.name);
    a.exec("CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (1)")
        .await;
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'only_in_a'",
    )
    .fetch_one(&b.pool)
    .await
    .unwrap();
    assert_eq!(n, 0);
    let err = sqlx::query("SELECT * FROM only_in_a")
        .execute(&b.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// Runs in parallel with the other tests (separate threads of one process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_connections_see_the_same_database() {
    let db = test_db().await;
    db.exec("CREATE TABLE t (x int)").await;
    let pool2 = db.new_pool(3).await;
    sqlx::query("INSERT INTO t VALUES (42)")
        .execute(&pool2)
        .await
        .unwrap();
    let mut conn = db.connect().await;
    let x: i32 = sqlx::query_scalar("SELECT x FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(x, 42);
    let url_pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&url_pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn many_parallel_databases() {
    let dbs = futures_join_all(8).await;
    let mut names: Vec<_> = dbs.iter().map(|d| d.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 8);
}

async fn futures_join_all(n: usize) -> Vec<pgstream_tests::TestDb> {
    let handles: Vec<_> = (0..n).map(|_| tokio::spawn(test_db())).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The private cluster of `embedded_cluster` (used by the example) works and is
/// stopped and deleted when its guard is dropped.
#[tokio::test]
async fn embedded_cluster_starts_and_cleans_up() {
    let (guard, url) = pgstream_tests::embedded_cluster().await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    pool.close().await;
    let dir = guard.cluster.dir.clone();
    let pid = guard.cluster.pid;
    assert!(dir.join("data").is_dir());
    drop(guard);
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "postmaster {pid} still running"
    );
}
