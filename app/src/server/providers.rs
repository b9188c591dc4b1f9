//! Provider accounts of a workspace: keys sealed at rest, shown only as `••••last4`, opened only
//! for the gateway and the "Test" button.

use surrealdb::types::SurrealValue;

use super::cache::Caches;
use super::crypto::{Cipher, provider_aad};
use super::db::{Db, new_id, now_ms};
use super::error::ServiceError;
use super::secret::SecretBytes;
use super::upstream::BaseUrl;
use super::workspaces::WorkspaceId;
use crate::types::{KeyStatus, NewProvider, ProviderKind, ProviderPatch, ProviderView};

const MAX_MODELS: usize = 500;
pub const DEFAULT_PRIORITY: i64 = 100;

#[derive(SurrealValue, Clone)]
struct Row {
    id: String,
    label: String,
    kind: String,
    base_url: String,
    sealed_key: String,
    key_last4: String,
    priority: i64,
    enabled: bool,
    models: Option<Vec<String>>,
    key_status: String,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "record::id(id) AS id, label, kind, base_url, sealed_key, key_last4, priority, enabled, models, key_status, created_at, updated_at";

impl Row {
    fn kind(&self) -> Result<ProviderKind, ServiceError> {
        ProviderKind::parse(&self.kind).map_err(ServiceError::Internal)
    }

    fn view(&self) -> Result<ProviderView, ServiceError> {
        Ok(ProviderView {
            id: self.id.clone(),
            label: self.label.clone(),
            kind: self.kind()?,
            base_url: self.base_url.clone(),
            key_preview: if self.key_last4.is_empty() {
                "••••".to_owned()
            } else {
                format!("••••{}", self.key_last4)
            },
            priority: self.priority,
            enabled: self.enabled,
            models: self.models.clone(),
            key_status: if self.key_status == "rejected" { KeyStatus::Rejected } else { KeyStatus::Ok },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A provider ready for the gateway: key opened, in memory only.
#[derive(Clone)]
pub struct OpenedProvider {
    pub id: String,
    pub label: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub key: SecretBytes,
    pub priority: i64,
    pub enabled: bool,
    pub models: Option<Vec<String>>,
}

impl std::fmt::Debug for OpenedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedProvider")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

fn parse_label(raw: &str) -> Result<String, ServiceError> {
    let label = raw.trim();
    if label.is_empty() || label.chars().count() > 80 || label.chars().any(char::is_control) {
        return Err(ServiceError::Invalid("Give the provider a label of 1 to 80 characters.".into()));
    }
    Ok(label.to_owned())
}

fn parse_key(raw: &str) -> Result<SecretBytes, ServiceError> {
    let key = raw.trim();
    if key.is_empty() {
        return Err(ServiceError::Invalid("Enter the provider's API key.".into()));
    }
    if key.len() > 1024 || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ServiceError::Invalid("The API key must be a single line without spaces.".into()));
    }
    Ok(SecretBytes::new(key.as_bytes().to_vec()))
}

fn parse_priority(raw: Option<i64>) -> Result<i64, ServiceError> {
    match raw {
        None => Ok(DEFAULT_PRIORITY),
        Some(p) if (0..=1_000_000).contains(&p) => Ok(p),
        Some(_) => Err(ServiceError::Invalid("Priority must be between 0 and 1000000 (lower is tried first).".into())),
    }
}

fn parse_models(raw: Option<Vec<String>>) -> Result<Option<Vec<String>>, ServiceError> {
    let Some(list) = raw else { return Ok(None) };
    let mut models: Vec<String> = list.iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect();
    models.sort();
    models.dedup();
    if models.len() > MAX_MODELS || models.iter().any(|m| m.len() > 200 || m.chars().any(char::is_whitespace)) {
        return Err(ServiceError::Invalid(format!(
            "The model allow-list takes up to {MAX_MODELS} model names without spaces."
        )));
    }
    Ok(if models.is_empty() { None } else { Some(models) })
}

/// The last four characters, only when the key is long enough that they reveal little.
fn last4(key: &SecretBytes) -> String {
    let text = key.expose_str().unwrap_or_default();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 12 { String::new() } else { chars[chars.len() - 4..].iter().collect() }
}

/// Scheme, host and port of a URL.
fn origin(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| u.origin().ascii_serialization())
}

fn resolve_base_url(kind: ProviderKind, raw: Option<&str>, allow_private: bool) -> Result<BaseUrl, ServiceError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        Some(url) => BaseUrl::parse(url, allow_private),
        None => match kind.default_base_url() {
            Some(url) => BaseUrl::parse(url, allow_private),
            None => Err(ServiceError::Invalid(
                "An OpenAI-compatible provider needs a base URL, such as http://localhost:11434/v1.".into(),
            )),
        },
    }
}

