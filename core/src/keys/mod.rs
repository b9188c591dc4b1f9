//! Perpetuo API keys of a workspace: created (token shown once), listed, revoked, deleted, and
//! looked up by hash on the gateway's hot path through the service's own cache.

mod lookup;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use surrealdb::types::{Action, SurrealValue};

use crate::platform::cache::Slots;
use crate::platform::db::{Db, new_id, now_ms};
use crate::platform::error::ServiceError;
use crate::platform::live::Follower;
use crate::workspaces::{Membership, Role, WorkspaceId};
use perpetuo_types::{ApiKeyView, CreatedApiKey, KeyState, NewApiKey};

const MAX_RATE_LIMIT: u32 = 1_000_000;
/// How long a looked-up key is trusted without the database (live invalidation is the real bound).
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_CAPACITY: usize = 100_000;

/// A presented API key, checked for the token's shape before anything else sees it. A secret:
/// not `Serialize`, `Debug` shows only its preview.
pub struct ApiKeyToken(String);

impl ApiKeyToken {
    /// `Missing` for nothing at all, `Unknown` for anything without the shape of a `pk_` token
    /// (such strings never reach the database).
    pub fn parse(raw: Option<&str>) -> Result<Self, KeyRejection> {
        let raw = raw.map(str::trim).filter(|t| !t.is_empty()).ok_or(KeyRejection::Missing)?;
        if !tokens::looks_like_token(raw) {
            return Err(KeyRejection::Unknown);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The stored form: SHA-256, hex.
    pub fn hash(&self) -> String {
        tokens::hash(&self.0)
    }
}

impl std::fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeyToken({})", tokens::preview(&self.0))
    }
}

/// Why a presented key was refused (all answer 401; the message differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    Missing,
    Unknown,
    Revoked,
    Expired,
}

/// Why authentication did not produce a key.
#[derive(Debug)]
pub enum KeyError {
    Rejected(KeyRejection),
    Service(ServiceError),
}

impl From<ServiceError> for KeyError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

impl From<KeyRejection> for KeyError {
    fn from(r: KeyRejection) -> Self {
        Self::Rejected(r)
    }
}

/// What the gateway needs to know about a valid API key.
#[derive(Debug, Clone)]
pub struct CachedKey {
    pub id: String,
    pub name: String,
    pub workspace: WorkspaceId,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    pub rate_limit_per_min: Option<u32>,
    /// The key's own choice about body capture.
    pub capture: perpetuo_types::KeyCapture,
}

/// How many hashes found unknown are remembered, and for how long (tokens are random: a hash
/// unknown now stays unknown, unless it is a key created on another instance a moment ago).
const UNKNOWN_CAPACITY: usize = 100_000;
const UNKNOWN_TTL: Duration = Duration::from_secs(60);
/// Lookups per second (and burst) for hashes that no key of the database has: a flood of random
/// keys costs at most this much of the database.
const UNKNOWN_LOOKUPS_PER_SEC: u32 = 50;
const UNKNOWN_LOOKUPS_BURST: u32 = 200;

/// Keys by token hash, and the last-use times waiting to be written.
pub struct KeyCache {
    slots: Slots<CachedKey>,
    /// Hashes the database did not have.
    unknown: Slots<()>,
    /// The first 64 bits of every key hash in the database, once loaded (and kept current by the
    /// live follower and local creations): a hash not in it needs a lookup only within a budget.
    known: std::sync::RwLock<std::collections::HashSet<u64>>,
    known_ready: std::sync::atomic::AtomicBool,
    budget: governor::DefaultDirectRateLimiter,
    lookups: std::sync::atomic::AtomicU64,
    refused_unlooked: std::sync::atomic::AtomicU64,
    /// Key id -> last use (Unix ms), flushed to the database in batches.
    last_used: DashMap<String, i64>,
}

/// The first 64 bits of a hex SHA-256.
fn hash_prefix(hash: &str) -> u64 {
    hash.get(..16).and_then(|h| u64::from_str_radix(h, 16).ok()).unwrap_or(0)
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").field("keys", &self.slots.len()).finish_non_exhaustive()
    }
}

