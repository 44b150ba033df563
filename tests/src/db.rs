//! Fresh databases for tests.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::cluster::shared_cluster;
use crate::Error;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty database, private to one test.
///
/// Created by [`test_db`]. When the database lives in a server given by `DATABASE_URL`,
/// dropping the `TestDb` drops the database (best effort, `WITH (FORCE)`), unless
/// `PGS_KEEP_DB` is set. In the throwaway cluster nothing is dropped: the whole cluster
/// is deleted at process exit.
#[derive(Debug)]
pub struct TestDb {
    /// A pool on the database (at most 10 connections).
    pub pool: PgPool,
    /// URL of the database.
    pub url: String,
    /// Name of the database (`pgs_test_<pid>_<counter>_<random>`).
    pub name: String,
    /// URL of the maintenance database (`postgres`) of the same server, as admin.
    pub admin_url: String,
    drop_on_drop: bool,
}

/// Creates a fresh database; panics with the reason if it cannot.
///
/// With `DATABASE_URL` set, the database is created in that server (the URL's user
/// must be allowed to `CREATE DATABASE`); otherwise in the throwaway cluster shared by
/// the tests of this process (started on first use).
pub async fn test_db() -> TestDb {
    match try_test_db().await {
        Ok(db) => db,
        Err(e) => panic!("test_db(): {e}"),
    }
}

/// Like [`test_db`], returning the error instead of panicking.
pub async fn try_test_db() -> Result<TestDb, Error> {
    let (admin_url, drop_on_drop) = match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => (u, std::env::var_os("PGS_KEEP_DB").is_none()),
        _ => {
            // Starting a cluster blocks for about a second; do it off the runtime.
            let cluster = tokio::task::spawn_blocking(shared_cluster)
                .await
                .map_err(|e| Error::new(format!("cluster start task failed: {e}")))??;
            (cluster.url("postgres"), false)
        }
    };
    let name = format!(
        "pgs_test_{}_{}_{:06x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>() & 0xff_ffff
    );
    let admin_opts = admin_options(&admin_url)?;
    let mut admin = connect_retry(&admin_opts).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .map_err(|e| Error::new(format!("CREATE DATABASE {name} failed: {e}")))?;
    let _ = admin.close().await;
    let url = replace_database(&admin_url, &name);
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(admin_opts.clone().database(&name))
        .await?;
    Ok(TestDb {
        pool,
        url,
        name,
        admin_url,
        drop_on_drop,
    })
}

fn admin_options(url: &str) -> Result<PgConnectOptions, Error> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| Error::new(format!("bad database URL: {e}")))?
        .disable_statement_logging())
}

async fn connect_retry(opts: &PgConnectOptions) -> Result<PgConnection, Error> {
    let mut tries = 0;
    loop {
        match PgConnection::connect_with(opts).await {
            Ok(c) => return Ok(c),
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `url` with its database (path) replaced by `db`; the query string is kept.
pub fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[after_scheme..]
        .find('/')
        .map(|i| after_scheme + i)
        .unwrap_or(base.len());
    format!("{}/{}{}", &base[..host_end], db, query)
}

impl TestDb {
    /// Connection options of this database (user, host, port, database name set).
    pub fn connect_options(&self) -> PgConnectOptions {
        admin_options(&self.url)
            .expect("TestDb url parses")
            .database(&self.name)
    }

    /// Opens one more pool on this database with at most `max_connections`.
    pub async fn new_pool(&self, max_connections: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(self.connect_options())
            .await
            .unwrap_or_else(|e| panic!("new_pool on {}: {e}", self.name))
    }

    /// Opens a single connection on this database (not from a pool).
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect_with(&self.connect_options())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.name))
    }

    /// The rows that differ between `query` and `SELECT cols FROM table`, as multisets
    /// (`EXCEPT ALL` both ways): 0 when a stream table equals its query. Panics on error.
    pub async fn difference(&self, query: &str, cols: &str, table: &str) -> i64 {
        let sql = format!(
            "SELECT (SELECT count(*) FROM (({query}) EXCEPT ALL (SELECT {cols} FROM {table})) a)
                  + (SELECT count(*) FROM ((SELECT {cols} FROM {table}) EXCEPT ALL ({query})) b)"
        );
        sqlx::query_scalar(&sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The status and status reason of the stream table whose storage table is named
    /// `table` (any schema). Panics on error.
    pub async fn status(&self, table: &str) -> (String, Option<String>) {
        sqlx::query_as(
            "SELECT status, status_reason FROM pgstream.pgs_stream_tables WHERE table_name = $1",
        )
        .bind(table)
        .fetch_one(&self.pool)
        .await
        .unwrap_or_else(|e| panic!("status of {table}: {e}"))
    }

    /// How many stream tables' last refresh was the adaptive switch to a full refresh.
    pub async fn adaptive_refreshes(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pgstream.pg_stat_stream_tables WHERE last_strategy = 'FULL (adaptive)'",
        )
        .fetch_one(&self.pool)
        .await
        .expect("pg_stat_stream_tables")
    }

    /// Runs a batch of SQL statements (simple protocol, so several `;`-separated
    /// statements are allowed); panics with the SQL on error.
    pub async fn exec(&self, sql: &str) {
        if let Err(e) = sqlx::raw_sql(sql).execute(&self.pool).await {
            panic!("SQL failed: {e}\n{sql}");
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.drop_on_drop {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime: do the async work on a thread of its own.
        let handle = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(_) => return,
            };
            rt.block_on(async move {
                let Ok(opts) = admin_options(&admin_url) else {
                    return;
                };
                if let Ok(mut c) = PgConnection::connect_with(&opts).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut c)
                        .await;
                    let _ = c.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn replaces_database() {
        assert_eq!(
            replace_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            replace_database("postgresql://h:1/", "x"),
            "postgresql://h:1/x"
        );
    }
}