pub async fn list(db: &Db, ws: &WorkspaceId) -> Result<Vec<ProviderView>, ServiceError> {
    rows(db, ws).await?.iter().map(Row::view).collect()
}

async fn rows(db: &Db, ws: &WorkspaceId) -> Result<Vec<Row>, ServiceError> {
    let mut response = db
        .query(format!("SELECT {COLUMNS} FROM provider WHERE workspace = $ws ORDER BY priority ASC, created_at ASC"))
        .bind(("ws", ws.as_str().to_owned()))
        .await?;
    Ok(response.take(0)?)
}

async fn row(db: &Db, ws: &WorkspaceId, id: &str) -> Result<Row, ServiceError> {
    let mut response = db
        .query(format!("SELECT {COLUMNS} FROM type::record('provider', $id) WHERE workspace = $ws"))
        .bind(("id", id.to_owned()))
        .bind(("ws", ws.as_str().to_owned()))
        .await?;
    response.take::<Option<Row>>(0)?.ok_or(ServiceError::NotFound("provider"))
}

pub async fn get(db: &Db, ws: &WorkspaceId, id: &str) -> Result<ProviderView, ServiceError> {
    row(db, ws, id).await?.view()
}

pub async fn create(
    db: &Db,
    cipher: &Cipher,
    caches: &Caches,
    allow_private: bool,
    ws: &WorkspaceId,
    mut input: NewProvider,
) -> Result<ProviderView, ServiceError> {
    let kind = ProviderKind::parse(&input.kind).map_err(ServiceError::Invalid)?;
    let label = parse_label(&input.label)?;
    let base_url = resolve_base_url(kind, input.base_url.as_deref(), allow_private)?;
    if !allow_private {
        base_url.check_resolves_public().await?;
    }
    let key = parse_key(&input.api_key)?;
    let priority = parse_priority(input.priority)?;
    let models = parse_models(input.models.take())?;
    let (id, now) = (new_id(), now_ms());
    let sealed = cipher.seal(key.expose(), &provider_aad(ws.as_str(), &id))?;
    let row = Row {
        id: id.clone(),
        label,
        kind: kind.as_str().to_owned(),
        base_url: base_url.as_str().to_owned(),
        sealed_key: sealed,
        key_last4: last4(&key),
        priority,
        enabled: input.enabled.unwrap_or(true),
        models,
        key_status: "ok".into(),
        created_at: now,
        updated_at: now,
    };
    db.query(
        "CREATE type::record('provider', $id) CONTENT {
            workspace: $ws, label: $label, kind: $kind, base_url: $base_url, sealed_key: $sealed_key,
            key_last4: $key_last4, priority: $priority, enabled: $enabled, models: $models,
            key_status: $key_status, created_at: $now, updated_at: $now
         } RETURN NONE",
    )
    .bind(("id", id))
    .bind(("ws", ws.as_str().to_owned()))
    .bind(("label", row.label.clone()))
    .bind(("kind", row.kind.clone()))
    .bind(("base_url", row.base_url.clone()))
    .bind(("sealed_key", row.sealed_key.clone()))
    .bind(("key_last4", row.key_last4.clone()))
    .bind(("priority", row.priority))
    .bind(("enabled", row.enabled))
    .bind(("models", row.models.clone()))
    .bind(("key_status", row.key_status.clone()))
    .bind(("now", now))
    .await?
    .check()?;
    caches.invalidate_providers(ws.as_str());
    row.view()
}

