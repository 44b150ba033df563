//! Change subscriptions (issue 14, item 4): a typed stream of each refresh's inserted,
//! deleted and updated rows, in commit order, exactly once across a restart of the
//! subscriber's runtime, whichever runtime refreshed; a subscriber that fell behind
//! the retention is told so; the SQL channel hears each refresh that changed rows.

use std::time::Duration;

use futures_util::StreamExt;
use pgstream::{Change, ChangeBatch, Runtime, SubscribeOptions, Subscription, SubscriptionEvent};
use pgstream_tests::compare::scalar_i64;
use pgstream_tests::{test_db, TestDb};
use rust_decimal::Decimal;
use sqlx::postgres::PgListener;

/// Headcount and payroll per department.
#[pgstream::stream_table(
    query = "SELECT d.id, d.name, count(e.id) AS headcount, coalesce(sum(e.salary), 0) AS payroll
               FROM departments d LEFT JOIN employees e ON e.department_id = d.id
              GROUP BY d.id, d.name",
    schedule = "1h"
)]
#[derive(Debug, Clone, PartialEq)]
pub struct DeptPay {
    pub id: i32,
    pub name: String,
    pub headcount: i64,
    pub payroll: Decimal,
}

fn row(id: i32, name: &str, headcount: i64, payroll: i64) -> DeptPay {
    DeptPay {
        id,
        name: name.into(),
        headcount,
        payroll: Decimal::from(payroll),
    }
}

const SCHEMA: &str = "
    CREATE TABLE departments (id SERIAL PRIMARY KEY, name TEXT NOT NULL, parent_id INT REFERENCES departments(id));
    CREATE TABLE employees (id SERIAL PRIMARY KEY, name TEXT NOT NULL,
                            department_id INT NOT NULL REFERENCES departments(id), salary NUMERIC(10,2) NOT NULL);
    INSERT INTO departments (id, name) VALUES (1, 'eng'), (2, 'ops');
    INSERT INTO employees (name, department_id, salary) VALUES ('a', 1, 100), ('b', 1, 200), ('c', 2, 50);";

async fn runtime(db: &TestDb) -> Runtime {
    Runtime::builder(db.pool.clone())
        .register::<DeptPay>()
        .scheduler(false)
        .start()
        .await
        .unwrap()
}

/// The next event, within 20 s.
async fn next(sub: &mut Subscription<DeptPay>) -> SubscriptionEvent<DeptPay> {
    tokio::time::timeout(Duration::from_secs(20), sub.recv())
        .await
        .expect("no event within 20 s")
        .expect("the subscription ended")
        .unwrap()
}

async fn batch(sub: &mut Subscription<DeptPay>) -> ChangeBatch<DeptPay> {
    match next(sub).await {
        SubscriptionEvent::Changes(b) => b,
        other => panic!("expected changes, got {other:?}"),
    }
}

/// Nothing arrives within `ms`.
async fn quiet(sub: &mut Subscription<DeptPay>, ms: u64) {
    if let Ok(e) = tokio::time::timeout(Duration::from_millis(ms), sub.recv()).await {
        panic!("unexpected event: {e:?}");
    }
}

fn sorted(mut changes: Vec<Change<DeptPay>>) -> Vec<Change<DeptPay>> {
    let key = |c: &Change<DeptPay>| match c {
        Change::Insert(r) | Change::Delete(r) | Change::Update { new: r, .. } => r.id,
    };
    changes.sort_by_key(key);
    changes
}

