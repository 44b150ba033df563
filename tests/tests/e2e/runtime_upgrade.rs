//! Upgrading a catalog of schema version 1 (the first release) to the current one:
//! the migrations add the new columns (v2: failure and drift columns, v3: the
//! frontier's own-transaction columns), replace `drop_stream_table(text)` by
//! `drop_stream_table(text, boolean)`, extends the statistics view, installs the DDL
//! event trigger; status works before and after. A catalog of version 5 upgrades to
//! version 6: the views of existing stream tables are recorded at start-up and the
//! event trigger of version 5 (ALTER TABLE only) is replaced by one that follows
//! view DDL. A catalog of version 8 upgrades to version 9: the kind of each schedule
//! is stored.

use pgstream_runtime::{Mode, Runtime, RuntimeHandle, SCHEMA_VERSION};
use pgstream_tests::compare::{scalar_i64, wait_until};
use pgstream_tests::test_db;
use std::time::Duration;

/// The parts of version 1 that version 2 changes (the rest of its functions are
/// recreated by every upgrade anyway).
const V1_FUNCTIONS: &str = "
CREATE FUNCTION pgstream._display_name(schema_name text, table_name text)
RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT CASE WHEN schema_name = 'public' THEN table_name ELSE schema_name || '.' || table_name END $fn$;
CREATE FUNCTION pgstream.drop_stream_table(name text) RETURNS void LANGUAGE plpgsql
AS $fn$ BEGIN RAISE EXCEPTION 'version 1'; END $fn$;
CREATE FUNCTION pgstream.pgs_status()
RETURNS TABLE (name text, schedule text, refresh_mode text, status text, last_refresh_at timestamptz,
               stale boolean, pending_changes bigint, needs_full boolean, created_at timestamptz, id bigint)
LANGUAGE sql STABLE AS $fn$
    SELECT pgstream._display_name(s.schema_name, s.table_name), s.schedule, s.mode, s.status,
           s.last_refresh_at, false, 0::int8, s.needs_full, s.created_at, s.id
      FROM pgstream.pgs_stream_tables s $fn$;
CREATE VIEW pgstream.pg_stat_stream_tables AS
SELECT pgstream._display_name(s.schema_name, s.table_name) AS name,
       s.mode AS refresh_mode,
       s.status,
       coalesce(r.refresh_count, 0) AS refresh_count,
       CASE WHEN r.refresh_count > 0 THEN r.total_ms / r.refresh_count END AS avg_duration_ms,
       r.min_ms AS min_duration_ms,
       r.max_ms AS max_duration_ms,
       r.last_ms AS last_duration_ms,
       coalesce(r.rows_affected, 0) AS rows_affected,
       r.last_rows,
       coalesce(r.error_count, 0) AS error_count,
       r.last_error,
       r.last_error_at,
       s.last_refresh_at,
       s.id
  FROM pgstream.pgs_stream_tables s
  LEFT JOIN pgstream.pgs_refresh_stats r ON r.st_id = s.id;
";

#[tokio::test]
async fn version_1_catalog_upgrades() {
    let db = test_db().await;
    db.exec(
        "CREATE SCHEMA pgstream; CREATE SCHEMA pgstream_changes;
         CREATE TABLE pgstream.pgs_meta (schema_version integer NOT NULL);
         INSERT INTO pgstream.pgs_meta VALUES (1);",
    )
    .await;
    db.exec(include_str!(
        "../../../pgstream-runtime/src/sql/schema_v1.sql"
    ))
    .await;
    db.exec(V1_FUNCTIONS).await;
    // status does not install: it reads a version-1 catalog as it is.
    assert!(pgstream_runtime::status(&db.pool).await.unwrap().is_empty());

    pgstream_runtime::install(&db.pool).await.unwrap();
    let version: i32 = sqlx::query_scalar("SELECT max(schema_version) FROM pgstream.pgs_meta")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let drops: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_function_arguments(oid) FROM pg_proc WHERE proname = 'drop_stream_table'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(drops, ["name text, cascade boolean DEFAULT false"]);
    let event_trigger: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_event_trigger WHERE evtname = 'pgstream_ddl'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(event_trigger, 1);
    assert_eq!(event_trigger_tags(&db.pool).await, EVENT_TRIGGER_TAGS);

    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL);
         INSERT INTO t VALUES (1, 1), (2, 2);",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", "SELECT id, x FROM t", "1s", Mode::Differential)
        .await
        .unwrap();
    db.exec("INSERT INTO t VALUES (3, 3)").await;
    h.refresh("st").await.unwrap();
    let s = pgstream_runtime::status(&db.pool).await.unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].status, "ACTIVE");
    assert_eq!(s[0].consecutive_failures, 0);
    h.drop_stream_table("st").await.unwrap();
}

