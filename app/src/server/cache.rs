//! In-process caches for the gateway's hot path, and how they stay true when the database
//! changes, here or in another Perpetuo instance sharing it:
//!
//! - a change made through this instance invalidates its entries before the call returns;
//! - every instance follows `LIVE SELECT` streams on `api_key` and `provider` and drops the entries
//!   a change touches, within milliseconds of the commit;
//! - if a stream fails, everything is dropped and the stream re-opened (requests meanwhile go to
//!   the database);
//! - entries also expire after a short TTL, a last line of defence against a missed notification.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::StreamExt as _;
use surrealdb::Notification;
use tokio_util::sync::CancellationToken as CancelSignal;

use super::db::Db;
use super::providers::OpenedProvider;
use super::workspaces::WorkspaceId;

/// What the gateway needs to know about a valid API key.
#[derive(Debug, Clone)]
pub struct CachedKey {
    pub id: String,
    pub name: String,
    pub workspace: WorkspaceId,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    pub rate_limit_per_min: Option<u32>,
    loaded_at: Instant,
}

impl CachedKey {
    pub fn new(
        id: String,
        name: String,
        workspace: WorkspaceId,
        expires_at: Option<i64>,
        revoked: bool,
        rate_limit_per_min: Option<u32>,
    ) -> Self {
        Self { id, name, workspace, expires_at, revoked, rate_limit_per_min, loaded_at: Instant::now() }
    }
}

#[derive(Clone)]
struct CachedProviders {
    providers: Arc<Vec<OpenedProvider>>,
    loaded_at: Instant,
}

/// The caches of one instance.
pub struct Caches {
    keys: DashMap<String, CachedKey>,
    providers: DashMap<String, CachedProviders>,
    ttl: Duration,
    /// Key id -> last use (Unix ms), flushed to the database in batches.
    last_used: DashMap<String, i64>,
    /// Workspace -> its price overrides.
    prices: DashMap<String, (Instant, Arc<super::prices::Overrides>)>,
    /// Bumped by every invalidation. A reader notes it before going to the database and only
    /// caches what it read if nothing was invalidated meanwhile: otherwise a read that raced a
    /// revocation could put the old, unrevoked key back for a whole TTL.
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("keys", &self.keys.len())
            .field("providers", &self.providers.len())
            .finish_non_exhaustive()
    }
}