#[tokio::test]
async fn inserts_updates_and_deletes_arrive_typed_once_each_and_the_channel_hears_them() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    let rt = runtime(&db).await;
    let mut sub = rt.subscribe::<DeptPay>("dashboard").await.unwrap();
    assert_eq!(sub.position(), 0);
    assert_eq!(sub.stream_table(), "dept_pay");
    let mut channel = PgListener::connect_with(&db.pool).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT pgstream.refreshed_channel('dept_pay')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    channel.listen(&name).await.unwrap();

    // Insert: a new department with one employee.
    db.exec(
        "INSERT INTO departments (id, name) VALUES (3, 'sales');
             INSERT INTO employees (name, department_id, salary) VALUES ('d', 3, 70);",
    )
    .await;
    assert_eq!(rt.refresh("dept_pay").await.unwrap().rows_changed, 1);
    let b = batch(&mut sub).await;
    assert_eq!(b.version, 1);
    assert_eq!(b.changes, vec![Change::Insert(row(3, "sales", 1, 70))]);
    assert_eq!(b.frontier.len(), 2, "{:?}", b.frontier);
    assert!(b
        .frontier
        .iter()
        .any(|f| f.source == "employees" && !f.snapshot.is_empty()));

    // Update (two groups change) and, in another refresh, a delete.
    db.exec("UPDATE employees SET salary = salary + 1 WHERE department_id IN (1, 2)")
        .await;
    assert_eq!(rt.refresh("dept_pay").await.unwrap().rows_changed, 2);
    // A refresh without changes: no version.
    assert_eq!(rt.refresh("dept_pay").await.unwrap().rows_changed, 0);
    db.exec("DELETE FROM employees WHERE department_id = 3; DELETE FROM departments WHERE id = 3;")
        .await;
    assert_eq!(rt.refresh("dept_pay").await.unwrap().rows_changed, 1);

    let b = batch(&mut sub).await;
    assert_eq!(b.version, 2);
    assert_eq!(
        sorted(b.changes),
        vec![
            Change::Update {
                old: row(1, "eng", 2, 300),
                new: row(1, "eng", 2, 302)
            },
            Change::Update {
                old: row(2, "ops", 1, 50),
                new: row(2, "ops", 1, 51)
            },
        ]
    );
    let b = batch(&mut sub).await;
    assert_eq!(b.version, 3);
    assert_eq!(b.changes, vec![Change::Delete(row(3, "sales", 1, 70))]);
    quiet(&mut sub, 500).await;
    assert_eq!(sub.position(), 3);

    // The SQL channel: one notification per refresh that changed rows (3), none for
    // the one that changed nothing.
    for rows in [1, 2, 1] {
        let n = tokio::time::timeout(Duration::from_secs(10), channel.recv())
            .await
            .expect("no notification")
            .unwrap();
        let got: i64 = sqlx::query_scalar("SELECT ($1::jsonb ->> 'rows')::int8")
            .bind(n.payload())
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(got, rows, "{}", n.payload());
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), channel.recv())
            .await
            .is_err()
    );

    // The Stream trait, as applications use it, and the monitoring view.
    db.exec("UPDATE departments SET name = 'engineering' WHERE id = 1")
        .await;
    rt.refresh("dept_pay").await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let SubscriptionEvent::Changes(b) = e else {
        panic!("{e:?}")
    };
    // The group key changed: the row's identity is another one (a delete and an
    // insert, in the order the refresh made them).
    assert_eq!(b.changes.len(), 2, "{:?}", b.changes);
    assert!(b.changes.contains(&Change::Delete(row(1, "eng", 2, 302))));
    assert!(b
        .changes
        .contains(&Change::Insert(row(1, "engineering", 2, 302))));
    sub.ack().await.unwrap();
    let (position, behind): (i64, i64) = sqlx::query_as(
        "SELECT position, behind FROM pgstream.pgs_subscriptions WHERE name = 'dept_pay' AND subscriber = 'dashboard'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((position, behind), (4, 0));

    // Unsubscribed: the stream ends, and nothing is logged any more.
    assert!(rt.unsubscribe("dept_pay", "dashboard").await.unwrap());
    assert!(!rt.unsubscribe("dept_pay", "dashboard").await.unwrap());
    db.exec("UPDATE employees SET salary = salary + 1").await;
    rt.refresh("dept_pay").await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(20), sub.recv())
        .await
        .unwrap();
    let err = end.expect("an error first").unwrap_err().to_string();
    assert!(
        err.contains("dept_pay") && err.contains("no longer exists"),
        "{err}"
    );
    assert!(sub.recv().await.is_none());
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_feed_log").await,
        0
    );
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'dept_pay'::regclass AND tgname LIKE '\\_\\_pgs\\_feed%'"
        )
        .await,
        0
    );
    rt.shutdown().await;
}

