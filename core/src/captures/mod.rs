//! Body capture, off by default: an owner turns it on for a workspace (a share of its calls, kept
//! for a number of days), and a key may override it (`always`, `never`). A captured call's request
//! body and answer (a stream as the client got it) are cut at `CAPTURE_MAX_BODY_BYTES`, redacted of
//! anything that looks like a credential, sealed with AES-256-GCM bound to the workspace and the
//! request, and written by one background task: a call never waits on it, and a full queue drops
//! the capture (counted). Expired captures are pruned on schedule and never shown. Nothing of a
//! body reaches a log line or a metric.

pub mod reassemble;
pub mod redact;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use surrealdb::types::{Action, RecordId, SurrealValue};
use tokio::sync::mpsc;

use crate::platform::cache::Slots;
use crate::platform::crypto::{Cipher, capture_aad};
use crate::platform::db::{Db, bounded, now_ms};
use crate::platform::error::ServiceError;
use crate::platform::live::Follower;
use crate::workspaces::{OwnerScope, WorkspaceId};
use perpetuo_types::{CapturePolicy, CapturedBodies, CapturedBody, KeyCapture};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Captures waiting for the writer (each at most two capped bodies): past this, new ones drop.
const QUEUE: usize = 256;
/// Captures written per query.
const BATCH: usize = 32;
const POLICY_TTL: Duration = Duration::from_secs(60);
const POLICY_CAPACITY: usize = 10_000;

/// Captures kept, dropped because the queue was full, and lost to a failed write, for `/metrics`.
#[derive(Debug, Default)]
pub struct CaptureCounters {
    pub stored: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

/// One body as captured: its first bytes (up to the cap), and its whole size.
#[derive(Debug, Default)]
pub struct Raw {
    bytes: Vec<u8>,
    total: u64,
    cap: usize,
}

impl Raw {
    fn with_cap(cap: usize) -> Self {
        Self { bytes: Vec::new(), total: 0, cap }
    }

    /// Takes what fits under the cap; counts all of it.
    pub fn push(&mut self, chunk: &[u8]) {
        self.total = self.total.saturating_add(chunk.len() as u64);
        let room = self.cap.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&chunk[..room.min(chunk.len())]);
    }

    fn truncated(&self) -> bool {
        self.total > self.bytes.len() as u64
    }

    /// The body as text, redacted (a cut that split a character drops the partial one).
    fn body(&self) -> CapturedBody {
        let text = String::from_utf8_lossy(&self.bytes);
        let text = if self.truncated() { text.trim_end_matches('\u{FFFD}') } else { &text };
        let (text, redacted) = redact::redact(text, self.truncated());
        CapturedBody { text, bytes: self.total, truncated: self.truncated(), redacted }
    }
}

impl std::io::Write for Raw {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// That a call is captured, decided when it arrives: how long it is kept and where bodies are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    retention_days: u16,
    cap: usize,
}

impl Plan {
    /// An empty body under this plan's cap (a stream's answer is pushed into it as it goes).
    pub fn body(&self) -> Raw {
        Raw::with_cap(self.cap)
    }

    /// A JSON document serialised under the cap (the whole is counted, only the cap is kept).
    pub fn json(&self, value: &impl Serialize) -> Raw {
        let mut raw = self.body();
        // Writing into memory cannot fail.
        let _ = serde_json::to_writer(&mut raw, value);
        let _ = raw.flush();
        raw
    }
}

/// One call's bodies, on their way to the writer.
#[derive(Debug)]
pub struct Captured {
    pub workspace: WorkspaceId,
    pub request_id: String,
    pub key_id: String,
    /// The call's route (`chat`, `messages`, ...), for reassembling its stream.
    pub route: &'static str,
    pub stream: bool,
    pub plan: Plan,
    pub request: Raw,
    pub response: Option<Raw>,
}

/// What is sealed: both bodies, already cut and redacted.
#[derive(Serialize, Deserialize)]
struct Sealed {
    request: CapturedBody,
    response: Option<CapturedBody>,
}

#[derive(SurrealValue)]
struct Row {
    id: String,
    workspace: String,
    key_id: String,
    route: String,
    stream: bool,
    created_at: i64,
    expires_at: i64,
    sealed: String,
}

/// Workspaces' policies, kept current by following `capture_policy`.
struct PolicyCache {
    slots: Slots<CapturePolicy>,
}

impl Follower for PolicyCache {
    fn table(&self) -> &'static str {
        "capture_policy"
    }

    fn changed(&self, _: Action, record: &serde_json::Value) {
        match record.get("workspace").and_then(serde_json::Value::as_str) {
            Some(ws) => self.slots.invalidate(ws),
            None => self.slots.clear(),
        }
    }

    fn clear(&self) {
        self.slots.clear();
    }
}

/// The body capture service: policies, the writer's queue, reading and pruning.
#[derive(Clone)]
pub struct Captures {
    db: Db,
    cipher: Arc<Cipher>,
    cache: Arc<PolicyCache>,
    queue: mpsc::Sender<Captured>,
    cap: usize,
    pub counters: Arc<CaptureCounters>,
}