/// A release can change the SQL functions without a schema change: `install` puts
/// this release's functions in place (and rebuilds the capture functions) whenever
/// the installed ones differ, and leaves them alone otherwise.
#[tokio::test]
async fn functions_of_another_release_are_replaced_at_install() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL);
         INSERT INTO t VALUES (1, 1), (2, 2);",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", "SELECT id, x FROM t", "1h", Mode::Differential)
        .await
        .unwrap();
    let capture = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'pgstream_changes' AND p.proname LIKE 'capture\\_%'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let this_release = capture().await;
    // Another release: a different refresh function and capture function, and its hash.
    db.exec(
        "CREATE OR REPLACE FUNCTION pgstream.refresh_stream_table(name text, wait boolean DEFAULT true)
         RETURNS bigint LANGUAGE sql AS $$ SELECT -7::bigint $$;
         CREATE OR REPLACE FUNCTION pgstream._functions_hash() RETURNS text LANGUAGE sql
         AS $$ SELECT 'another release'::text $$;",
    )
    .await;
    let oid: i64 = sqlx::query_scalar("SELECT 't'::regclass::oid::int8")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    db.exec(&format!(
        "CREATE OR REPLACE FUNCTION pgstream_changes.capture_{oid}() RETURNS trigger LANGUAGE plpgsql
         AS $$ BEGIN RETURN NULL; END $$"
    ))
    .await;
    let refreshed: i64 = sqlx::query_scalar("SELECT pgstream.refresh_stream_table('st')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(refreshed, -7);

    pgstream_runtime::install(&db.pool).await.unwrap();
    assert_eq!(capture().await, this_release);
    db.exec("INSERT INTO t VALUES (3, 3)").await;
    let refreshed: i64 = sqlx::query_scalar("SELECT pgstream.refresh_stream_table('st')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(refreshed, 1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM st")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 3);

    // The same release again: nothing is reinstalled (a function changed by hand stays).
    db.exec(
        "CREATE OR REPLACE FUNCTION pgstream.refresh_stream_table(name text, wait boolean DEFAULT true)
         RETURNS bigint LANGUAGE sql AS $$ SELECT -7::bigint $$;",
    )
    .await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    let refreshed: i64 = sqlx::query_scalar("SELECT pgstream.refresh_stream_table('st')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(refreshed, -7);
}

const EVENT_TRIGGER_TAGS: &[&str] = &[
    "ALTER SCHEMA",
    "ALTER TABLE",
    "ALTER VIEW",
    "CREATE TABLE",
    "CREATE VIEW",
    "DROP OWNED",
    "DROP SCHEMA",
    "DROP TABLE",
    "DROP VIEW",
];

