//! Change filters (issue 15): a stream table whose query filters a source
//! (`WHERE tenant_id = 3`) is not refreshed for changes that fail the filter; the
//! scheduler advances its frontiers instead (`pgstream._advance_unaffected`). These
//! tests check that only the stream tables a change can alter are refreshed, and,
//! with random batches (tenant moves, deletes, inserts, a transaction in progress
//! across a pass, TRUNCATE), that every stream table stays equal to its query.

use pgstream_runtime::{Mode, Runtime};
use pgstream_tests::compare::{difference, scalar_i64};
use pgstream_tests::{test_db, TestDb};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TENANTS: i64 = 6;

const SCHEMA: &str = "
    CREATE TABLE tenants (id int PRIMARY KEY, plan text NOT NULL);
    CREATE TABLE orders (id int PRIMARY KEY, tenant_id int, status text NOT NULL,
                         amount numeric(10,2) NOT NULL);
    INSERT INTO tenants SELECT g, (ARRAY['free','team'])[1 + g % 2] FROM generate_series(1, 6) g;
    INSERT INTO orders SELECT g, 1 + g % 6, (ARRAY['open','paid','shipped'])[1 + g % 3], g
      FROM generate_series(1, 60) g;";

/// `(name, query, columns)` of the stream tables of tenant `n`.
fn queries(n: i64) -> Vec<(String, String, &'static str)> {
    vec![
        (
            format!("agg_{n}"),
            format!(
                "SELECT status, count(*) AS n, sum(amount) AS total FROM orders \
                 WHERE tenant_id = {n} GROUP BY status"
            ),
            "status, n, total",
        ),
        (
            format!("join_{n}"),
            format!(
                "SELECT o.id, o.amount, t.plan FROM orders o JOIN tenants t ON t.id = o.tenant_id \
                 WHERE o.tenant_id = {n}"
            ),
            "id, amount, plan",
        ),
        (
            format!("pair_{n}"),
            format!(
                "SELECT a.id, b.id AS other FROM orders a JOIN orders b ON a.status = b.status \
                 WHERE a.tenant_id = {n} AND b.tenant_id = {} AND a.amount BETWEEN 1 AND 40",
                n % TENANTS + 1
            ),
            "id, other",
        ),
        (
            format!("lonely_{n}"),
            format!(
                "SELECT t.id, t.plan FROM tenants t WHERE t.id IN ({n}, {}) \
                 AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = t.id AND o.status = 'open')",
                n + TENANTS
            ),
            "id, plan",
        ),
    ]
}

/// How many stream tables a pass advances in one transaction here: the 24 stream
/// tables of `setup` take five batches, so a candidate lost between batches would be
/// refreshed instead of advanced and fail the first test's exact list.
const ADVANCE_BATCH: u32 = 5;

/// A database with the schema and a runtime without its scheduler (passes by hand).
async fn start() -> (TestDb, Runtime) {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .advance_batch(ADVANCE_BATCH)
        .start()
        .await
        .unwrap();
    (db, rt)
}

async fn setup() -> (TestDb, Runtime) {
    let (db, rt) = start().await;
    for n in 1..=TENANTS {
        for (name, query, _) in queries(n) {
            rt.create_stream_table(&name, &query, "1s", Mode::Differential)
                .await
                .unwrap();
        }
    }
    (db, rt)
}

/// Make every stream table due and run one scheduler pass.
async fn pass(db: &TestDb, rt: &Runtime) {
    db.exec("UPDATE pgstream.pgs_stream_tables SET last_refresh_at = now() - interval '1 hour'")
        .await;
    rt.run_once().await.unwrap();
}

async fn refresh_counts(db: &TestDb) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT name::text, refresh_count FROM pgstream.pg_stat_stream_tables ORDER BY name",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn refreshed_since(db: &TestDb, before: &[(String, i64)]) -> Vec<String> {
    let after = refresh_counts(db).await;
    before
        .iter()
        .zip(&after)
        .filter(|(b, a)| a.1 > b.1)
        .map(|(_, a)| a.0.clone())
        .collect()
}

async fn assert_all_exact(db: &TestDb, context: &str) {
    for n in 1..=TENANTS {
        for (name, query, cols) in queries(n) {
            let d = difference(&db.pool, &query, &name, cols).await;
            assert_eq!(d, 0, "{name} differs from its query {context}");
        }
    }
}

