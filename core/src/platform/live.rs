//! Keeping every instance's caches true when the database changes, here or in another Perpetuo
//! instance sharing it: each cached table is followed with `LIVE SELECT`, and its owner drops the
//! entries a change touches, within milliseconds of the commit. If a stream fails it is re-opened,
//! and the owners drop everything once it is back (a change may have been missed); until then the
//! entries live out their TTL, which keeps known keys working while the database is away. The TTL
//! is also the last line of defence against a missed notification.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::SelectAll;
use surrealdb::Notification;
use surrealdb::types::Action;
use tokio_util::sync::CancellationToken;

use super::db::Db;

/// A cache that follows one table.
pub trait Follower: Send + Sync {
    /// The table whose changes concern this cache.
    fn table(&self) -> &'static str;
    /// One record of the table was created, updated or deleted.
    fn changed(&self, action: Action, record: &serde_json::Value);
    /// Notifications may have been missed: drop everything.
    fn clear(&self);
}

/// Follows every follower's table until `stop` fires. Returns once the first subscriptions are
/// live, so a caller can rely on them before serving.
pub async fn spawn(db: Db, followers: Vec<Arc<dyn Follower>>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            // On failure the caches keep their entries (bounded by their TTL): while this instance
            // cannot reach the database, they are what lets known keys keep working; once the
            // streams are back, everything cached is dropped (a change may have been missed).
            match follow(&db, &followers, &stop, &mut ready).await {
                Ok(()) => break,
                Err(e) => tracing::warn!(error = %e, "cache invalidation stream failed; resubscribing"),
            }
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
    let _ = ready_rx.await;
    handle
}

type Changes = futures::stream::BoxStream<'static, (usize, Option<surrealdb::Result<Notification<serde_json::Value>>>)>;

async fn follow(
    db: &Db,
    followers: &[Arc<dyn Follower>],
    stop: &CancellationToken,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), surrealdb::Error> {
    let mut streams: SelectAll<Changes> = SelectAll::new();
    for (index, follower) in followers.iter().enumerate() {
        let stream = db.select::<Vec<serde_json::Value>>(follower.table()).live().await?;
        // A stream that ends says so with a final `None`, so its end is noticed.
        let tagged = stream.map(move |n| (index, Some(n))).chain(futures::stream::once(async move { (index, None) }));
        streams.push(tagged.boxed());
    }
    // Anything cached before the streams existed may have missed a change.
    followers.iter().for_each(|f| f.clear());
    if let Some(tx) = ready.take() {
        let _ = tx.send(());
    }
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            next = streams.next() => next,
        };
        match next {
            Some((index, Some(notification))) => {
                let notification = notification?;
                if let Some(follower) = followers.get(index) {
                    follower.changed(notification.action, &notification.data);
                }
            }
            Some((index, None)) => {
                let table = followers.get(index).map_or("?", |f| f.table());
                return Err(surrealdb::Error::internal(format!("{table} live stream ended")));
            }
            None => return Err(surrealdb::Error::internal("no live streams".to_owned())),
        }
    }
}