impl std::fmt::Debug for Captures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captures").field("cap", &self.cap).finish_non_exhaustive()
    }
}

/// The writing side: what the writer task holds (no sender of its own queue).
struct Writer {
    db: Db,
    cipher: Arc<Cipher>,
    counters: Arc<CaptureCounters>,
}

impl Writer {
    /// The writer: captures redacted, sealed and written in batches, until the queue closes.
    async fn write(self, mut rx: mpsc::Receiver<Captured>) {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let rows: Vec<Row> = batch.drain(..).filter_map(|c| self.seal(c)).collect();
            let count = rows.len() as u64;
            let written = bounded(async {
                self.db.query("INSERT IGNORE INTO capture $rows RETURN NONE").bind(("rows", rows)).await?.check()?;
                Ok(())
            })
            .await;
            match written {
                Ok(()) => self.counters.stored.fetch_add(count, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(error = %e, captures = count, "writing captured bodies failed; they are lost");
                    self.counters.failed.fetch_add(count, Ordering::Relaxed)
                }
            };
        }
    }

    fn seal(&self, c: Captured) -> Option<Row> {
        let sealed = Sealed { request: c.request.body(), response: c.response.as_ref().map(Raw::body) };
        let plain = serde_json::to_vec(&sealed).ok()?;
        let aad = capture_aad(c.workspace.as_str(), &c.request_id);
        let sealed = match self.cipher.seal(&plain, &aad) {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::warn!(error = %e, "sealing captured bodies failed; they are lost");
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let created_at = now_ms();
        Some(Row {
            id: c.request_id,
            workspace: c.workspace.as_str().to_owned(),
            key_id: c.key_id,
            route: c.route.to_owned(),
            stream: c.stream,
            created_at,
            expires_at: created_at.saturating_add(i64::from(c.plan.retention_days) * DAY_MS),
            sealed,
        })
    }
}

/// Whether a call is in the sampled share: decided from its request id's random part, so the
/// same call always decides the same way.
fn sampled(request_id: &str, percent: u8) -> bool {
    if percent >= 100 {
        return true;
    }
    // FNV-1a over the id's random tail.
    let hash = request_id
        .bytes()
        .rev()
        .take(11)
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    hash % 100 < u64::from(percent)
}

