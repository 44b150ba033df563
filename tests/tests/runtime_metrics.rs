//! Metrics through the `metrics` facade (issue 16), rendered by the Prometheus
//! exporter as an application would install it: refresh durations, rows changed,
//! refreshes and failures per stream table (with the failure's kind), and the gauges
//! the scheduler samples (staleness, buffer rows per source, stream tables per
//! status). One test: the recorder is global to the process.

use pgstream_runtime::{metrics, Mode, RuntimeHandle};
use pgstream_tests::test_db;

/// The value of the first sample line of `name` whose labels contain `labels`.
fn value(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn refreshes_failures_and_gauges_are_recorded() {
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("install the Prometheus recorder");
    metrics::describe();
    let db = test_db().await;
    db.exec(
        "CREATE TABLE m (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL, note text);
         INSERT INTO m SELECT i, i % 3, i, 'x' FROM generate_series(1, 30) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table(
        "m_sums",
        "SELECT g, sum(v) AS s, count(*) AS n FROM m GROUP BY g",
        "1h",
        Mode::Differential,
    )
    .await
    .unwrap();
    db.exec("UPDATE m SET v = v + 1 WHERE id <= 10; INSERT INTO m VALUES (100, 7, 1, NULL);")
        .await;
    let out = h.refresh("m_sums").await.unwrap();
    h.refresh("m_sums").await.unwrap();

    // Changes wait in the buffer of `m` until a refresh consumes them.
    db.exec("INSERT INTO m SELECT i, 1, 1, NULL FROM generate_series(200, 219) i")
        .await;
    metrics::sample(&db.pool).await.unwrap();
    let text = prometheus.render();
    let st = "stream_table=\"m_sums\"";
    assert_eq!(
        value(&text, "pgstream_refreshes_total", st),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "pgstream_refresh_rows_changed_total", st),
        Some(out.rows_changed as f64),
        "{text}"
    );
    assert!(out.rows_changed > 0);
    assert_eq!(
        value(&text, "pgstream_refresh_duration_seconds_count", st),
        Some(2.0),
        "{text}"
    );
    let age = value(&text, "pgstream_staleness_seconds", st).expect("staleness gauge");
    assert!((0.0..3600.0).contains(&age), "{text}");
    // Once the changes are applied, nothing is pending: the data is current.
    h.refresh("m_sums").await.unwrap();
    metrics::sample(&db.pool).await.unwrap();
    let text = prometheus.render();
    assert_eq!(
        value(&text, "pgstream_staleness_seconds", st),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "pgstream_refreshes_total", st),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "pgstream_stream_tables", "status=\"ACTIVE\""),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("# HELP pgstream_refresh_duration_seconds"),
        "{text}"
    );
    // The buffer gauge is PostgreSQL's live-row estimate, present for the source.
    assert!(
        value(&text, "pgstream_buffer_rows", "source=\"m\"").is_some(),
        "{text}"
    );

    // A column the query reads is dropped: the refresh fails as drift.
    db.exec("ALTER TABLE m DROP COLUMN v").await;
    h.refresh("m_sums").await.unwrap_err();
    metrics::sample(&db.pool).await.unwrap();
    let text = prometheus.render();
    assert_eq!(
        value(&text, "pgstream_refresh_failures_total", "kind=\"drift\""),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "pgstream_stream_tables", "status=\"ERROR\""),
        Some(1.0),
        "{text}"
    );
}