async fn event_trigger_tags(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT t FROM pg_event_trigger e, unnest(e.evttags) t
          WHERE e.evtname = 'pgstream_ddl' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn version_5_catalog_upgrades_and_records_views() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL);
         INSERT INTO t VALUES (1, 1), (2, 2);
         CREATE VIEW v AS SELECT id, x FROM t WHERE x > 1;",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    h.create_stream_table("st", "SELECT id, x FROM v", "1s", Mode::Differential)
        .await
        .unwrap();
    // Back to version 5: what version 6 added is gone, and the event trigger is the
    // one of version 5.
    db.exec(
        "DROP EVENT TRIGGER pgstream_ddl;
         DROP TABLE pgstream.pgs_views;
         ALTER TABLE pgstream.pgs_stream_tables DROP COLUMN views_recorded;
         CREATE EVENT TRIGGER pgstream_ddl ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
             EXECUTE FUNCTION pgstream._on_ddl();
         UPDATE pgstream.pgs_meta SET schema_version = 5;",
    )
    .await;

    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    rt.shutdown().await;
    let version: i32 = sqlx::query_scalar("SELECT max(schema_version) FROM pgstream.pgs_meta")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(event_trigger_tags(&db.pool).await, EVENT_TRIGGER_TAGS);
    let views: Vec<String> = sqlx::query_scalar(
        "SELECT v.schema_name || '.' || v.view_name FROM pgstream.pgs_views v
           JOIN pgstream.pgs_stream_tables s ON s.id = v.st_id AND s.views_recorded",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(views, ["public.v"]);

    db.exec("INSERT INTO t VALUES (3, 3)").await;
    h.refresh("st").await.unwrap();
    db.exec("CREATE OR REPLACE VIEW v AS SELECT id, x FROM t")
        .await;
    let s = pgstream_runtime::status(&db.pool).await.unwrap();
    assert_eq!(s[0].status, "ERROR");
    assert_eq!(
        s[0].status_reason.as_deref(),
        Some(
            "view public.v was redefined after stream table st was created, \
             which maintains the definition the view had then"
        )
    );
}

/// Version 9 stores the kind of each schedule (`schedule_kind`), which the scheduler
/// reads instead of guessing it from the text: the upgrade fills it for the stream
/// tables of an older catalog, and the cron one is refreshed at its fire times.
#[tokio::test]
async fn version_8_catalog_upgrades_and_stores_schedule_kinds() {
    let db = test_db().await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, x int NOT NULL);
         INSERT INTO t VALUES (1, 1), (2, 2);",
    )
    .await;
    let h = RuntimeHandle::new(db.pool.clone());
    for (name, schedule) in [
        ("every", "1h"),
        ("cron", "* * * * * *"),
        ("daily", "@daily"),
        ("commit", "on commit"),
        ("follow", "inherit"),
    ] {
        h.create_stream_table(name, "SELECT id, x FROM t", schedule, Mode::Differential)
            .await
            .unwrap();
    }
    let kinds = || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT table_name, schedule_kind FROM pgstream.pgs_stream_tables ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap()
    };
    let created = kinds().await;
    let expected: Vec<(String, String)> = [
        ("every", "duration"),
        ("cron", "cron"),
        ("daily", "cron"),
        ("commit", "on commit"),
        ("follow", "inherit"),
    ]
    .iter()
    .map(|(n, k)| (n.to_string(), k.to_string()))
    .collect();
    assert_eq!(created, expected);
    // Back to version 8: no schedule_kind.
    db.exec(
        "ALTER TABLE pgstream.pgs_stream_tables DROP COLUMN schedule_kind;
         UPDATE pgstream.pgs_meta SET schema_version = 8;",
    )
    .await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    assert_eq!(kinds().await, expected);
    // Installing again changes nothing (the migration is idempotent).
    db.exec("UPDATE pgstream.pgs_meta SET schema_version = 8")
        .await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    assert_eq!(kinds().await, expected);
    let refused = sqlx::query(
        "UPDATE pgstream.pgs_stream_tables SET schedule_kind = 'hourly' WHERE table_name = 'every'",
    )
    .execute(&db.pool)
    .await;
    assert!(refused.is_err(), "a kind outside the CHECK is refused");

    // The scheduler refreshes the cron stream table (every second) from its kind.
    db.exec("INSERT INTO t VALUES (3, 3)").await;
    let rt = Runtime::builder(db.pool.clone())
        .tick(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    wait_until(
        "the cron stream table's refresh",
        Duration::from_secs(20),
        || async { scalar_i64(&db.pool, "SELECT count(*) FROM cron").await == 3 },
    )
    .await;
    rt.shutdown().await;
}

