//! The filter right above a source is applied to its window before the images are
//! netted (`render::window::window_sql`'s prefilter). These tests hold it to the
//! query: a row moved in and out of the filter's range many times in one window,
//! its key changed, NULLs, a delete and re-insert of the same image, a row whose
//! images cancel; and a filter that could fail on an image that exists only inside
//! the window (`10 / d`, with `d = 0` for a moment) is not applied before netting,
//! so the refresh does not fail where the query does not.

use pgstream_runtime::{Mode, RuntimeHandle};
use pgstream_tests::{test_db, TestDb};

async fn check(db: &TestDb, h: &RuntimeHandle, name: &str, query: &str, cols: &str, step: &str) {
    h.refresh(name)
        .await
        .unwrap_or_else(|e| panic!("{step}: refresh {name}: {e}"));
    assert_eq!(
        db.difference(query, cols, name).await,
        0,
        "{step}: {name} differs from its query"
    );
}

/// Runs each batch (one window: its statements, then one refresh of each stream
/// table `(name, query, columns)`), checking every stream table after it.
async fn run_batches(
    db: &TestDb,
    h: &RuntimeHandle,
    streams: &[(&str, &str, &str)],
    batches: &[&str],
) {
    for (k, batch) in batches.iter().enumerate() {
        for stmt in batch.split(';') {
            db.exec(stmt).await;
        }
        for (name, query, cols) in streams {
            check(db, h, name, query, cols, &format!("batch {k}")).await;
        }
    }
}

#[tokio::test]
async fn a_filtered_window_nets_like_the_query() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE pf (id int PRIMARY KEY, g int, v numeric, note text);
         INSERT INTO pf SELECT i, i % 3, i, 'n' || i FROM generate_series(1, 20) i;
         CREATE TABLE pj (id int PRIMARY KEY, pf_id int, w int);
         INSERT INTO pj SELECT i, i % 25, i FROM generate_series(1, 30) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    let streams = [
        (
            "pf_rows",
            "SELECT id, g, v FROM pf WHERE v BETWEEN 5 AND 15 AND g IS NOT NULL",
            "id, g, v",
        ),
        (
            "pf_sum",
            "SELECT g, count(*) AS n, sum(v) AS s FROM pf WHERE v >= 10 OR g = 0 GROUP BY g",
            "g, n, s",
        ),
        // A condition on the preserved side of an outer join, in its ON: rows that
        // fail it stay (padded), so it restricts no window.
        (
            "pf_left",
            "SELECT pf.id, pf.v, pj.w FROM pf LEFT JOIN pj ON pj.pf_id = pf.id AND pf.v > 8",
            "id, v, w",
        ),
        // An anti join: the rows of pf that fail the subquery's condition on pf are
        // exactly the ones it keeps.
        (
            "pf_anti",
            "SELECT id, v FROM pf WHERE NOT EXISTS \
             (SELECT 1 FROM pj WHERE pj.pf_id = pf.id AND pf.v > 8 AND pj.w > 3)",
            "id, v",
        ),
        // A semi join and an inner join: their conditions restrict both windows.
        (
            "pf_semi",
            "SELECT pf.id, pf.g FROM pf, pj WHERE pj.pf_id = pf.id AND (pf.v > 8 OR pj.w < 5) \
             AND EXISTS (SELECT 1 FROM pj p2 WHERE p2.pf_id = pf.id AND p2.w > 10 AND pf.g <> 1)",
            "id, g",
        ),
    ];
    for (name, query, _) in streams {
        h.create_stream_table(name, query, "1h", Mode::Differential)
            .await
            .unwrap();
    }
    // Each batch is one window: several transactions before one refresh.
    let batches = [
        // In and out of the range, back in; a scale change (10 -> 10.0) in range.
        "UPDATE pf SET v = 100 WHERE id = 7; UPDATE pf SET v = 8 WHERE id = 7;
         UPDATE pf SET v = 10.0 WHERE id = 10; UPDATE pf SET v = 1 WHERE id = 12",
        // A key change into and out of the range; NULLs in the filtered columns.
        "UPDATE pf SET id = 107 WHERE id = 7; UPDATE pf SET g = NULL WHERE id = 8;
         UPDATE pf SET v = NULL WHERE id = 9; INSERT INTO pf VALUES (50, NULL, 12, 'x')",
        // Delete and re-insert the same image; an update that changes only an
        // unread column; an update that goes out of range and comes back unchanged.
        "DELETE FROM pf WHERE id = 11; INSERT INTO pf VALUES (11, 2, 11, 'n11');
         UPDATE pf SET note = 'changed' WHERE id = 13;
         UPDATE pf SET v = 99 WHERE id = 14; UPDATE pf SET v = 14 WHERE id = 14",
        // Everything out of range, then a TRUNCATE and a refill.
        "UPDATE pf SET v = v + 1000; UPDATE pj SET w = w + 3 WHERE id % 4 = 0;
         UPDATE pj SET pf_id = pf_id + 1 WHERE id % 5 = 0",
        "TRUNCATE pf; INSERT INTO pf SELECT i, i % 2, i, 'r' FROM generate_series(1, 16) i",
    ];
    run_batches(&db, &h, &streams, &batches).await;
}