impl Caches {
    pub fn new(ttl: Duration) -> Self {
        Self {
            keys: DashMap::new(),
            providers: DashMap::new(),
            ttl,
            last_used: DashMap::new(),
            prices: DashMap::new(),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The invalidation count; pass it back to the `put_*` methods.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn bump(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn unchanged_since(&self, seen: u64) -> bool {
        self.generation() == seen
    }

    pub fn key(&self, hash: &str) -> Option<CachedKey> {
        let entry = self.keys.get(hash)?;
        if entry.loaded_at.elapsed() > self.ttl {
            drop(entry);
            self.keys.remove(hash);
            return None;
        }
        Some(entry.clone())
    }

    /// Caches a key read from the database, unless anything was invalidated since `seen`.
    pub fn put_key(&self, hash: String, key: CachedKey, seen: u64) {
        self.keys.insert(hash.clone(), key);
        // Checked after inserting, so an invalidation that lands in between is not missed.
        if !self.unchanged_since(seen) {
            self.keys.remove(&hash);
        }
    }

    /// Whether a changed `api_key` record still says what the cached entry says (revocation,
    /// expiry, limit, workspace): then the change does not concern the gateway.
    pub fn key_matches(&self, hash: &str, record: &serde_json::Value) -> bool {
        // Not cached: a lookup may be reading it right now, so the change must count.
        let Some(cached) = self.keys.get(hash) else {
            return false;
        };
        let int = |field: &str| record.get(field).and_then(serde_json::Value::as_i64);
        record.get("revoked_at").is_some_and(|v| !v.is_null()) == cached.revoked
            && int("expires_at") == cached.expires_at
            && int("rate_limit_per_min").and_then(|v| u32::try_from(v).ok()) == cached.rate_limit_per_min
            && record.get("workspace").and_then(serde_json::Value::as_str) == Some(cached.workspace.as_str())
    }

    pub fn invalidate_key(&self, hash: &str) {
        self.bump();
        self.keys.remove(hash);
    }

    pub fn providers(&self, ws: &WorkspaceId) -> Option<Arc<Vec<OpenedProvider>>> {
        let entry = self.providers.get(ws.as_str())?;
        if entry.loaded_at.elapsed() > self.ttl {
            drop(entry);
            self.providers.remove(ws.as_str());
            return None;
        }
        Some(Arc::clone(&entry.providers))
    }

    pub fn put_providers(&self, ws: &WorkspaceId, providers: Arc<Vec<OpenedProvider>>, seen: u64) {
        self.providers.insert(ws.as_str().to_owned(), CachedProviders { providers, loaded_at: Instant::now() });
        if !self.unchanged_since(seen) {
            self.providers.remove(ws.as_str());
        }
    }

    pub fn invalidate_providers(&self, workspace_id: &str) {
        self.bump();
        self.providers.remove(workspace_id);
    }

    pub fn prices(&self, workspace_id: &str) -> Option<Arc<super::prices::Overrides>> {
        let entry = self.prices.get(workspace_id)?;
        (entry.0.elapsed() <= self.ttl).then(|| Arc::clone(&entry.1))
    }

    pub fn put_prices(&self, workspace_id: &str, overrides: Arc<super::prices::Overrides>, seen: u64) {
        self.prices.insert(workspace_id.to_owned(), (Instant::now(), overrides));
        if !self.unchanged_since(seen) {
            self.prices.remove(workspace_id);
        }
    }

    pub fn invalidate_prices(&self, workspace_id: &str) {
        self.bump();
        self.prices.remove(workspace_id);
    }

    pub fn clear(&self) {
        self.bump();
        self.keys.clear();
        self.providers.clear();
        self.prices.clear();
    }

    pub fn cached_keys(&self) -> usize {
        self.keys.len()
    }

    /// Notes a key's use; written to the database by [`Caches::flush_last_used`], not per request.
    pub fn touch(&self, key_id: &str, at_ms: i64) {
        match self.last_used.get_mut(key_id) {
            Some(mut t) => *t = (*t).max(at_ms),
            None => {
                self.last_used.insert(key_id.to_owned(), at_ms);
            }
        }
    }

    /// Writes the pending last-use times in one query.
    pub async fn flush_last_used(&self, db: &Db) -> Result<usize, surrealdb::Error> {
        let pending: Vec<(String, i64)> = self.last_used.iter().map(|e| (e.key().clone(), *e.value())).collect();
        if pending.is_empty() {
            return Ok(0);
        }
        for (id, ts) in &pending {
            self.last_used.remove_if(id, |_, v| v == ts);
        }
        let updates: Vec<serde_json::Value> =
            pending.iter().map(|(id, ts)| serde_json::json!({ "id": id, "ts": ts })).collect();
        db.query(
            "FOR $u IN $updates {
                UPDATE type::record('api_key', $u.id) SET last_used_at = math::max([last_used_at ?? 0, $u.ts]) RETURN NONE;
             }",
        )
        .bind(("updates", updates))
        .await?
        .check()?;
        Ok(pending.len())
    }
}

/// Follows changes to `api_key` and `provider` until `stop` fires, invalidating what they touch.
/// Returns once the first subscription is live, so a caller can rely on it before serving.
pub async fn spawn_invalidation(db: Db, caches: Arc<Caches>, stop: CancelSignal) -> tokio::task::JoinHandle<()> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match follow(&db, &caches, &stop, &mut ready).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cache invalidation stream failed; dropping caches and resubscribing");
                    caches.clear();
                }
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

async fn follow(
    db: &Db,
    caches: &Caches,
    stop: &CancelSignal,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), surrealdb::Error> {
    let mut keys = db.select::<Vec<serde_json::Value>>("api_key").live().await?;
    let mut providers = db.select::<Vec<serde_json::Value>>("provider").live().await?;
    // Anything cached before the streams existed may have missed a change.
    caches.clear();
    if let Some(tx) = ready.take() {
        let _ = tx.send(());
    }
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            next = keys.next() => {
                let notification: Notification<serde_json::Value> = match next {
                    Some(n) => n?,
                    None => return Err(surrealdb::Error::internal("api_key live stream ended".to_owned())),
                };
                match notification.data.get("hash").and_then(|h| h.as_str()) {
                    // `last_used_at` is written every few seconds: such updates change nothing cached.
                    Some(hash) if !matches!(notification.action, surrealdb::types::Action::Delete)
                        && caches.key_matches(hash, &notification.data) => {}
                    Some(hash) => caches.invalidate_key(hash),
                    None => caches.clear(),
                }
            }
            next = providers.next() => {
                let notification: Notification<serde_json::Value> = match next {
                    Some(n) => n?,
                    None => return Err(surrealdb::Error::internal("provider live stream ended".to_owned())),
                };
                match notification.data.get("workspace").and_then(|w| w.as_str()) {
                    Some(ws) => caches.invalidate_providers(ws),
                    None => caches.clear(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(revoked: bool) -> CachedKey {
        CachedKey::new("k1".into(), "name".into(), WorkspaceId::trusted("w1".into()), None, revoked, None)
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let caches = Caches::new(Duration::from_secs(60));
        let seen = caches.generation();
        caches.invalidate_key("h1");
        caches.put_key("h1".into(), key(false), seen);
        assert!(caches.key("h1").is_none(), "the stale read was dropped");
        caches.put_key("h1".into(), key(false), caches.generation());
        assert!(caches.key("h1").is_some());
    }

    #[test]
    fn last_used_updates_keep_the_entry_but_revocations_do_not() {
        let caches = Caches::new(Duration::from_secs(60));
        caches.put_key("h1".into(), key(false), caches.generation());
        let touched = serde_json::json!({"hash": "h1", "workspace": "w1", "revoked_at": null, "expires_at": null, "rate_limit_per_min": null, "last_used_at": 5});
        assert!(caches.key_matches("h1", &touched));
        let revoked = serde_json::json!({"hash": "h1", "workspace": "w1", "revoked_at": 9, "expires_at": null, "rate_limit_per_min": null});
        assert!(!caches.key_matches("h1", &revoked));
        assert!(!caches.key_matches("not-cached", &touched), "unknown entries always count as changed");
    }
}