impl KeyCache {
    fn new() -> Self {
        let per_sec = std::num::NonZeroU32::new(UNKNOWN_LOOKUPS_PER_SEC).unwrap_or(std::num::NonZeroU32::MIN);
        let burst = std::num::NonZeroU32::new(UNKNOWN_LOOKUPS_BURST).unwrap_or(std::num::NonZeroU32::MIN);
        Self {
            slots: Slots::new(CACHE_TTL, CACHE_CAPACITY),
            unknown: Slots::new(UNKNOWN_TTL, UNKNOWN_CAPACITY),
            known: std::sync::RwLock::new(std::collections::HashSet::new()),
            known_ready: std::sync::atomic::AtomicBool::new(false),
            budget: governor::RateLimiter::direct(governor::Quota::per_second(per_sec).allow_burst(burst)),
            lookups: std::sync::atomic::AtomicU64::new(0),
            refused_unlooked: std::sync::atomic::AtomicU64::new(0),
            last_used: DashMap::new(),
        }
    }

    fn learn(&self, hash: &str) {
        let mut known = match self.known.write() {
            Ok(known) => known,
            Err(poisoned) => poisoned.into_inner(),
        };
        known.insert(hash_prefix(hash));
        drop(known);
        self.unknown.invalidate(hash);
    }

    /// Whether a hash is worth a database lookup: any hash while the known set is not loaded, a
    /// known one always, an unknown one within the budget.
    fn worth_a_lookup(&self, hash: &str) -> bool {
        if !self.known_ready.load(std::sync::atomic::Ordering::Acquire) {
            return true;
        }
        let known = match self.known.read() {
            Ok(known) => known.contains(&hash_prefix(hash)),
            Err(poisoned) => poisoned.into_inner().contains(&hash_prefix(hash)),
        };
        known || self.budget.check().is_ok()
    }

    /// Whether a changed `api_key` record still says what the cached entry says (revocation,
    /// expiry, limit, workspace): then the change does not concern the gateway.
    fn matches(&self, hash: &str, record: &serde_json::Value) -> bool {
        let int = |field: &str| record.get(field).and_then(serde_json::Value::as_i64);
        // Not cached: a lookup may be reading it right now, so the change must count.
        self.slots.holds(hash, |cached| {
            record.get("revoked_at").is_some_and(|v| !v.is_null()) == cached.revoked
                && int("expires_at") == cached.expires_at
                && int("rate_limit_per_min").and_then(|v| u32::try_from(v).ok()) == cached.rate_limit_per_min
                && record.get("workspace").and_then(serde_json::Value::as_str) == Some(cached.workspace.as_str())
                && stored_capture(record.get("capture").and_then(serde_json::Value::as_str)) == cached.capture
        })
    }
}

impl Follower for KeyCache {
    fn table(&self) -> &'static str {
        "api_key"
    }

    fn changed(&self, action: Action, record: &serde_json::Value) {
        if let Some(hash) = record.get("hash").and_then(|h| h.as_str())
            && !matches!(action, Action::Delete)
        {
            self.learn(hash);
        }
        match record.get("hash").and_then(|h| h.as_str()) {
            // `last_used_at` is written every few seconds: such updates change nothing cached.
            Some(hash) if !matches!(action, Action::Delete) && self.matches(hash, record) => {}
            Some(hash) => self.slots.invalidate(hash),
            None => self.slots.clear(),
        }
    }

    fn clear(&self) {
        self.slots.clear();
    }
}

#[derive(SurrealValue)]
struct Row {
    id: String,
    name: String,
    hash: String,
    preview: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    rate_limit_per_min: Option<i64>,
    created_by: Option<String>,
    created_by_email: Option<String>,
    capture: Option<String>,
}

/// A key's stored capture choice (unset or unknown: follow the workspace).
pub(crate) fn stored_capture(stored: Option<&str>) -> perpetuo_types::KeyCapture {
    stored.and_then(|s| perpetuo_types::KeyCapture::parse(s).ok()).unwrap_or_default()
}

const COLUMNS: &str = "record::id(id) AS id, name, hash, preview, created_at, expires_at, revoked_at, last_used_at, \
    rate_limit_per_min, created_by, capture, (IF created_by != NONE { type::record('user', created_by).email }) AS created_by_email";

impl Row {
    /// Whether `who` may revoke or delete this key: an owner any, a member only their own.
    fn managed_by(&self, who: &Membership) -> bool {
        who.role() == Role::Owner || self.created_by.as_deref() == Some(who.user_id())
    }