#[tokio::test]
async fn only_the_stream_tables_a_change_can_alter_are_refreshed() {
    let (db, rt) = setup().await;
    pass(&db, &rt).await;

    // An order of tenant 2: its aggregate, join and pair stream tables, and tenant 1's
    // pair (which reads tenant 2 on its other side). `lonely` reads open orders only.
    // (Order 1 is tenant 2's, paid, amount 1.)
    db.exec("UPDATE orders SET amount = amount + 1 WHERE id = 1")
        .await;
    let before = refresh_counts(&db).await;
    pass(&db, &rt).await;
    let mut got = refreshed_since(&db, &before).await;
    got.sort();
    assert_eq!(got, ["agg_2", "join_2", "pair_1", "pair_2"]);

    // The others were advanced: nothing pending, not stale.
    let status = rt.status().await.unwrap();
    assert!(
        status.iter().all(|s| s.pending_changes == 0 && !s.stale),
        "{status:?}"
    );
    assert_all_exact(&db, "after a change of tenant 2").await;

    // An order moves from tenant 3 to tenant 4: both sides see it.
    assert_eq!(
        scalar_i64(&db.pool, "SELECT tenant_id::int8 FROM orders WHERE id = 2").await,
        3
    );
    db.exec("UPDATE orders SET tenant_id = 4 WHERE id = 2")
        .await;
    let before = refresh_counts(&db).await;
    pass(&db, &rt).await;
    let got = refreshed_since(&db, &before).await;
    for name in ["agg_3", "agg_4", "join_3", "join_4"] {
        assert!(
            got.contains(&name.to_string()),
            "{name} not refreshed: {got:?}"
        );
    }
    for name in ["agg_1", "agg_6", "join_6"] {
        assert!(
            !got.contains(&name.to_string()),
            "{name} refreshed: {got:?}"
        );
    }
    assert_all_exact(&db, "after a move from tenant 3 to 4").await;

    // A change of `tenants` (no filter in the join stream tables): every reader.
    db.exec("UPDATE tenants SET plan = 'enterprise' WHERE id = 5")
        .await;
    let before = refresh_counts(&db).await;
    pass(&db, &rt).await;
    let got = refreshed_since(&db, &before).await;
    assert!(got.contains(&"join_1".to_string()), "{got:?}");
    assert_all_exact(&db, "after a change of tenants").await;
    rt.shutdown().await;
}

#[tokio::test]
async fn random_batches_keep_every_tenant_exact() {
    let (db, rt) = setup().await;
    pass(&db, &rt).await;
    let mut rng = StdRng::seed_from_u64(15);
    let mut next_id = 1000;
    // A transaction in progress across a pass: its change must reach the stream
    // tables in the pass after its commit, not be skipped by the advance.
    let mut open: Option<sqlx::Transaction<'static, sqlx::Postgres>> = None;
    for round in 0..40 {
        let mut batch = String::new();
        for _ in 0..rng.gen_range(1..6) {
            let tenant = rng.gen_range(1..=TENANTS + 1); // TENANTS + 1: nobody's
            let id = rng.gen_range(1..70);
            let stmt = match rng.gen_range(0..10) {
                0..=2 => format!(
                    "UPDATE orders SET amount = amount + {} WHERE id = {id};",
                    rng.gen_range(-5..20)
                ),
                3 => format!("UPDATE orders SET tenant_id = {tenant} WHERE id = {id};"),
                4 => format!("UPDATE orders SET tenant_id = NULL WHERE id = {id};"),
                5 => format!(
                    "UPDATE orders SET status = (ARRAY['open','paid','shipped'])[{}] WHERE id = {id};",
                    rng.gen_range(1..4)
                ),
                6 => format!("DELETE FROM orders WHERE id = {id};"),
                7 => {
                    next_id += 1;
                    format!(
                        "INSERT INTO orders VALUES ({next_id}, {tenant}, 'open', {});",
                        rng.gen_range(1..50)
                    )
                }
                8 => format!(
                    "UPDATE tenants SET plan = (ARRAY['free','team','enterprise'])[{}] WHERE id = {tenant};",
                    rng.gen_range(1..4)
                ),
                _ => format!("INSERT INTO orders SELECT id + 500, tenant_id, status, amount FROM orders WHERE id = {id} ON CONFLICT DO NOTHING;"),
            };
            batch.push_str(&stmt);
        }
        if round == 25 {
            batch.push_str("TRUNCATE orders CASCADE; INSERT INTO orders SELECT g, 1 + g % 6, 'paid', g FROM generate_series(1, 30) g;");
        }
        db.exec(&batch).await;
        if round % 7 == 3 {
            let mut tx = db.pool.begin().await.unwrap();
            sqlx::query("UPDATE orders SET amount = amount + 100 WHERE tenant_id = 1")
                .execute(&mut *tx)
                .await
                .unwrap();
            open = Some(tx);
        }
        pass(&db, &rt).await;
        if let Some(tx) = open.take() {
            tx.commit().await.unwrap();
            pass(&db, &rt).await;
        }
        assert_all_exact(&db, &format!("after round {round} ({batch})")).await;
    }
    rt.shutdown().await;
}