impl Captures {
    /// The service, with its writer started on the current runtime; bodies are cut at `cap` bytes.
    pub fn start(db: Db, cipher: Arc<Cipher>, cap: usize) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(CaptureCounters::default());
        let cache = Arc::new(PolicyCache { slots: Slots::new(POLICY_TTL, POLICY_CAPACITY) });
        // The writer holds no sender: once the service is dropped, the queue closes, the writer
        // ends and lets go of the database.
        let writer = Writer { db: db.clone(), cipher: Arc::clone(&cipher), counters: Arc::clone(&counters) };
        drop(tokio::spawn(writer.write(rx)));
        Self { db, cipher, cache, queue, cap, counters }
    }

    pub fn follower(&self) -> Arc<dyn Follower> {
        Arc::clone(&self.cache) as Arc<dyn Follower>
    }

    /// The workspace's policy (off when it never set one).
    pub async fn policy(&self, ws: &WorkspaceId) -> Result<CapturePolicy, ServiceError> {
        if let Some(found) = self.cache.slots.get(ws.as_str()) {
            return Ok(found);
        }
        #[derive(SurrealValue)]
        struct PolicyRow {
            enabled: bool,
            sample_percent: i64,
            retention_days: i64,
        }
        let seen = self.cache.slots.generation();
        let row: Option<PolicyRow> = bounded(async {
            let mut response = self
                .db
                .query("SELECT enabled, sample_percent, retention_days FROM type::record('capture_policy', $ws)")
                .bind(("ws", ws.as_str().to_owned()))
                .await?;
            Ok(response.take(0)?)
        })
        .await?;
        let policy = row
            .and_then(|r| {
                let percent = u32::try_from(r.sample_percent).ok()?;
                CapturePolicy::parse(r.enabled, percent, u32::try_from(r.retention_days).ok()?).ok()
            })
            .unwrap_or_default();
        self.cache.slots.put(ws.as_str().to_owned(), policy, seen);
        Ok(policy)
    }

    /// Sets the workspace's policy; its next calls follow it (captures already kept stay until
    /// their own expiry).
    pub async fn set_policy(&self, owner: &OwnerScope, policy: CapturePolicy) -> Result<CapturePolicy, ServiceError> {
        let ws = owner.workspace().as_str().to_owned();
        self.db
            .query(
                "UPSERT type::record('capture_policy', $ws) CONTENT { workspace: $ws, enabled: $enabled, \
                 sample_percent: $percent, retention_days: $days, updated_at: $now } RETURN NONE",
            )
            .bind(("ws", ws.clone()))
            .bind(("enabled", policy.enabled))
            .bind(("percent", i64::from(policy.sample_percent)))
            .bind(("days", i64::from(policy.retention_days)))
            .bind(("now", now_ms()))
            .await?
            .check()?;
        self.cache.slots.invalidate(&ws);
        Ok(policy)
    }

    /// Whether this call is captured, and how. A policy that cannot be read means no capture.
    pub async fn plan(&self, ws: &WorkspaceId, key: KeyCapture, request_id: &str) -> Option<Plan> {
        if key == KeyCapture::Never {
            return None;
        }
        let policy = match self.policy(ws).await {
            Ok(policy) => policy,
            Err(e) => {
                e.log_if_internal();
                return None;
            }
        };
        let on = match key {
            KeyCapture::Always => true,
            KeyCapture::Inherit => policy.enabled && sampled(request_id, policy.sample_percent),
            KeyCapture::Never => false,
        };
        on.then_some(Plan { retention_days: policy.retention_days, cap: self.cap })
    }

    /// Hands a call's bodies to the writer; a full queue drops them (counted), never the call.
    pub fn keep(&self, captured: Captured) {
        if self.queue.try_send(captured).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A call's captured bodies, opened, when they were kept and have not expired.
    pub async fn read(&self, ws: &WorkspaceId, request_id: &str) -> Result<Option<CapturedBodies>, ServiceError> {
        let mut response = self
            .db
            .query("SELECT record::id(id) AS id, workspace, key_id, route, stream, created_at, expires_at, sealed FROM type::record('capture', $id) WHERE workspace = $ws AND expires_at > $now")
            .bind(("id", request_id.to_owned()))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("now", now_ms()))
            .await?;
        let Some(row) = response.take::<Option<Row>>(0)? else { return Ok(None) };
        let plain = self
            .cipher
            .open(&row.sealed, &capture_aad(ws.as_str(), &row.id))
            .map_err(|e| ServiceError::Internal(format!("captured bodies of {} cannot be opened: {e}", row.id)))?;
        let sealed: Sealed = serde_json::from_slice(plain.expose())
            .map_err(|e| ServiceError::Internal(format!("captured bodies of {} are unreadable: {e}", row.id)))?;
        let reassembled = if row.stream {
            sealed.response.as_ref().and_then(|r| reassemble::reassemble(&row.route, r.text.as_bytes()))
        } else {
            None
        };
        Ok(Some(CapturedBodies {
            request: sealed.request,
            response: sealed.response,
            reassembled,
            stream: row.stream,
            expires_at: row.expires_at,
        }))
    }

    /// Whether a call has captured bodies kept (without opening them).
    pub async fn exists(&self, ws: &WorkspaceId, request_id: &str) -> Result<bool, ServiceError> {
        let mut response = self
            .db
            .query("SELECT VALUE count() FROM type::record('capture', $id) WHERE workspace = $ws AND expires_at > $now")
            .bind(("id", request_id.to_owned()))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("now", now_ms()))
            .await?;
        Ok(response.take::<Option<i64>>(0)?.unwrap_or(0) > 0)
    }

    /// Removes captures whose retention has passed, 500 at a time; how many.
    pub async fn prune(&self, now: i64) -> Result<usize, ServiceError> {
        let mut removed = 0;
        loop {
            let mut response = self
                .db
                .query("SELECT VALUE record::id(id) FROM capture WHERE expires_at <= $now LIMIT 500")
                .bind(("now", now))
                .await?;
            let ids: Vec<String> = response.take(0)?;
            if ids.is_empty() {
                return Ok(removed);
            }
            removed += ids.len();
            let ids: Vec<RecordId> = ids.iter().map(|id| RecordId::new("capture", id.as_str())).collect();
            self.db.query("DELETE $ids RETURN NONE").bind(("ids", ids)).await?.check()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_cut_at_the_cap_and_counted_whole() {
        let plan = Plan { retention_days: 1, cap: 16 };
        let raw = plan.json(&serde_json::json!({"content": "x".repeat(100)}));
        assert_eq!(raw.bytes.len(), 16);
        assert_eq!(raw.total, 114);
        let body = raw.body();
        assert!(body.truncated);
        assert_eq!(body.bytes, 114);
        let mut whole = plan.body();
        whole.push(b"short");
        assert!(!whole.body().truncated);
        // A cut inside a character drops the partial character.
        let mut split = Plan { retention_days: 1, cap: 4 }.body();
        split.push("abcé".as_bytes());
        assert_eq!(split.body().text, "abc");
    }

    #[test]
    fn sampling_takes_about_the_share_asked() {
        let ids: Vec<String> = (0..2000).map(|_| crate::usage::record::request_id(now_ms())).collect();
        let taken = ids.iter().filter(|id| sampled(id, 25)).count();
        assert!((350..650).contains(&taken), "{taken} of 2000 at 25%");
        assert!(ids.iter().all(|id| sampled(id, 100)));
        assert_eq!(ids.iter().filter(|id| sampled(id, 25)).count(), taken, "the same ids decide the same way");
    }
}