    fn view(&self, who: &Membership) -> ApiKeyView {
        let state = if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now_ms()) {
            KeyState::Expired
        } else {
            KeyState::Active
        };
        ApiKeyView {
            id: self.id.clone(),
            name: self.name.clone(),
            state,
            preview: self.preview.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
            rate_limit_per_min: self.rate_limit_per_min.and_then(|v| u32::try_from(v).ok()),
            created_by: self.created_by_email.clone(),
            yours: self.managed_by(who),
            capture: stored_capture(self.capture.as_deref()),
        }
    }
}

/// A key's name: 1 to 80 characters of plain text.
fn parse_name(raw: &str) -> Result<String, ServiceError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid("Give the key a name of 1 to 80 characters.".into()));
    }
    Ok(name.to_owned())
}

fn parse_expiry(input: &NewApiKey, now: i64) -> Result<Option<i64>, ServiceError> {
    match (input.expires_in_days, input.expires_at) {
        (Some(_), Some(_)) => Err(ServiceError::Invalid("Give either expires_in_days or expires_at, not both.".into())),
        (Some(0), None) => Err(ServiceError::Invalid("Expiry must be at least one day away.".into())),
        (Some(days), None) if days <= 3650 => Ok(Some(now + i64::from(days) * perpetuo_types::DAY_MS)),
        (Some(_), None) => Err(ServiceError::Invalid("Expiry can be at most 3650 days away.".into())),
        (None, Some(at)) if at > now => Ok(Some(at)),
        (None, Some(_)) => Err(ServiceError::Invalid("Expiry must be in the future.".into())),
        (None, None) => Ok(None),
    }
}

fn parse_rate_limit(raw: Option<u32>) -> Result<Option<u32>, ServiceError> {
    match raw {
        None => Ok(None),
        Some(n) if (1..=MAX_RATE_LIMIT).contains(&n) => Ok(Some(n)),
        Some(_) => Err(ServiceError::Invalid(format!(
            "The rate limit must be between 1 and {MAX_RATE_LIMIT} requests per minute."
        ))),
    }
}

/// The API keys service: owns its database handle and its cache.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    db: Db,
    cache: Arc<KeyCache>,
    /// Keys one workspace may have (revoked ones count until deleted).
    max_per_workspace: i64,
    /// The per-key limit a key gets by default: the most a member may give a key of their own.
    default_rate_limit: u32,
    /// The time expiries are checked against (a manual clock in tests).
    clock: crate::platform::rate::LimitClock,
}

