//! Every future of the public API is `Send`, so that applications can
//! `tokio::spawn` it or await it in an axum handler. Checked at compile time: the
//! futures are built (over a pool that never connects) and dropped unpolled. Before,
//! `Runtime::start`, `create_stream_table`, `replace_stream_table`,
//! `process_requests`, `install` and `Runtime::run_once` were not (`sqlx::raw_sql`
//! awaited inside them).

use pgstream_runtime::{Mode, Runtime, RuntimeHandle};

fn send<T: Send>(t: T) -> T {
    t
}

#[tokio::test]
async fn public_futures_are_send() {
    let pool = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
    let h = RuntimeHandle::new(pool.clone());
    let spec = pgstream_runtime::spec("x", "SELECT 1 AS one", "1s", Mode::Full).unwrap();
    let name = String::from("x");
    drop(send(h.refresh(&name)));
    drop(send(h.status()));
    drop(send(h.health()));
    drop(send(h.create_stream_table(
        &name,
        "SELECT 1 AS one",
        "1s",
        Mode::Full,
    )));
    drop(send(h.replace_stream_table(
        &name,
        "SELECT 1 AS one",
        "1s",
        Mode::Full,
    )));
    drop(send(h.drop_stream_table(&name)));
    drop(send(h.drop_stream_table_cascade(&name)));
    drop(send(h.resume(&name)));
    drop(send(pgstream_runtime::install(&pool)));
    drop(send(pgstream_runtime::check_connection(&pool)));
    drop(send(pgstream_runtime::refresh(&pool, &name)));
    drop(send(pgstream_runtime::create_stream_table(&pool, &spec)));
    drop(send(pgstream_runtime::replace_stream_table(&pool, &spec)));
    drop(send(pgstream_runtime::drop_stream_table(&pool, &name)));
    drop(send(pgstream_runtime::resume_stream_table(&pool, &name)));
    drop(send(pgstream_runtime::process_requests(&pool)));
    drop(send(pgstream_runtime::status(&pool)));
    drop(send(pgstream_runtime::metrics::sample(&pool)));
    drop(send(Runtime::builder(pool.clone()).start()));
}

/// A runtime's own futures, checked without starting one.
#[allow(dead_code)]
fn runtime_futures(runtime: Runtime) {
    drop(send(runtime.run_once()));
    drop(send(runtime.health()));
    drop(send(runtime.shutdown()));
}
