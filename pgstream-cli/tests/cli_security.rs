//! The `pgstream` command line against hostile roles (issue 11, items 8 and 9): an
//! attacker planted objects in `public`, or replaced a source it owns by a view of its
//! name; a superuser runs `pgstream create`, `refresh`, `status`, `resume` and `drop`.
//! Every command must work (or report the drift), no planted object may run, and the
//! attacker stays unprivileged.

use pgstream_tests::attack::{
    assert_not_pwned, attacker_owned_source, plant_search_path_objects, replace_source_by_view,
    REPLACED_SOURCE,
};
use pgstream_tests::{test_db, TestDb};
use std::process::{Command, Output};

/// Runs the `pgstream` command against the test database as its superuser.
async fn pgstream(db: &TestDb, args: &[&str]) -> Output {
    let url = db.url.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pgstream"))
            .args(&args)
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run pgstream")
    })
    .await
    .unwrap()
}

async fn ok(db: &TestDb, args: &[&str]) -> String {
    let out = pgstream(db, args).await;
    assert!(
        out.status.success(),
        "pgstream {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn cli_commands_resolve_only_pg_catalog() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount int NOT NULL);
         INSERT INTO orders SELECT i, 'c' || (i % 3), i FROM generate_series(1, 30) i;",
    )
    .await;
    plant_search_path_objects(&db).await;
    let q = "SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer";
    ok(
        &db,
        &["create", "per_customer", "--query", q, "--schedule", "1h"],
    )
    .await;
    ok(
        &db,
        &[
            "create",
            "n",
            "--query",
            "SELECT count(*) AS n FROM orders",
            "--mode",
            "full",
        ],
    )
    .await;
    assert_not_pwned(&db, "pgstream create").await;
    db.exec("INSERT INTO orders VALUES (100, 'c9', 500)").await;
    ok(&db, &["refresh", "per_customer"]).await;
    ok(&db, &["refresh", "n"]).await;
    assert_not_pwned(&db, "pgstream refresh").await;
    let status = ok(&db, &["status"]).await;
    assert!(status.contains("per_customer"), "{status}");
    assert_not_pwned(&db, "pgstream status").await;
    ok(&db, &["resume", "n"]).await;
    assert_not_pwned(&db, "pgstream resume").await;
    ok(&db, &["drop", "n"]).await;
    assert_not_pwned(&db, "pgstream drop").await;
    let n: i64 = sqlx::query_scalar("SELECT sum(n)::int8 FROM per_customer")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 31);
}

#[tokio::test]
async fn cli_refresh_of_a_replaced_source_is_drift() {
    let db = test_db().await;
    attacker_owned_source(&db).await;
    let q = "SELECT g, count(*) AS n, sum(v) AS s FROM src GROUP BY g";
    ok(&db, &["create", "per_g", "--query", q, "--schedule", "1h"]).await;
    replace_source_by_view(&db).await;
    // Whatever the event trigger did, the refresh checks again.
    db.exec("UPDATE pgstream.pgs_stream_tables SET status = 'ACTIVE', status_reason = NULL")
        .await;
    let out = pgstream(&db, &["refresh", "per_g"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(REPLACED_SOURCE), "{stderr}");
    assert_not_pwned(&db, "pgstream refresh").await;
    let status = ok(&db, &["status"]).await;
    assert!(status.contains("ERROR"), "{status}");
    let out = pgstream(&db, &["resume", "per_g"]).await;
    assert!(!out.status.success());
    assert_not_pwned(&db, "pgstream status and resume").await;
}
