//! Privileges: an application role that only has rights on its base tables writes
//! them (INSERT, UPDATE, DELETE, TRUNCATE) with capture running (SECURITY DEFINER
//! trigger functions with a pinned search_path); it has no rights on
//! `pgstream_changes` and cannot use pgstream's functions without being granted them.

use pgstream_runtime::{Mode, RuntimeHandle};
use pgstream_tests::compare::scalar_i64;
use pgstream_tests::test_db;
use sqlx::Connection;

#[tokio::test]
async fn writer_role_needs_no_rights_on_change_buffers() {
    let db = test_db().await;
    let role = format!("app_{}", db.name);
    db.exec(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL);
         INSERT INTO t SELECT i, i FROM generate_series(1, 10) i;
         CREATE ROLE {role} LOGIN;
         GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON t TO {role};"
    ))
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    let q = "SELECT id, x FROM t WHERE x % 2 = 0";
    h.create_stream_table("st", q, "1h", Mode::Differential)
        .await
        .unwrap();
    let total = "SELECT count(*) AS n, sum(x) AS s FROM t";
    h.create_stream_table("total", total, "1h", Mode::Differential)
        .await
        .unwrap();

    {
        let mut app = sqlx::PgConnection::connect_with(&db.connect_options().username(&role))
            .await
            .unwrap();
        let who: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&mut app)
            .await
            .unwrap();
        assert_eq!(who, role);
        let no_rights: bool = sqlx::query_scalar(
            "SELECT NOT has_schema_privilege(current_user, 'pgstream_changes', 'USAGE')
                AND NOT has_schema_privilege(current_user, 'pgstream', 'USAGE')",
        )
        .fetch_one(&mut app)
        .await
        .unwrap();
        assert!(no_rights);
        sqlx::raw_sql(
            "INSERT INTO t VALUES (11, 11), (12, 12);
             UPDATE t SET x = x + 1 WHERE id <= 4;
             DELETE FROM t WHERE id = 5;",
        )
        .execute(&mut app)
        .await
        .expect("the application role writes its tables with capture installed");
        // The role cannot read the buffers nor refresh through pgstream's functions.
        let buffer: String =
            sqlx::query_scalar("SELECT 'pgstream_changes.changes_' || 't'::regclass::oid::text")
                .fetch_one(&mut app)
                .await
                .unwrap();
        let err = sqlx::query(&format!("SELECT * FROM {buffer}"))
            .execute(&mut app)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
        let err = sqlx::query("SELECT pgstream.refresh_stream_table('st')")
            .execute(&mut app)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
        let err = sqlx::query("SELECT * FROM st")
            .execute(&mut app)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
        app.close().await.unwrap();
    }
    // Even with USAGE on the schema pgstream, the functions run with the caller's
    // rights: no refresh of, nor reading through, a stream table it has no rights on.
    db.exec(&format!("GRANT USAGE ON SCHEMA pgstream TO {role}"))
        .await;
    {
        let mut app = sqlx::PgConnection::connect_with(&db.connect_options().username(&role))
            .await
            .unwrap();
        for sql in [
            "SELECT pgstream.refresh_stream_table('st')",
            "SELECT * FROM pgstream.pgs_status()",
        ] {
            let err = sqlx::query(sql).execute(&mut app).await.unwrap_err();
            assert!(
                err.to_string().contains("permission denied"),
                "{sql}: {err}"
            );
        }
        app.close().await.unwrap();
    }

    h.refresh("st").await.unwrap();
    h.refresh("total").await.unwrap();
    let diff = scalar_i64(
        &db.pool,
        &format!(
            "SELECT (SELECT count(*) FROM (({q}) EXCEPT ALL (SELECT id, x FROM st)) a)
                  + (SELECT count(*) FROM ((SELECT id, x FROM st) EXCEPT ALL ({q})) b)"
        ),
    )
    .await;
    assert_eq!(diff, 0);
    assert!(sqlx::query_scalar::<_, bool>(&format!(
        "SELECT (SELECT ROW(n, s) FROM total) = (SELECT ROW(n, s) FROM ({total}) q)"
    ))
    .fetch_one(&db.pool)
    .await
    .unwrap());

    // TRUNCATE by the role marks the readers for a full refresh.
    let mut app = sqlx::PgConnection::connect_with(&db.connect_options().username(&role))
        .await
        .unwrap();
    sqlx::query("TRUNCATE t").execute(&mut app).await.unwrap();
    app.close().await.unwrap();
    h.refresh("st").await.unwrap();
    h.refresh("total").await.unwrap();
    assert_eq!(scalar_i64(&db.pool, "SELECT count(*) FROM st").await, 0);
    assert_eq!(scalar_i64(&db.pool, "SELECT n FROM total").await, 0);

    db.exec(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
        .await;
}

/// The owner of a source (not a superuser) alters it: the DDL event trigger rebuilds
/// the capture function (it is SECURITY DEFINER, the capture belongs to pgstream's
/// owner), so the ALTER works and the owner's writes keep being captured.
#[tokio::test]
async fn table_owner_alters_a_captured_source() {
    let db = test_db().await;
    let role = format!("own_{}", db.name);
    db.exec(&format!(
        "CREATE ROLE {role} LOGIN;
         GRANT CREATE, USAGE ON SCHEMA public TO {role};"
    ))
    .await;
    let mut owner = sqlx::PgConnection::connect_with(&db.connect_options().username(&role))
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE o (id int PRIMARY KEY, x int NOT NULL, extra text);
         INSERT INTO o SELECT i, i, 'e' FROM generate_series(1, 10) i;",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    let h = RuntimeHandle::new(db.pool.clone());
    let q = "SELECT id, x FROM o";
    h.create_stream_table("so", q, "1h", Mode::Differential)
        .await
        .unwrap();
    sqlx::raw_sql(
        "ALTER TABLE o DROP COLUMN extra;
         INSERT INTO o VALUES (11, 11);
         UPDATE o SET x = x * 2 WHERE id <= 3;",
    )
    .execute(&mut owner)
    .await
    .expect("the owner alters and writes its table");
    owner.close().await.unwrap();
    h.refresh("so").await.unwrap();
    let diff = scalar_i64(
        &db.pool,
        &format!(
            "SELECT (SELECT count(*) FROM (({q}) EXCEPT ALL (SELECT id, x FROM so)) a)
                  + (SELECT count(*) FROM ((SELECT id, x FROM so) EXCEPT ALL ({q})) b)"
        ),
    )
    .await;
    assert_eq!(diff, 0);
    h.drop_stream_table("so").await.unwrap();
    db.exec(&format!(
        "DROP TABLE o; DROP OWNED BY {role}; DROP ROLE {role};"
    ))
    .await;
}
