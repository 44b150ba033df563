//! Change subscriptions: a typed [`Stream`] of the rows each refresh of a stream
//! table inserted, deleted and updated, in commit order, whichever process ran the
//! refresh.
//!
//! # How it works
//!
//! - **The feed.** The first subscriber of a stream table (`pgstream.subscribe`)
//!   creates its feed: a `pgstream.pgs_feeds` row and three statement triggers on the
//!   storage table (`pgstream._feed_capture`, transition tables). Every refresh that
//!   changes rows then writes them, visible columns as `jsonb`, into
//!   `pgstream.pgs_feed_log` under a **version**: one per refresh transaction, drawn
//!   by updating the feed's row in that transaction. Refreshes of one stream table
//!   are serialised (advisory lock) and the row stays locked until the refresh
//!   commits, so versions are gapless and commit in order: a reader that sees version
//!   `v` committed sees every version before it. `pgstream.pgs_feed_versions` records
//!   each version's time, its number of changes and the frontier the refresh reached.
//!   With the last subscriber gone (`pgstream.unsubscribe`) the triggers and rows go:
//!   nothing is written while nobody subscribes.
//! - **Positions.** A subscriber has a name and a stored position, the last version
//!   it consumed (`pgstream.pgs_subscribers`). A [`Subscription`] delivers the
//!   versions after its position one at a time; the position of a delivered batch is
//!   stored when the next one is asked for (or at [`Subscription::ack`]), so a
//!   subscriber whose runtime restarts resumes after the last batch it finished: each
//!   change is delivered once, except that a batch being handled when the process
//!   died is delivered again. An application that stores the position itself, in
//!   the transaction that applies the changes, gets exactly once in every case:
//!   [`SubscribeOptions::after`] resumes after a given version.
//! - **Retention and lag.** Each refresh (in the trigger) deletes the versions every
//!   subscriber has consumed, and those older than the feed's retention
//!   ([`SubscribeOptions::retention`], default 1 day) even if a subscriber has not:
//!   `trimmed_to` records how far. A subscriber behind it gets
//!   [`SubscriptionEvent::Lagged`] with the versions it missed, then the versions
//!   that are left; it never skips silently. (Read the stream table to catch up.)
//! - **Waking.** A subscription listens on the stream table's channel
//!   (`pgstream_refreshed:<name>`, or `pgstream_refreshed` when the name is too
//!   long), on which every refresh that changed rows notifies at its commit, and reads
//!   the feed when woken; it also looks every [`POLL_EVERY`] and after a lost
//!   listening connection, in case a notification was missed.

use crate::error::{Error, Result};
use futures_core::Stream;
use sqlx::postgres::{PgListener, PgRow};
use sqlx::types::chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool, Row};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// How often a subscription reads its feed without being notified (a notification
/// missed while its listening connection was being re-established).
pub const POLL_EVERY: Duration = Duration::from_secs(10);

/// One change of a stream table's rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// A row the refresh inserted.
    Insert(T),
    /// A row the refresh deleted.
    Delete(T),
    /// A row the refresh updated: its values before and after.
    Update {
        /// Before the refresh.
        old: T,
        /// After the refresh.
        new: T,
    },
}

/// The frontier a refresh reached for one of the stream table's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFrontier {
    /// The source (`name` in `public`, else `schema.name`).
    pub source: String,
    /// The snapshot up to which its changes are applied (`pg_snapshot` text,
    /// `xmin:xmax:xip,...`).
    pub snapshot: String,
}

/// The changes of one refresh, in the order they were made.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBatch<T> {
    /// The refresh's version: 1, 2, 3, ... per stream table, gapless and in commit
    /// order (a version without visible changes is not delivered). The position a
    /// subscriber stores.
    pub version: i64,
    /// When the refresh ran (its transaction's start).
    pub refreshed_at: DateTime<Utc>,
    /// The frontier the refresh reached, per source.
    pub frontier: Vec<SourceFrontier>,
    /// The changes.
    pub changes: Vec<Change<T>>,
}