/// Applies the fields present in `patch`. Without a new key the sealed key is left untouched
/// (the masked preview is never written back).
pub async fn update(
    db: &Db,
    cipher: &Cipher,
    caches: &Caches,
    allow_private: bool,
    ws: &WorkspaceId,
    id: &str,
    mut patch: ProviderPatch,
) -> Result<ProviderView, ServiceError> {
    let mut current = row(db, ws, id).await?;
    let kind = current.kind()?;
    if let Some(label) = patch.label.as_deref() {
        current.label = parse_label(label)?;
    }
    let new_key = patch.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty() && !k.starts_with("••••"));
    let mut url_changed = false;
    if let Some(url) = patch.base_url.as_deref() {
        let base_url = resolve_base_url(kind, Some(url).filter(|u| !u.trim().is_empty()), allow_private)?;
        url_changed = base_url.as_str() != current.base_url;
        // The stored key goes wherever the URL points: sending it to another host needs the key
        // typed again, or access to the dashboard would be enough to read it out.
        if origin(base_url.as_str()) != origin(&current.base_url) && new_key.is_none() {
            return Err(ServiceError::Invalid("Enter the API key again to move this provider to another host.".into()));
        }
        if !allow_private {
            base_url.check_resolves_public().await?;
        }
        current.base_url = base_url.as_str().to_owned();
    }
    if let Some(raw) = new_key {
        let key = parse_key(raw)?;
        current.sealed_key = cipher.seal(key.expose(), &provider_aad(ws.as_str(), id))?;
        current.key_last4 = last4(&key);
        current.key_status = "ok".into();
    }
    if let Some(priority) = patch.priority {
        current.priority = parse_priority(Some(priority))?;
    }
    if let Some(enabled) = patch.enabled {
        current.enabled = enabled;
    }
    if patch.models.is_some() {
        current.models = parse_models(patch.models.take())?;
    }
    if url_changed {
        // A key that failed against the old URL may work against the new one.
        current.key_status = "ok".into();
    }
    current.updated_at = now_ms();
    db.query(
        "UPDATE type::record('provider', $id) MERGE {
            label: $label, base_url: $base_url, sealed_key: $sealed_key, key_last4: $key_last4,
            priority: $priority, enabled: $enabled, models: $models, key_status: $key_status, updated_at: $now
         } WHERE workspace = $ws RETURN NONE",
    )
    .bind(("id", id.to_owned()))
    .bind(("ws", ws.as_str().to_owned()))
    .bind(("label", current.label.clone()))
    .bind(("base_url", current.base_url.clone()))
    .bind(("sealed_key", current.sealed_key.clone()))
    .bind(("key_last4", current.key_last4.clone()))
    .bind(("priority", current.priority))
    .bind(("enabled", current.enabled))
    .bind(("models", current.models.clone()))
    .bind(("key_status", current.key_status.clone()))
    .bind(("now", current.updated_at))
    .await?
    .check()?;
    caches.invalidate_providers(ws.as_str());
    current.view()
}

pub async fn delete(db: &Db, caches: &Caches, ws: &WorkspaceId, id: &str) -> Result<(), ServiceError> {
    row(db, ws, id).await?;
    db.query("DELETE type::record('provider', $id) WHERE workspace = $ws RETURN NONE")
        .bind(("id", id.to_owned()))
        .bind(("ws", ws.as_str().to_owned()))
        .await?
        .check()?;
    caches.invalidate_providers(ws.as_str());
    Ok(())
}

/// The workspace's enabled providers with keys opened, from the cache when it has them.
pub async fn cached_enabled(
    db: &Db,
    cipher: &Cipher,
    caches: &Caches,
    ws: &WorkspaceId,
    allow_private: bool,
) -> Result<std::sync::Arc<Vec<OpenedProvider>>, ServiceError> {
    if let Some(providers) = caches.providers(ws) {
        return Ok(providers);
    }
    let seen = caches.generation();
    let providers = std::sync::Arc::new(open_enabled(db, cipher, ws, allow_private).await?);
    caches.put_providers(ws, std::sync::Arc::clone(&providers), seen);
    Ok(providers)
}