/// Exactly once across a restart: the subscriber's runtime stops after acknowledging
/// two versions; another runtime (its scheduler) refreshes meanwhile; the restarted
/// subscriber gets exactly the versions it had not acknowledged, in order.
#[tokio::test]
async fn a_restarted_subscriber_resumes_where_it_stopped() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    let rt = runtime(&db).await;
    let mut sub = rt.subscribe::<DeptPay>("mailer").await.unwrap();
    for salary in [1, 2] {
        db.exec(&format!(
            "INSERT INTO employees (name, department_id, salary) VALUES ('x{salary}', 2, {salary})"
        ))
        .await;
        rt.refresh("dept_pay").await.unwrap();
    }
    assert_eq!(batch(&mut sub).await.version, 1);
    let b = batch(&mut sub).await;
    assert_eq!(b.version, 2);
    sub.ack().await.unwrap();
    // Version 3 is delivered but not acknowledged when the process stops.
    db.exec("UPDATE employees SET salary = 999 WHERE name = 'a'")
        .await;
    rt.refresh("dept_pay").await.unwrap();
    let b = batch(&mut sub).await;
    assert_eq!(b.version, 3);
    drop(sub);
    rt.shutdown().await;

    // Another process refreshes, on its schedule, while the subscriber is down.
    let other_pool = db.new_pool(4).await;
    let other = Runtime::builder(other_pool)
        .tick(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut expected_payroll = scalar_i64(
        &db.pool,
        "SELECT sum(salary)::int8 FROM employees WHERE department_id = 2",
    )
    .await;
    for k in 0..3 {
        db.exec(&format!(
            "INSERT INTO employees (name, department_id, salary) VALUES ('y{k}', 2, 10)"
        ))
        .await;
        expected_payroll += 10;
        other.refresh("dept_pay").await.unwrap();
    }
    other.shutdown().await;

    // Restarted: version 3 again (it was not acknowledged), then 4, 5, 6, once each.
    let rt = runtime(&db).await;
    let mut sub = rt.subscribe::<DeptPay>("mailer").await.unwrap();
    assert_eq!(sub.position(), 2);
    let mut versions = Vec::new();
    let mut last = None;
    while versions.len() < 4 {
        let b = batch(&mut sub).await;
        versions.push(b.version);
        for c in b.changes {
            if let Change::Update { new, .. } = c {
                if new.id == 2 {
                    last = Some(new.payroll);
                }
            }
        }
    }
    assert_eq!(versions, vec![3, 4, 5, 6]);
    assert_eq!(last, Some(Decimal::from(expected_payroll)));
    quiet(&mut sub, 500).await;
    sub.ack().await.unwrap();
    drop(sub);

    // An application that stores positions itself resumes after a given one.
    let mut again = rt
        .subscribe_with::<DeptPay>("mailer", SubscribeOptions::default().after(5))
        .await
        .unwrap();
    assert_eq!(batch(&mut again).await.version, 6);
    quiet(&mut again, 300).await;
    // A position ahead of the feed is refused, naming the stream table.
    let err = rt
        .subscribe_with::<DeptPay>("mailer", SubscribeOptions::default().after(60))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("dept_pay"), "{err}");
    rt.shutdown().await;
}

/// A subscriber that does not keep up with the retention is told which versions it
/// missed, then gets what is left; the versions every subscriber consumed are trimmed.
#[tokio::test]
async fn falling_behind_the_retention_is_reported() {
    let db = test_db().await;
    db.exec(SCHEMA).await;
    let rt = runtime(&db).await;
    let mut fast = rt.subscribe::<DeptPay>("fast").await.unwrap();
    let mut slow = rt
        .subscribe_with::<DeptPay>(
            "slow",
            SubscribeOptions::default().retention(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    db.exec("INSERT INTO employees (name, department_id, salary) VALUES ('e', 1, 1)")
        .await;
    rt.refresh("dept_pay").await.unwrap();
    assert_eq!(batch(&mut fast).await.version, 1);
    fast.ack().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    db.exec("INSERT INTO employees (name, department_id, salary) VALUES ('f', 2, 1)")
        .await;
    rt.refresh("dept_pay").await.unwrap();
    // Version 1 is older than the retention: gone, though `slow` never read it.
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT count(*) FROM pgstream.pgs_feed_log WHERE version = 1"
        )
        .await,
        0
    );
    let lagged: bool = sqlx::query_scalar(
        "SELECT lagged FROM pgstream.pgs_subscriptions WHERE subscriber = 'slow'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(lagged);
    assert_eq!(
        next(&mut slow).await,
        SubscriptionEvent::Lagged {
            missed_from: 1,
            missed_to: 1
        }
    );
    let b = batch(&mut slow).await;
    assert_eq!(b.version, 2);
    assert_eq!(
        b.changes,
        vec![Change::Update {
            old: row(2, "ops", 1, 50),
            new: row(2, "ops", 2, 51)
        }]
    );
    assert_eq!(batch(&mut fast).await.version, 2);
    // Both consumed version 2: the next refresh trims it.
    slow.ack().await.unwrap();
    fast.ack().await.unwrap();
    db.exec("INSERT INTO employees (name, department_id, salary) VALUES ('g', 2, 1)")
        .await;
    rt.refresh("dept_pay").await.unwrap();
    assert_eq!(
        scalar_i64(
            &db.pool,
            "SELECT coalesce(min(version), 0)::int8 FROM pgstream.pgs_feed_log"
        )
        .await,
        3
    );
    assert_eq!(batch(&mut slow).await.version, 3);
    assert_eq!(batch(&mut fast).await.version, 3);
    // Dropping the stream table ends the subscriptions (and removes the feed).
    rt.drop_stream_table("dept_pay").await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), fast.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(err.contains("no longer exists"), "{err}");
    assert_eq!(
        scalar_i64(&db.pool, "SELECT count(*) FROM pgstream.pgs_feed_log").await,
        0
    );
    rt.shutdown().await;
}