/// What a [`Subscription`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionEvent<T> {
    /// The changes of one refresh.
    Changes(ChangeBatch<T>),
    /// The versions `missed_from..=missed_to` were deleted (older than the feed's
    /// retention) before this subscriber read them: their changes are lost to it.
    /// The next events are the versions after `missed_to`.
    Lagged {
        /// The first version missed.
        missed_from: i64,
        /// The last version missed.
        missed_to: i64,
    },
}

/// Options of [`RuntimeHandle::subscribe_with`](crate::RuntimeHandle::subscribe_with).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Resume after this version (a position the application stored), instead of
    /// the stored position (or, for a new subscriber, the current version).
    pub after: Option<i64>,
    /// How long the feed keeps versions a subscriber has not consumed (for every
    /// subscriber of the stream table). Default: 1 day, or what it was set to.
    pub retention: Option<Duration>,
}

impl SubscribeOptions {
    /// Resume after version `version`.
    pub fn after(mut self, version: i64) -> Self {
        self.after = Some(version);
        self
    }
    /// Keep unconsumed versions for `retention`.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }
}

/// The listening and reading half of a subscription, moved into each step.
struct Inner {
    pool: PgPool,
    st_id: i64,
    name: String,
    subscriber: String,
    /// The storage table, quoted, schema-qualified: the row type of the changes.
    storage: String,
    channel: String,
    listener: Option<PgListener>,
    /// Steps in a row that ended in an error: the next one waits first
    /// ([`retry_wait`]), so a loop that polls on through errors does not spin.
    failures: u32,
}

/// The wait before a step after `failures` failed ones: 100 ms doubling, at most 10 s.
fn retry_wait(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(100)
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(Duration::from_secs(10))
}

type Step<T> = Pin<Box<dyn Future<Output = (Box<Inner>, Stepped<T>)> + Send>>;

/// What one step came to.
struct Stepped<T> {
    /// The position it stored, if it stored one.
    stored: Option<i64>,
    /// The event and the position after it, or an error; `None`: the subscription
    /// ended.
    item: Option<Result<(SubscriptionEvent<T>, i64)>>,
    /// The subscription no longer exists (unsubscribed, stream table dropped).
    ended: bool,
}

/// A stream table's row type that a [`Subscription`] can decode: a
/// `#[stream_table]` struct (every type that is [`StreamTable`] and reads from a row
/// is one).
pub trait SubscribedRow:
    crate::StreamTable + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

impl<T> SubscribedRow for T where
    T: crate::StreamTable + for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static
{
}

/// A subscription to the changes of a stream table: a [`Stream`] of
/// [`SubscriptionEvent`]s (also [`Subscription::recv`]). Created by
/// [`RuntimeHandle::subscribe`](crate::RuntimeHandle::subscribe).
///
/// An `Err` item (the database cannot be reached) does not end the stream: the next
/// poll tries again, after a wait that grows with the failures in a row (100 ms
/// doubling, at most 10 s). The stream ends after an error saying that the subscription no
/// longer exists (removed with `unsubscribe`, or its stream table dropped or
/// replaced).
#[must_use = "a subscription does nothing unless polled"]
pub struct Subscription<T> {
    inner: Option<Box<Inner>>,
    step: Option<Step<T>>,
    pool: PgPool,
    st_id: i64,
    name: String,
    subscriber: String,
    /// The last version delivered.
    delivered: i64,
    /// The last version stored as the subscriber's position.
    stored: i64,
    ended: bool,
    _rows: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("stream_table", &self.name)
            .field("subscriber", &self.subscriber)
            .field("delivered", &self.delivered)
            .field("stored", &self.stored)
            .finish()
    }
}

impl<T> Subscription<T> {
    /// The stream table's display name.
    pub fn stream_table(&self) -> &str {
        &self.name
    }
    /// The subscriber's name.
    pub fn subscriber(&self) -> &str {
        &self.subscriber
    }
    /// The last version delivered (the position the subscription started from
    /// before anything was delivered).
    pub fn position(&self) -> i64 {
        self.delivered
    }