/// Tests a provider's stored key against its model list.
pub async fn test(
    db: &Db,
    cipher: &Cipher,
    http: &reqwest::Client,
    allow_private: bool,
    ws: &WorkspaceId,
    id: &str,
) -> Result<crate::types::ProviderTestResult, ServiceError> {
    let provider = open_one(db, cipher, ws, id).await?;
    Ok(super::upstream::test_provider(http, provider.kind, &provider.base_url, &provider.key, allow_private).await)
}

/// Opens the key of one provider (for "Test").
pub async fn open_one(db: &Db, cipher: &Cipher, ws: &WorkspaceId, id: &str) -> Result<OpenedProvider, ServiceError> {
    let row = row(db, ws, id).await?;
    open_row(cipher, ws, row)
}

fn open_row(cipher: &Cipher, ws: &WorkspaceId, row: Row) -> Result<OpenedProvider, ServiceError> {
    let key = cipher.open(&row.sealed_key, &provider_aad(ws.as_str(), &row.id))?;
    Ok(OpenedProvider {
        kind: row.kind()?,
        id: row.id,
        label: row.label,
        base_url: row.base_url,
        key,
        priority: row.priority,
        enabled: row.enabled,
        models: row.models,
    })
}

/// Every enabled provider of the workspace with its key opened, in priority order. A record
/// whose key cannot be opened, or whose base URL the current settings refuse (saved before
/// private upstreams were turned off), is skipped and logged, not fatal to the others.
pub async fn open_enabled(
    db: &Db,
    cipher: &Cipher,
    ws: &WorkspaceId,
    allow_private: bool,
) -> Result<Vec<OpenedProvider>, ServiceError> {
    let mut opened = Vec::new();
    for row in rows(db, ws).await?.into_iter().filter(|r| r.enabled) {
        let id = row.id.clone();
        if BaseUrl::parse(&row.base_url, allow_private).is_err() {
            tracing::warn!(provider = %id, "provider base URL is not allowed by the current settings; skipping it");
            continue;
        }
        match open_row(cipher, ws, row) {
            Ok(provider) => opened.push(provider),
            Err(e) => {
                tracing::error!(provider = %id, error = %e, "provider key cannot be opened; skipping it")
            }
        }
    }
    Ok(opened)
}

/// Records whether the provider's key works (the gateway flags a 401/403).
pub async fn set_key_status(
    db: &Db,
    caches: &Caches,
    ws: &WorkspaceId,
    id: &str,
    status: KeyStatus,
) -> Result<(), ServiceError> {
    let status = match status {
        KeyStatus::Ok => "ok",
        KeyStatus::Rejected => "rejected",
    };
    db.query("UPDATE type::record('provider', $id) SET key_status = $status WHERE workspace = $ws RETURN NONE")
        .bind(("id", id.to_owned()))
        .bind(("ws", ws.as_str().to_owned()))
        .bind(("status", status))
        .await?
        .check()?;
    caches.invalidate_providers(ws.as_str());
    Ok(())
}

/// Re-seals every provider key not yet sealed with the current key. Returns how many changed.
pub async fn reseal_all(db: &Db, cipher: &Cipher) -> Result<usize, ServiceError> {
    #[derive(SurrealValue)]
    struct SealedRow {
        id: String,
        workspace: String,
        sealed_key: String,
    }
    let mut response = db.query("SELECT record::id(id) AS id, workspace, sealed_key FROM provider").await?;
    let rows: Vec<SealedRow> = response.take(0)?;
    let mut changed = 0;
    for row in rows.into_iter().filter(|r| !cipher.is_current(&r.sealed_key)) {
        let aad = provider_aad(&row.workspace, &row.id);
        let plain = cipher.open(&row.sealed_key, &aad)?;
        let sealed = cipher.seal(plain.expose(), &aad)?;
        db.query("UPDATE type::record('provider', $id) SET sealed_key = $sealed WHERE sealed_key = $old RETURN NONE")
            .bind(("id", row.id))
            .bind(("sealed", sealed))
            .bind(("old", row.sealed_key))
            .await?
            .check()?;
        changed += 1;
    }
    Ok(changed)
}
