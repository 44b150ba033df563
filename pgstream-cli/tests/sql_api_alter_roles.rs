//! The SQL API (issue 17), continued: `pgstream.alter_stream_table`, and which roles
//! may request what. Every SQL statement below is a psql-style autocommit statement.

mod sql_api_common;

use sql_api_common::*;

#[tokio::test]
async fn alter_changes_schedule_and_mode_and_keeps_the_table_right() {
    let db = tutorial_db().await;
    let p = &db.pool;
    let runtime = start(p, Duration::from_secs(3600)).await;
    sql(p, &step3()).await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.alter_stream_table('department_stats', schedule => '*/5 * * * *')",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    assert_eq!(
        rows(
            p,
            "SELECT schedule, refresh_mode FROM pgstream.pgs_status()"
        )
        .await,
        ["*/5 * * * *|DIFFERENTIAL"]
    );
    // Changes made before the mode change are not lost by it.
    sql(
        p,
        "INSERT INTO employees (name, department_id, salary) VALUES ('Judy', 2, 99000)",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.alter_stream_table('department_stats', refresh_mode => 'full')",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    assert_eq!(
        rows(
            p,
            "SELECT schedule, refresh_mode FROM pgstream.pgs_status()"
        )
        .await,
        ["*/5 * * * *|FULL"]
    );
    assert_matches_query(p, "department_stats", STATS_QUERY).await;
    sql(
        p,
        "UPDATE employees SET salary = salary * 2 WHERE department_id = 5",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.refresh_stream_table('department_stats')",
    )
    .await;
    assert_matches_query(p, "department_stats", STATS_QUERY).await;
    sql(
        p,
        "SELECT pgstream.alter_stream_table('department_stats', refresh_mode => 'DIFFERENTIAL')",
    )
    .await;
    sql(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    sql(p, "DELETE FROM employees WHERE department_id = 3").await;
    sql(
        p,
        "SELECT pgstream.refresh_stream_table('department_stats')",
    )
    .await;
    assert_matches_query(p, "department_stats", STATS_QUERY).await;
    // A bad schedule fails the request and changes nothing.
    sql(
        p,
        "SELECT pgstream.alter_stream_table('department_stats', schedule => '61 * * * *')",
    )
    .await;
    let e = sql_err(
        p,
        "SELECT pgstream.wait_for_stream_table('department_stats')",
    )
    .await;
    assert_eq!(code_of(&e), "PGS02");
    assert_eq!(
        rows(
            p,
            "SELECT schedule, refresh_mode FROM pgstream.pgs_status()"
        )
        .await,
        ["*/5 * * * *|DIFFERENTIAL"]
    );
    // Altering what does not exist.
    sql(
        p,
        "SELECT pgstream.alter_stream_table('nope', schedule => '1m')",
    )
    .await;
    let e = sql_err(p, "SELECT pgstream.wait_for_stream_table('nope')").await;
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = sql_err(p, "SELECT pgstream.alter_stream_table('department_stats')").await;
    assert!(e.to_string().contains("changes nothing"), "{e}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_role_may_request_only_over_what_it_may_read() {
    let db = tutorial_db().await;
    let p = &db.pool;
    pgstream::install(p).await.unwrap();
    let alice = format!("alice_{}", db.name);
    let bob = format!("bob_{}", db.name);
    sql(
        p,
        &format!(
            "CREATE ROLE {alice} LOGIN; CREATE ROLE {bob} LOGIN;
             GRANT USAGE ON SCHEMA pgstream TO {alice}, {bob};
             GRANT SELECT ON departments TO {alice}, {bob};
             GRANT CREATE ON SCHEMA public TO {alice};"
        ),
    )
    .await;
    let runtime = start(p, Duration::from_secs(3600)).await;
    let as_role = |role: &str| db.connect_options().username(role);
    let mut a = sqlx::PgConnection::connect_with(&as_role(&alice))
        .await
        .unwrap();

    // No SELECT on employees: refused, nothing created.
    let e = request_and_wait(&mut a, &step3(), "department_stats")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("may not read") && e.to_string().contains("employees"),
        "{e}"
    );
    assert_eq!(
        scalar_text(p, "SELECT to_regclass('department_stats')::text").await,
        None
    );
    // A request in another role's name is recorded in the inserting role's.
    let e = request_and_wait(&mut a, "INSERT INTO pgstream.pgs_requests (kind, name, query, schedule, refresh_mode, requested_by, state)
         VALUES ('create', 'spoof', 'SELECT id FROM employees', '1m', 'FULL', 'postgres', 'created')", "spoof").await.unwrap_err();
    assert!(e.to_string().contains("may not read"), "{e}");
    assert_eq!(
        scalar_text(
            p,
            "SELECT requested_by::text FROM pgstream.pgs_requests WHERE name = 'spoof'"
        )
        .await,
        Some(alice.clone())
    );

    // A function of its own would run as the runtime's role at every refresh.
    sql(
        p,
        &format!(
        "CREATE FUNCTION public.bump(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x + 1';
         ALTER FUNCTION public.bump(int) OWNER TO {alice};"
    ),
    )
    .await;
    let e = request_and_wait(&mut a, "SELECT pgstream.create_stream_table('bumped', 'SELECT public.bump(id) AS b FROM departments', '1m', 'FULL')", "bumped").await.unwrap_err();
    assert!(
        e.to_string().contains("public.bump, outside pg_catalog"),
        "{e}"
    );

    // With SELECT on every source: created, readable by alice, owned by the runtime's role.
    sql(p, &format!("GRANT SELECT ON employees TO {alice}")).await;
    request_and_wait(&mut a, &step3(), "department_stats")
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM department_stats")
        .fetch_one(&mut a)
        .await
        .unwrap();
    assert_eq!(n, 7);
    assert_eq!(
        scalar_text(
            p,
            "SELECT requested_by::text FROM pgstream.pgs_stream_tables"
        )
        .await,
        Some(alice.clone())
    );
    let owner_is_requester: bool = sqlx::query_scalar(&format!(
        "SELECT pg_get_userbyid(relowner) = '{alice}' FROM pg_class WHERE oid = 'department_stats'::regclass"
    ))
    .fetch_one(p)
    .await
    .unwrap();
    assert!(!owner_is_requester);
    // alice may alter it; bob may not.
    request_and_wait(
        &mut a,
        "SELECT pgstream.alter_stream_table('department_stats', schedule => '5m')",
        "department_stats",
    )
    .await
    .unwrap();
    let mut b = sqlx::PgConnection::connect_with(&as_role(&bob))
        .await
        .unwrap();
    let e = request_and_wait(
        &mut b,
        "SELECT pgstream.alter_stream_table('department_stats', schedule => '1s')",
        "department_stats",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("may not alter"), "{e}");
    // Replacing the query (issue 16): bob may not; alice may, over what she may read
    // only; the replaced stream table stays hers, and her SELECT on it is kept.
    let e = request_and_wait(
        &mut b,
        "SELECT pgstream.replace_stream_table('department_stats', 'SELECT id FROM departments')",
        "department_stats",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("may not replace"), "{e}");
    sql(p, "CREATE TABLE secret (id int PRIMARY KEY)").await;
    let e = request_and_wait(
        &mut a,
        "SELECT pgstream.replace_stream_table('department_stats', 'SELECT id FROM secret')",
        "department_stats",
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("may not read") && e.to_string().contains("secret"),
        "{e}"
    );
    let replaced = "SELECT d.id AS department_id, d.name AS department_name FROM departments d";
    request_and_wait(
        &mut a,
        &format!("SELECT pgstream.replace_stream_table('department_stats', '{replaced}')"),
        "department_stats",
    )
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM department_stats")
        .fetch_one(&mut a)
        .await
        .unwrap();
    let departments: i64 = sqlx::query_scalar("SELECT count(*) FROM departments")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(n, departments);
    assert_eq!(
        scalar_text(
            p,
            "SELECT requested_by::text FROM pgstream.pgs_stream_tables WHERE table_name = 'department_stats'"
        )
        .await,
        Some(alice.clone())
    );
    assert_eq!(
        scalar_text(
            p,
            "SELECT query FROM pgstream.pgs_stream_tables WHERE table_name = 'department_stats'"
        )
        .await
        .as_deref(),
        Some(replaced)
    );
    // bob may read the sources but not create in public.
    let e = request_and_wait(
        &mut b,
        "SELECT pgstream.create_stream_table('bobs', 'SELECT id FROM departments', '1m', 'FULL')",
        "bobs",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("may not create tables"), "{e}");
    assert_eq!(
        rows(p, "SELECT schedule FROM pgstream.pgs_status()").await,
        ["5m"]
    );
    drop(a);
    drop(b);
    runtime.shutdown().await;
}