    /// Store the last version delivered as the subscriber's position now (it is
    /// also stored when the next event is asked for). Call it when the last event is
    /// handled and the application is about to stop, so that a restart does not
    /// deliver it again.
    pub async fn ack(&mut self) -> Result<()> {
        if self.delivered == self.stored {
            return Ok(());
        }
        let pool = self.pool.clone();
        match store_position(
            &pool,
            self.st_id,
            &self.name,
            &self.subscriber,
            self.delivered,
        )
        .await
        {
            Ok(true) => {
                self.stored = self.delivered;
                Ok(())
            }
            Ok(false) => Err(gone(&self.name, &self.subscriber)),
            Err(e) => Err(e),
        }
    }
}

impl<T> Subscription<T>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static,
{
    /// The next event: waits for a refresh that changes the stream table. `None`
    /// once the subscription no longer exists. Cancel-safe: an event is delivered
    /// only when this returns it.
    pub async fn recv(&mut self) -> Option<Result<SubscriptionEvent<T>>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<T> Stream for Subscription<T>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static,
{
    type Item = Result<SubscriptionEvent<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if this.step.is_none() {
            let Some(inner) = this.inner.take() else {
                return Poll::Ready(None);
            };
            let store = (this.delivered != this.stored).then_some(this.delivered);
            this.step = Some(Box::pin(step::<T>(inner, this.delivered, store)));
        }
        let Some(step) = this.step.as_mut() else {
            return Poll::Ready(None);
        };
        let (inner, stepped) = match step.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        this.step = None;
        this.inner = Some(inner);
        if let Some(p) = stepped.stored {
            this.stored = this.stored.max(p);
        }
        this.ended = stepped.ended;
        Poll::Ready(match stepped.item {
            Some(Ok((event, position))) => {
                this.delivered = position;
                Some(Ok(event))
            }
            Some(Err(e)) => Some(Err(e)),
            None => None,
        })
    }
}

fn gone(name: &str, subscriber: &str) -> Error {
    Error::Invalid(format!(
        "stream table {name}: the subscription `{subscriber}` no longer exists (removed with \
         unsubscribe, or the stream table was dropped or replaced)"
    ))
}

/// Store `position` as the subscriber's; `false` when the subscriber is gone.
async fn store_position(
    pool: &PgPool,
    st_id: i64,
    name: &str,
    subscriber: &str,
    position: i64,
) -> Result<bool> {
    const STEP: &str = "storing the subscriber's position";
    let r = async {
        let mut tx = crate::pin::begin(pool).await?;
        let n = sqlx::query(
            "UPDATE pgstream.pgs_subscribers s SET position = $3, acked_at = pg_catalog.now()
              WHERE s.st_id = $1 AND s.name = $2",
        )
        .bind(st_id)
        .bind(subscriber)
        .bind(position)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok::<_, sqlx::Error>(n == 1)
    };
    r.await.map_err(|e| Error::db(Some(name), STEP, e))
}

/// Store the position of the last batch handled, then wait for and read the next
/// version after `from`.
async fn step<T>(inner: Box<Inner>, from: i64, store: Option<i64>) -> (Box<Inner>, Stepped<T>)
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static,
{
    let stepped = Stepped {
        stored: None,
        item: None,
        ended: false,
    };
    tokio::time::sleep(retry_wait(inner.failures)).await;
    let (mut inner, stepped) = step_inner::<T>(inner, from, store, stepped).await;
    inner.failures = match &stepped.item {
        Some(Err(_)) if !stepped.ended => inner.failures.saturating_add(1),
        _ => 0,
    };
    (inner, stepped)
}

async fn step_inner<T>(
    mut inner: Box<Inner>,
    from: i64,
    store: Option<i64>,
    mut stepped: Stepped<T>,
) -> (Box<Inner>, Stepped<T>)
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static,
{
    match next_event::<T>(&mut inner, from, store, &mut stepped.stored).await {
        Ok(Some(event)) => stepped.item = Some(Ok(event)),
        Ok(None) => {
            stepped.item = Some(Err(gone(&inner.name, &inner.subscriber)));
            stepped.ended = true;
        }
        Err(e) => stepped.item = Some(Err(e)),
    }
    (inner, stepped)
}