/// A change that no consumer's filter passes (an order of a tenant without stream
/// tables) is advanced past by every consumer and then trimmed, so the next pass
/// finds the source idle. Before, no refresh ran to trim it: the row stayed, the
/// source stayed busy, and every later pass advanced every consumer again (a write
/// per stream table per tick with nothing changing).
#[tokio::test]
async fn a_change_no_filter_passes_is_trimmed() {
    let (db, rt) = start().await;
    // Tenants 1 and 2's aggregates only: every consumer of `orders` has a filter.
    for n in 1..=2 {
        let (name, query, _) = &queries(n)[0];
        rt.create_stream_table(name, query, "1s", Mode::Differential)
            .await
            .unwrap();
    }
    pass(&db, &rt).await;
    let busy = "SELECT cardinality(pgstream._busy_sources())::int8";
    assert_eq!(scalar_i64(&db.pool, busy).await, 0);
    db.exec("UPDATE orders SET amount = amount + 1 WHERE tenant_id = 6")
        .await;
    assert_eq!(scalar_i64(&db.pool, busy).await, 1);
    let before = refresh_counts(&db).await;
    pass(&db, &rt).await;
    assert_eq!(refreshed_since(&db, &before).await, Vec::<String>::new());
    assert_eq!(
        scalar_i64(&db.pool, busy).await,
        0,
        "the change every consumer skipped is still buffered"
    );
    // A later change of tenant 1 is still seen.
    db.exec("UPDATE orders SET amount = amount + 1 WHERE id = 6")
        .await;
    pass(&db, &rt).await;
    let (name, query, cols) = &queries(1)[0];
    assert_eq!(difference(&db.pool, query, name, cols).await, 0);
    rt.shutdown().await;
}

/// `_advance_unaffected(after, batch)` takes the refresh locks of `batch` candidates
/// at most in one transaction (each holds a slot of the server's shared lock table
/// to the commit: thousands of tenants in one transaction ran out of it), returns
/// the last id it looked at, and the calls from there cover every candidate once.
#[tokio::test]
async fn advancing_takes_a_bounded_number_of_locks_per_transaction() {
    let (db, rt) = setup().await;
    pass(&db, &rt).await;
    // An order of tenant 2 (order 1): agg_2, join_2, pair_1 and pair_2 are affected.
    db.exec("UPDATE orders SET amount = amount + 1 WHERE id = 1")
        .await;
    let affected: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM pgstream.pgs_stream_tables
          WHERE table_name IN ('agg_2', 'join_2', 'pair_1', 'pair_2') ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(affected.len(), 4);
    // Candidates: the readers of `orders` (every stream table here has a filter).
    let candidates: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM pgstream.pgs_stream_tables ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let mut after = 0_i64;
    let mut seen: Vec<i64> = Vec::new();
    let mut advanced = Vec::new();
    loop {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await
            .unwrap();
        let (ids, last): (Vec<i64>, Option<i64>) =
            sqlx::query_as("SELECT advanced, last_id FROM pgstream._advance_unaffected($1, 3)")
                .bind(after)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        let locks: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_catalog.pg_locks
              WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert!(locks <= 3, "{locks} advisory locks held in one batch of 3");
        tx.commit().await.unwrap();
        let Some(last) = last else { break };
        assert!(last > after, "no progress after {after}");
        seen.extend(candidates.iter().filter(|&&c| c > after && c <= last));
        advanced.extend(ids);
        after = last;
    }
    assert_eq!(seen, candidates, "every candidate looked at once");
    advanced.sort();
    let expected: Vec<i64> = candidates
        .iter()
        .copied()
        .filter(|c| !affected.contains(c))
        .collect();
    assert_eq!(advanced, expected, "the unaffected ones, and only they");
    // The affected ones still have the change pending; a pass refreshes exactly them.
    let before = refresh_counts(&db).await;
    pass(&db, &rt).await;
    let mut got = refreshed_since(&db, &before).await;
    got.sort();
    assert_eq!(got, ["agg_2", "join_2", "pair_1", "pair_2"]);
    assert_all_exact(&db, "after advancing in batches").await;
    // A batch size below one is an error, not a loop that never ends.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = sqlx::query("SELECT * FROM pgstream._advance_unaffected(0, 0)")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("batch must be at least 1"),
        "{err}"
    );
    rt.shutdown().await;
}
