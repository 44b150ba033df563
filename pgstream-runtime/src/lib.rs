//! # pgstream-runtime
//!
//! The runtime of pgstream: installs the `pgstream` catalog schema and its SQL
//! functions, change capture (buffers and statement triggers) on source tables,
//! creates stream tables from the compiler's artifacts, and refreshes them on a
//! schedule from inside the application process.
//!
//! ```no_run
//! # async fn example(pool: sqlx::PgPool) -> pgstream_runtime::Result<()> {
//! use pgstream_runtime::{Mode, Runtime};
//! let runtime = Runtime::builder(pool).start().await?;
//! runtime
//!     .create_stream_table("big_orders", "SELECT id, total FROM orders WHERE total > 100", "30s", Mode::Differential)
//!     .await?;
//! let outcome = runtime.refresh("big_orders").await?;
//! println!("{} rows changed", outcome.rows_changed);
//! runtime.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Everything is also reachable from SQL (`psql`): `pgstream.refresh_stream_table`,
//! `pgstream.drop_stream_table`, `pgstream.pgs_status()`, the view
//! `pgstream.pg_stat_stream_tables` and the catalog table `pgstream.pgs_stream_tables`.
//! The free functions ([`install`], [`create_stream_table`], [`refresh()`],
//! [`drop_stream_table`], [`status()`]) serve the command line without a scheduler.

mod builder;
mod catalog;
mod create;
mod drop;
mod error;
mod grants;
mod health;
mod immediate;
mod inherit;
mod install;
pub mod metrics;
mod oncommit;
mod pin;
pub mod psql;
mod refresh;
mod replace;
mod requests;
mod runtime;
mod schedule;
mod scheduler;
mod status;
mod subscribe;

pub use builder::{check_connection, RuntimeBuilder, CONNECT_TIMEOUT};
pub use catalog::{display_name, load_catalog};
pub use create::create_stream_table;
pub use drop::{drop_stream_table, drop_stream_table_cascade};
pub use error::{Error, Result, Subject};
pub use health::{FailingStreamTable, Health};
pub use install::{event_trigger_installed, install, SCHEMA_VERSION};
pub use oncommit::{
    CHANGES_CHANNEL, DEFAULT_MIN_GAP as DEFAULT_ON_COMMIT_MIN_GAP, REFRESHED_CHANNEL,
};
pub use pgstream_core::{Mode, StreamTable, StreamTableDef, StreamTableSpec};
pub use refresh::{refresh, resume_stream_table, RefreshOutcome};
pub use replace::replace_stream_table;
pub use requests::{process_requests, CHANNEL as REQUESTS_CHANNEL};
pub use runtime::{spec, Runtime, RuntimeHandle};
pub use status::{status, StreamTableStatus};
pub use subscribe::{
    subscribe_to, unsubscribe, Change, ChangeBatch, SourceFrontier, SubscribeOptions,
    SubscribedRow, Subscription, SubscriptionEvent, POLL_EVERY as SUBSCRIPTION_POLL_EVERY,
};