/// How many copies of the storage guard function the session of `conn` has compiled
/// (PL/pgSQL compiles a trigger function once per table it fires on).
async fn guard_copies(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_catalog.pg_backend_memory_contexts
          WHERE name = 'PL/pgSQL function' AND ident = 'pgstream._guard_storage()'",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// Storage guards of releases before catalog version 10 have no condition, so every
/// refresh called the guard function, and a session that refreshed (or created)
/// 10,000 stream tables held 10,000 compiled copies whose plans every invalidation
/// walked. Start-up gives them the condition; a refresh then never calls the
/// function, and writes outside refreshes are still refused.
#[tokio::test]
async fn guards_of_earlier_releases_get_their_condition_and_refreshes_skip_them() {
    let db = test_db().await;
    db.exec("CREATE TABLE g (id int PRIMARY KEY, v int); INSERT INTO g VALUES (1, 1);")
        .await;
    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    rt.create_stream_table("g_st", "SELECT id, v FROM g", "1m", Mode::Differential)
        .await
        .unwrap();
    rt.shutdown().await;
    // The guard as earlier releases created it.
    db.exec(
        "DROP TRIGGER \"__pgs_guard\" ON g_st;
         CREATE TRIGGER \"__pgs_guard\" BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON g_st
             FOR EACH STATEMENT EXECUTE FUNCTION pgstream._guard_storage();",
    )
    .await;
    let has_condition = "SELECT (tgqual IS NOT NULL)::int::int8 FROM pg_catalog.pg_trigger
                          WHERE tgname = '__pgs_guard' AND tgrelid = 'g_st'::regclass";
    assert_eq!(scalar_i64(&db.pool, has_condition).await, 0);
    let refresh = |v: i64| {
        let pool = db.pool.clone();
        async move {
            // A new session: one of the pool's may have compiled the guard before
            // (under CI's load the pool handed one to this measure).
            let mut conn =
                <sqlx::PgConnection as sqlx::Connection>::connect_with(&pool.connect_options())
                    .await
                    .unwrap();
            sqlx::query("UPDATE g SET v = $1")
                .bind(v)
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("SELECT pgstream.refresh_stream_table('g_st')")
                .execute(&mut conn)
                .await
                .unwrap();
            guard_copies(&mut conn).await
        }
    };
    // The measure sees the old guard's copies (one or more contexts, depending on
    // what the refresh wrote).
    assert!(refresh(2).await > 0, "the measure sees no compiled guard");

    let rt = Runtime::builder(db.pool.clone())
        .scheduler(false)
        .start()
        .await
        .unwrap();
    assert_eq!(scalar_i64(&db.pool, has_condition).await, 1);
    assert_eq!(refresh(3).await, 0, "a refresh called the guard function");
    assert_eq!(
        scalar_i64(&db.pool, "SELECT v::int8 FROM g_st WHERE id = 1").await,
        3
    );
    for write in [
        "INSERT INTO g_st (id, v) VALUES (9, 9)",
        "UPDATE g_st SET v = 0",
        "DELETE FROM g_st",
        "TRUNCATE g_st",
    ] {
        let e = sqlx::query(write).execute(&db.pool).await.unwrap_err();
        assert!(
            e.to_string().contains("maintained by pgstream"),
            "{write}: {e}"
        );
    }
    rt.shutdown().await;
}

/// The catalog rows keep their SQL out of line (schema v10): a scan of the stream
/// tables' catalog reads 512 bytes or less of each row, not its 3 KB of SQL.
#[tokio::test]
async fn catalog_rows_keep_their_sql_out_of_line() {
    let db = test_db().await;
    pgstream_runtime::install(&db.pool).await.unwrap();
    let options: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(reloptions, '{}')::text[] FROM pg_catalog.pg_class
          WHERE oid = 'pgstream.pgs_stream_tables'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        options.contains(&"toast_tuple_target=512".to_string()),
        "{options:?}"
    );
}