impl ApiKeys {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            cache: Arc::new(KeyCache::new()),
            max_per_workspace: 500,
            default_rate_limit: MAX_RATE_LIMIT,
            clock: crate::platform::rate::LimitClock::real(),
        }
    }

    /// Checking expiries against `clock`.
    pub fn with_clock(mut self, clock: crate::platform::rate::LimitClock) -> Self {
        self.clock = clock;
        self
    }

    /// With a quota on the keys one workspace may have.
    pub fn with_quota(mut self, max_per_workspace: i64) -> Self {
        self.max_per_workspace = max_per_workspace;
        self
    }

    /// With the server's default per-key limit (members may not give their keys more).
    pub fn with_default_rate_limit(mut self, per_min: u32) -> Self {
        self.default_rate_limit = per_min;
        self
    }

    /// The cache, for the live-invalidation follower.
    pub fn follower(&self) -> Arc<dyn Follower> {
        Arc::clone(&self.cache) as Arc<dyn Follower>
    }

    /// Keys held in this instance's cache (a metric).
    pub fn cached(&self) -> usize {
        self.cache.slots.len()
    }

    /// Loads the hashes of every key in the database (64 bits each), after which a flood of
    /// unknown keys costs at most the lookup budget. Until it has run, every unknown key is looked
    /// up (and remembered as unknown).
    pub async fn load_known(&self) -> Result<usize, ServiceError> {
        let mut response = self.db.query("SELECT VALUE hash FROM api_key").await?;
        let hashes: Vec<String> = response.take(0)?;
        for hash in &hashes {
            self.cache.learn(hash);
        }
        self.cache.known_ready.store(true, std::sync::atomic::Ordering::Release);
        Ok(hashes.len())
    }

    /// Database lookups of presented keys, and unknown keys refused without one (over budget).
    pub fn lookup_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.cache.lookups.load(Relaxed), self.cache.refused_unlooked.load(Relaxed))
    }

    /// Creates a key in the member's workspace, recorded as theirs. A member's key may not have a
    /// higher rate limit than the server's default per key (owners set any).
    pub async fn create(&self, who: &Membership, input: NewApiKey) -> Result<CreatedApiKey, ServiceError> {
        let ws = who.workspace();
        let name = parse_name(&input.name)?;
        let now = now_ms();
        let expires_at = parse_expiry(&input, now)?;
        let rate_limit = parse_rate_limit(input.rate_limit_per_min)?;
        if who.role() == Role::Member && rate_limit.is_some_and(|n| n > self.default_rate_limit) {
            return Err(ServiceError::Forbidden(format!(
                "A member's key can have at most the server's limit of {} requests per minute (owners can set more).",
                self.default_rate_limit
            )));
        }
        let mut response = self
            .db
            .query("SELECT VALUE count() FROM api_key WHERE workspace = $ws GROUP ALL")
            .bind(("ws", ws.as_str().to_owned()))
            .await?;
        let count: Option<i64> = response.take(0)?;
        if count.unwrap_or(0) >= self.max_per_workspace {
            return Err(ServiceError::Forbidden(format!(
                "A workspace can have at most {} API keys on this server (delete revoked ones to make room).",
                self.max_per_workspace
            )));
        }
        let token = tokens::generate()?;
        let id = new_id();
        self.db
            .query(
                "CREATE type::record('api_key', $id) CONTENT {
                    workspace: $ws, name: $name, hash: $hash, preview: $preview, created_at: $now,
                    expires_at: $expires_at, revoked_at: NONE, last_used_at: NONE, rate_limit_per_min: $rate_limit,
                    created_by: $by
                 } RETURN NONE",
            )
            .bind(("id", id.clone()))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("name", name.clone()))
            .bind(("hash", token.hash.clone()))
            .bind(("preview", token.preview.clone()))
            .bind(("now", now))
            .bind(("expires_at", expires_at))
            .bind(("rate_limit", rate_limit.map(i64::from)))
            .bind(("by", who.user_id().to_owned()))
            .await?
            .check()?;
        self.cache.learn(&token.hash);
        let key = ApiKeyView {
            id,
            name,
            state: KeyState::Active,
            preview: token.preview.clone(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
            rate_limit_per_min: rate_limit,
            created_by: None,
            yours: true,
            capture: perpetuo_types::KeyCapture::Inherit,
        };
        Ok(CreatedApiKey { key, token: token.token.clone() })
    }

    /// Every key of the member's workspace, newest first (each says whether they may manage it).
    pub async fn list(&self, who: &Membership) -> Result<Vec<ApiKeyView>, ServiceError> {
        let mut response = self
            .db
            .query(format!("SELECT {COLUMNS} FROM api_key WHERE workspace = $ws ORDER BY created_at DESC"))
            .bind(("ws", who.workspace().as_str().to_owned()))
            .await?;
        let rows: Vec<Row> = response.take(0)?;
        Ok(rows.iter().map(|r| r.view(who)).collect())
    }

    /// The keys of a workspace by id and name (for labels and budget names).
    pub async fn names(&self, ws: &WorkspaceId) -> Result<Vec<(String, String)>, ServiceError> {
        #[derive(SurrealValue)]
        struct Named {
            id: String,
            name: String,
        }
        let mut response = self
            .db
            .query("SELECT record::id(id) AS id, name FROM api_key WHERE workspace = $ws")
            .bind(("ws", ws.as_str().to_owned()))
            .await?;
        let rows: Vec<Named> = response.take(0)?;
        Ok(rows.into_iter().map(|r| (r.id, r.name)).collect())
    }

    /// The key, if `who` may manage it (`Forbidden` for a member and another's key).
    async fn managed(&self, who: &Membership, id: &str) -> Result<Row, ServiceError> {
        let row = self.row(who.workspace(), id).await?;
        if row.managed_by(who) {
            Ok(row)
        } else {
            Err(ServiceError::Forbidden("Members can revoke and delete only the keys they created.".into()))
        }
    }

    async fn row(&self, ws: &WorkspaceId, id: &str) -> Result<Row, ServiceError> {
        let mut response = self
            .db
            .query(format!("SELECT {COLUMNS} FROM type::record('api_key', $id) WHERE workspace = $ws"))
            .bind(("id", id.to_owned()))
            .bind(("ws", ws.as_str().to_owned()))
            .await?;
        response.take::<Option<Row>>(0)?.ok_or(ServiceError::NotFound("API key"))
    }

    /// Revokes a key (owners: any; members: their own); the very next gateway request with it is
    /// refused.
    pub async fn revoke(&self, who: &Membership, id: &str) -> Result<ApiKeyView, ServiceError> {
        let ws = who.workspace();
        let mut current = self.managed(who, id).await?;
        if current.revoked_at.is_none() {
            let now = now_ms();
            self.db
                .query("UPDATE type::record('api_key', $id) SET revoked_at = $now WHERE workspace = $ws RETURN NONE")
                .bind(("id", id.to_owned()))
                .bind(("ws", ws.as_str().to_owned()))
                .bind(("now", now))
                .await?
                .check()?;
            current.revoked_at = Some(now);
        }
        self.cache.slots.invalidate(&current.hash);
        Ok(current.view(who))
    }

    /// Sets a key's own choice about body capture (owners only: what is kept of a call is the
    /// workspace's decision); the key's next call follows it.
    pub async fn set_capture(
        &self,
        owner: &crate::workspaces::OwnerScope,
        id: &str,
        capture: perpetuo_types::KeyCapture,
    ) -> Result<(), ServiceError> {
        let ws = owner.workspace();
        let current = self.row(ws, id).await?;
        self.db
            .query("UPDATE type::record('api_key', $id) SET capture = $capture WHERE workspace = $ws RETURN NONE")
            .bind(("id", id.to_owned()))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("capture", capture.stored().map(str::to_owned)))
            .await?
            .check()?;
        self.cache.slots.invalidate(&current.hash);
        Ok(())
    }

    /// Deletes a key (owners: any; members: their own).
    pub async fn delete(&self, who: &Membership, id: &str) -> Result<(), ServiceError> {
        let ws = who.workspace();
        let current = self.managed(who, id).await?;
        self.db
            .query("DELETE type::record('api_key', $id) WHERE workspace = $ws RETURN NONE")
            .bind(("id", id.to_owned()))
            .bind(("ws", ws.as_str().to_owned()))
            .await?
            .check()?;
        self.cache.slots.invalidate(&current.hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(revoked: bool) -> CachedKey {
        CachedKey {
            id: "k1".into(),
            name: "name".into(),
            workspace: WorkspaceId::trusted("w1".into()),
            expires_at: None,
            revoked,
            rate_limit_per_min: None,
            capture: perpetuo_types::KeyCapture::Inherit,
        }
    }

    #[test]
    fn last_used_updates_keep_the_entry_but_revocations_do_not() {
        let cache = KeyCache::new();
        cache.slots.put("h1".into(), key(false), cache.slots.generation());
        let touched = serde_json::json!({"hash": "h1", "workspace": "w1", "revoked_at": null, "expires_at": null, "rate_limit_per_min": null, "last_used_at": 5});
        cache.changed(Action::Update, &touched);
        assert!(cache.slots.get("h1").is_some(), "a last-use write keeps the entry");
        let revoked = serde_json::json!({"hash": "h1", "workspace": "w1", "revoked_at": 9, "expires_at": null, "rate_limit_per_min": null});
        cache.changed(Action::Update, &revoked);
        assert!(cache.slots.get("h1").is_none(), "a revocation drops it");
        assert!(!cache.matches("not-cached", &touched), "unknown entries always count as changed");
    }

    #[test]
    fn tokens_are_checked_before_any_lookup() {
        assert_eq!(ApiKeyToken::parse(None).err(), Some(KeyRejection::Missing));
        assert_eq!(ApiKeyToken::parse(Some("  ")).err(), Some(KeyRejection::Missing));
        assert_eq!(ApiKeyToken::parse(Some("sk-not-ours")).err(), Some(KeyRejection::Unknown));
        let Ok(token) = tokens::generate() else { unreachable!("the OS generator works in tests") };
        let parsed = ApiKeyToken::parse(Some(&format!(" {} ", token.token))).map(|t| t.hash());
        assert_eq!(parsed.ok(), Some(token.hash));
        let debug = format!("{:?}", ApiKeyToken::parse(Some(&token.token)));
        assert!(!debug.contains(&token.token), "{debug}");
    }
}