/// Store the position `store` (then recorded in `stored`), then wait for and read the
/// next version after `from`: the event and its position, or `None` when the
/// subscription is gone (unsubscribed, or its stream table dropped).
async fn next_event<T>(
    inner: &mut Inner,
    from: i64,
    store: Option<i64>,
    stored: &mut Option<i64>,
) -> Result<Option<(SubscriptionEvent<T>, i64)>>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static,
{
    if let Some(p) = store {
        if !store_position(&inner.pool, inner.st_id, &inner.name, &inner.subscriber, p).await? {
            return Ok(None);
        }
        *stored = Some(p);
    }
    loop {
        // Listen before reading: a refresh that commits after the read notifies.
        if inner.listener.is_none() {
            let connected = async {
                let mut l = PgListener::connect_with(&inner.pool).await?;
                l.eager_reconnect(false);
                l.listen(&inner.channel).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let l = connected
                .await
                .map_err(|e| Error::db(Some(&inner.name), "listening for refreshes", e))?;
            inner.listener = Some(l);
        }
        match read_next::<T>(inner, from).await? {
            Next::Event(event, position) => return Ok(Some((event, position))),
            Next::Nothing => {}
            Next::Gone => return Ok(None),
        }
        let Some(l) = inner.listener.as_mut() else {
            continue;
        };
        match tokio::time::timeout(POLL_EVERY, l.try_recv()).await {
            // Notified, or time to look anyway.
            Ok(Ok(Some(_))) | Err(_) => {}
            // The connection was lost: notifications may have been missed.
            Ok(Ok(None)) | Ok(Err(_)) => inner.listener = None,
        }
    }
}

/// A `pgs_feed_versions` row: version, refreshed_at, sources, frontiers.
type VersionRow = (i64, DateTime<Utc>, Vec<String>, Vec<String>);

enum Next<T> {
    Event(SubscriptionEvent<T>, i64),
    Nothing,
    Gone,
}

/// Read, in one snapshot, what comes after version `from`: a lag report, the next
/// version's changes, or nothing yet.
async fn read_next<T>(inner: &Inner, from: i64) -> Result<Next<T>>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static,
{
    const STEP: &str = "reading the changes";
    let name = inner.name.as_str();
    let db = |e| Error::db(Some(name), STEP, e);
    let mut tx = inner
        .pool
        .begin_with(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET LOCAL search_path = pg_catalog, pg_temp",
        )
        .await
        .map_err(db)?;
    let feed: Option<(i64, bool)> = sqlx::query_as(
        "SELECT f.trimmed_to,
                EXISTS (SELECT 1 FROM pgstream.pgs_subscribers s
                         WHERE s.st_id = f.st_id AND s.name = $2)
           FROM pgstream.pgs_feeds f WHERE f.st_id = $1",
    )
    .bind(inner.st_id)
    .bind(&inner.subscriber)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let trimmed_to = match feed {
        Some((t, true)) => t,
        _ => return Ok(Next::Gone),
    };
    if from < trimmed_to {
        return Ok(Next::Event(
            SubscriptionEvent::Lagged {
                missed_from: from + 1,
                missed_to: trimmed_to,
            },
            trimmed_to,
        ));
    }
    let version: Option<VersionRow> = sqlx::query_as(
        "SELECT v.version, v.refreshed_at, v.sources, v.frontiers
           FROM pgstream.pgs_feed_versions v
          WHERE v.st_id = $1 AND v.version > $2
          ORDER BY v.version LIMIT 1",
    )
    .bind(inner.st_id)
    .bind(from)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let Some((version, refreshed_at, sources, frontiers)) = version else {
        return Ok(Next::Nothing);
    };
    // The row type of the storage table: each change decodes as the table's rows do.
    let rows = sqlx::query(&format!(
        "SELECT l.op::pg_catalog.text AS \"__pgs_op\", r.*
           FROM pgstream.pgs_feed_log l
          CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{}, l.\"row\") AS r
          WHERE l.st_id = $1 AND l.version = $2
          ORDER BY l.ord",
        inner.storage
    ))
    .bind(inner.st_id)
    .bind(version)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    tx.rollback().await.map_err(db)?;
    let mut changes = Vec::with_capacity(rows.len());
    let mut old: Option<T> = None;
    for row in &rows {
        let op: String = row.try_get("__pgs_op").map_err(db)?;
        let value = T::from_row(row).map_err(db)?;
        match op.as_str() {
            "I" => changes.push(Change::Insert(value)),
            "D" => changes.push(Change::Delete(value)),
            "O" => old = Some(value),
            "N" => match old.take() {
                Some(old) => changes.push(Change::Update { old, new: value }),
                None => changes.push(Change::Insert(value)),
            },
            _ => {}
        }
    }
    let frontier = sources
        .into_iter()
        .zip(frontiers)
        .map(|(source, snapshot)| SourceFrontier { source, snapshot })
        .collect();
    Ok(Next::Event(
        SubscriptionEvent::Changes(ChangeBatch {
            version,
            refreshed_at,
            frontier,
            changes,
        }),
        version,
    ))
}

/// Subscribe `subscriber` to the changes of stream table `name` (`name` or
/// `schema.name`), each row decoded as an `R` (for a `#[stream_table]` struct,
/// [`RuntimeHandle::subscribe`](crate::RuntimeHandle::subscribe) says which stream
/// table). The subscriber is registered in the database (`pgstream.subscribe`) before
/// this returns: changes from then on are kept for it until it consumes them or the
/// retention ends. Errors name the stream table.
pub async fn subscribe_to<R>(
    pool: &PgPool,
    name: &str,
    subscriber: &str,
    options: SubscribeOptions,
) -> Result<Subscription<R>> {
    const STEP: &str = "subscribing";
    let r = async {
        let mut tx = crate::pin::begin(pool).await?;
        let position: i64 = sqlx::query_scalar(
            "SELECT pgstream.subscribe($1, $2, $3, $4::float8 * interval '1 millisecond')",
        )
        .bind(name)
        .bind(subscriber)
        .bind(options.after)
        .bind(options.retention.map(|d| d.as_secs_f64() * 1000.0))
        .fetch_one(&mut *tx)
        .await?;
        let (st_id, shown, storage, channel): (i64, String, String, String) = sqlx::query_as(
            "SELECT s.id, pgstream._display_name(s.schema_name, s.table_name),
                    pg_catalog.format('%I.%I', s.schema_name, s.table_name),
                    coalesce(pgstream._refreshed_channel(s.schema_name, s.table_name),
                             'pgstream_refreshed')
               FROM pgstream.pgs_stream_tables s WHERE s.id = pgstream._resolve($1)",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>((position, st_id, shown, storage, channel))
    };
    let (position, st_id, shown, storage, channel) = match r.await {
        Ok(x) => x,
        Err(e) if crate::drop::is_not_found(&e) => return Err(Error::NotFound(name.to_string())),
        Err(e) => return Err(Error::db(Some(name), STEP, e)),
    };
    tracing::debug!(stream_table = %shown, subscriber, position, "subscribed");
    Ok(Subscription {
        inner: Some(Box::new(Inner {
            pool: pool.clone(),
            st_id,
            name: shown.clone(),
            subscriber: subscriber.to_string(),
            storage,
            channel,
            listener: None,
            failures: 0,
        })),
        step: None,
        pool: pool.clone(),
        st_id,
        name: shown,
        subscriber: subscriber.to_string(),
        delivered: position,
        stored: position,
        ended: false,
        _rows: PhantomData,
    })
}

/// Remove a subscriber of stream table `name`; `false` when there was none. With the
/// last subscriber the feed goes: its triggers and the changes not yet consumed.
pub async fn unsubscribe(pool: &PgPool, name: &str, subscriber: &str) -> Result<bool> {
    let r = async {
        let mut tx = crate::pin::begin(pool).await?;
        let found: bool = sqlx::query_scalar("SELECT pgstream.unsubscribe($1, $2)")
            .bind(name)
            .bind(subscriber)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(found)
    };
    match r.await {
        Ok(found) => Ok(found),
        Err(e) if crate::drop::is_not_found(&e) => Err(Error::NotFound(name.to_string())),
        Err(e) => Err(Error::db(Some(name), "unsubscribing", e)),
    }
}
