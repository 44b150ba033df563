//! `RuntimeHandle::health()` for readiness probes (issue 16): running, the last
//! scheduler pass, the database's answer and the failing stream tables.

use std::time::{Duration, Instant};

use pgstream_runtime::{Mode, Runtime, RuntimeHandle};
use pgstream_tests::test_db;

#[tokio::test]
async fn health_reports_running_ticks_and_failing_stream_tables() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO t SELECT g, g FROM generate_series(1, 10) g;",
    )
    .await;
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_millis(100))
        .register_spec(
            pgstream_runtime::spec("a", "SELECT id, v FROM t", "1s", Mode::Differential).unwrap(),
        )
        .register_spec(pgstream_runtime::spec("b", "SELECT id FROM t", "1s", Mode::Full).unwrap())
        .start()
        .await
        .unwrap();
    let handle = rt.handle();
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let h = handle.health().await;
        if h.ticking || Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(health.running && health.scheduler, "{health:?}");
    assert!(health.ticking && health.last_tick.is_some(), "{health:?}");
    assert!(health.database_reachable, "{health:?}");
    assert!(health.failing.is_empty(), "{health:?}");
    assert!(health.is_ready(), "{health:?}");

    // A suspended stream table is listed, with its reason; the runtime stays ready.
    db.exec(
        "UPDATE pgstream.pgs_stream_tables
            SET status = 'SUSPENDED', status_reason = 'suspended for the test',
                consecutive_failures = 5
          WHERE table_name = 'b'",
    )
    .await;
    let health = handle.health().await;
    assert_eq!(health.failing.len(), 1, "{health:?}");
    let b = &health.failing[0];
    assert_eq!(
        (b.name.as_str(), b.status.as_str(), b.consecutive_failures),
        ("b", "SUSPENDED", 5)
    );
    assert_eq!(b.reason.as_deref(), Some("suspended for the test"));
    assert!(health.is_ready(), "{health:?}");

    rt.shutdown().await;
    let health = handle.health().await;
    assert!(
        !health.running && !health.ticking && !health.is_ready(),
        "{health:?}"
    );

    // A handle of no runtime.
    let health = RuntimeHandle::new(db.pool.clone()).health().await;
    assert!(!health.running && health.database_reachable, "{health:?}");

    // A runtime without scheduler: ready once started, its pass recorded by run_once.
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    assert!(rt.health().await.is_ready());
    assert!(rt.health().await.last_tick.is_none());
    rt.run_once().await.unwrap();
    assert!(rt.health().await.last_tick.is_some());
    rt.shutdown().await;
}

#[tokio::test]
async fn health_answers_when_the_database_is_down() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .unwrap();
    let started = Instant::now();
    let health = RuntimeHandle::new(pool).health().await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        !health.database_reachable && !health.is_ready(),
        "{health:?}"
    );
    assert!(health.database_error.is_some(), "{health:?}");
}