#[tokio::test]
async fn a_filter_that_could_fail_is_not_applied_to_images_that_cancel() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE pd (id int PRIMARY KEY, d int);
         INSERT INTO pd SELECT i, 1 + i % 4 FROM generate_series(1, 12) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    let query = "SELECT id, d FROM pd WHERE 10 / d > 2";
    h.create_stream_table("pd_rows", query, "1h", Mode::Differential)
        .await
        .unwrap();
    // d is 0 for a moment: the query never sees it, nor may the refresh.
    db.exec("UPDATE pd SET d = 0 WHERE id = 3").await;
    db.exec("UPDATE pd SET d = 2 WHERE id = 3").await;
    check(&db, &h, "pd_rows", query, "id, d", "d = 0 in the window").await;
}

/// A key link: the window of a fact table is restricted to the rows whose dimension
/// (by its primary key), and that dimension's own dimension, pass the query's
/// conditions, in the current state or in the window. Each batch changes both
/// sides together: a dimension moves into the filtered region while its facts
/// change, a dimension is deleted and re-inserted under another region, its primary
/// key changes, facts point to a key that exists only inside the window, keys are
/// NULL, and the dimension is truncated and refilled.
#[tokio::test]
async fn a_window_restricted_by_its_dimensions_nets_like_the_query() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE kr (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO kr VALUES (1, 'east'), (2, 'west'), (3, 'north');
         CREATE TABLE kd (id int PRIMARY KEY, region int, label text);
         INSERT INTO kd SELECT i, 1 + i % 3, 'd' || i FROM generate_series(1, 9) i;
         CREATE TABLE kf (id int PRIMARY KEY, dim int, amount int);
         INSERT INTO kf SELECT i, 1 + i % 10, i FROM generate_series(1, 40) i;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    let streams = [
        (
            "kl_rows",
            "SELECT f.id, f.amount, d.label FROM kf f, kd d, kr r \
             WHERE f.dim = d.id AND d.region = r.id AND r.name = 'east'",
            "id, amount, label",
        ),
        (
            "kl_sum",
            "SELECT d.region, count(*) AS n, sum(f.amount) AS s FROM kf f JOIN kd d ON d.id = f.dim \
             WHERE d.region IN (1, 3) GROUP BY d.region",
            "region, n, s",
        ),
    ];
    for (name, query, _) in streams {
        h.create_stream_table(name, query, "1h", Mode::Differential)
            .await
            .unwrap();
    }
    let batches = [
        // A dimension moves into the filtered region while its facts change; another
        // moves out; a fact moves to a dimension outside and back.
        "UPDATE kd SET region = 1 WHERE id = 2; UPDATE kf SET amount = amount + 1 WHERE dim = 2;
         UPDATE kd SET region = 2 WHERE id = 3; UPDATE kf SET amount = 0 WHERE dim = 3;
         UPDATE kf SET dim = 5 WHERE id = 1; UPDATE kf SET dim = 3 WHERE id = 1",
        // A dimension deleted with its facts changed, re-inserted under another
        // region; a fact pointing to a dimension that exists only in this window.
        "UPDATE kf SET amount = 7 WHERE dim = 6; DELETE FROM kd WHERE id = 6;
         INSERT INTO kd VALUES (6, 3, 'd6b');
         INSERT INTO kd VALUES (20, 1, 'tmp'); INSERT INTO kf VALUES (100, 20, 5);
         UPDATE kf SET dim = 7 WHERE id = 100; DELETE FROM kd WHERE id = 20",
        // A dimension's primary key changes; a region's name changes, and the
        // dimensions of the region that was `east` change with it (their old
        // images pass only by the region's old image), one of them moving to the
        // region that is `east` now; NULL keys.
        "UPDATE kd SET id = 30 WHERE id = 4; UPDATE kf SET dim = 30 WHERE dim = 4;
         UPDATE kr SET name = 'east' WHERE id = 2; UPDATE kr SET name = 'gone' WHERE id = 1;
         UPDATE kf SET dim = NULL WHERE id = 2; UPDATE kd SET region = NULL WHERE id = 5;
         UPDATE kd SET label = label || '+' WHERE region = 1; UPDATE kd SET region = 2 WHERE id = 9",
        // The region table emptied and refilled in one window, facts changed in it.
        "TRUNCATE kr; UPDATE kf SET amount = amount * 2 WHERE id % 3 = 0;
         INSERT INTO kr VALUES (1, 'east'), (2, 'west'), (3, 'east')",
        // The dimension emptied and refilled, facts inserted for it meanwhile.
        "TRUNCATE kd; INSERT INTO kf VALUES (200, 1, 1), (201, 2, 2);
         INSERT INTO kd SELECT i, 1 + i % 2, 'e' || i FROM generate_series(1, 9) i",
    ];
    run_batches(&db, &h, &streams, &batches).await;
}
