//! Provider accounts of a workspace and everything about reaching them: keys sealed at rest and
//! shown only as `••••last4`, opened only for the gateway and the "Test" button; the kinds'
//! vendor tables (`catalog`), the upstream dialects they speak (`dialects`), the HTTP client with
//! its address rules (`client`) and the circuit breakers (`breaker`).

pub mod address;
pub mod aws;
pub mod body;
pub mod breaker;
pub mod catalog;
pub mod client;
pub mod credentials;
pub mod dialects;
pub mod health;
mod input;
mod opened;
pub mod pressure;
pub mod translation;

use std::sync::Arc;
use std::time::Duration;

use surrealdb::types::{Action, SurrealValue};

use crate::platform::cache::Slots;
use crate::platform::crypto::{Cipher, provider_aad};
use crate::platform::db::{Db, new_id, now_ms};
use crate::platform::error::ServiceError;
use crate::platform::live::Follower;
use crate::platform::secret::SecretBytes;
use crate::workspaces::{OwnerScope, WorkspaceId};
use address::BaseUrl;
use input::{Aliases, Label, ModelAllowList, Priority, ProviderKey};
pub use input::{ApiVersion, Region};
use perpetuo_types::{KeyStatus, NewProvider, ProviderKind, ProviderPatch, ProviderTestResult, ProviderView};

pub use input::DEFAULT_PRIORITY;

/// How long a workspace's opened providers are trusted without the database (live invalidation
/// is the real bound), and how many workspaces are held.
const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_CAPACITY: usize = 10_000;
/// How long a provider's own model list is kept for `GET /v1/models`.
const MODEL_LIST_TTL: Duration = Duration::from_secs(300);
const MODEL_LIST_CAPACITY: usize = 10_000;

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
    aliases: Option<Vec<String>>,
    /// Prompt-cache breakpoints on translated calls (`None`: on).
    auto_cache: Option<bool>,
    /// Refuse, rather than drop, hosted tools it cannot run (`None`: drop).
    refuse_hosted_tools: Option<bool>,
    /// Azure OpenAI's `api-version` (`None`: the default).
    api_version: Option<String>,
    /// A cloud region (Vertex AI's location; `None`: the kind's default).
    region: Option<String>,
    key_status: String,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "record::id(id) AS id, label, kind, base_url, sealed_key, key_last4, priority, enabled, models, aliases, auto_cache, refuse_hosted_tools, api_version, region, key_status, created_at, updated_at";

impl Row {
    fn kind(&self) -> Result<ProviderKind, ServiceError> {
        ProviderKind::parse(&self.kind).map_err(ServiceError::Internal)
    }

    fn view(&self) -> Result<ProviderView, ServiceError> {
        Ok(ProviderView {
            health: None,
            pressure: None,
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
            aliases: Aliases::from_stored(self.aliases.as_deref()),
            auto_cache: self.auto_cache.unwrap_or(true),
            refuse_hosted_tools: self.refuse_hosted_tools.unwrap_or(false),
            api_version: self.api_version.clone(),
            region: self.region.clone(),
            key_status: KeyStatus::from_stored(&self.key_status),
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
    /// Names clients send (exact, or a prefix ending in `*`) -> the model served for them here.
    pub aliases: std::collections::BTreeMap<String, String>,
    /// How calls translated for it are shaped (prompt-cache breakpoints, hosted tools).
    pub translation: crate::protocols::TranslationOptions,
    /// Azure OpenAI's `api-version` (`None`: the default).
    pub api_version: Option<String>,
    /// Vertex AI's region (`None`: `global`) and project (its service account's).
    pub region: Option<String>,
    pub project: Option<String>,
    /// The dialect's authentication headers for the key, built when the provider was opened.
    pub auth: Arc<[(http::HeaderName, http::HeaderValue)]>,
    /// Bearer tokens minted from the stored credential, for kinds that exchange one (sent in
    /// `Authorization` on top of `auth`).
    pub tokens: Option<Arc<credentials::TokenSource>>,
    /// Signs each request with an AWS access key (Amazon Bedrock with IAM credentials).
    pub signer: Option<Arc<aws::Signer>>,
}

/// How well an alias matches a requested model: an exact name beats any prefix, a longer prefix
/// a shorter one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AliasMatch {
    Prefix(usize),
    Exact,
}

impl OpenedProvider {
    /// The model this provider serves for `requested` under one of its aliases, and how well the
    /// alias matched.
    pub fn alias(&self, requested: &str) -> Option<(AliasMatch, &str)> {
        if let Some(model) = self.aliases.get(requested) {
            return Some((AliasMatch::Exact, model));
        }
        self.aliases
            .iter()
            .filter_map(|(name, model)| {
                let prefix = name.strip_suffix('*')?;
                requested.starts_with(prefix).then_some((AliasMatch::Prefix(prefix.len()), model.as_str()))
            })
            .max_by_key(|(m, _)| *m)
    }
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

/// One model a workspace can call, and the kind of provider that lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    pub owned_by: ProviderKind,
}

/// Scheme, host and port of a URL.
fn origin(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| u.origin().ascii_serialization())
}

/// The opened providers of each workspace, and each provider's own model list.
struct ProviderCache {
    enabled: Slots<Arc<Vec<OpenedProvider>>>,
    model_lists: Slots<Arc<Vec<String>>>,
    tokens: credentials::Sources,
}

impl Follower for ProviderCache {
    fn table(&self) -> &'static str {
        "provider"
    }

    fn changed(&self, _: Action, record: &serde_json::Value) {
        match record.get("workspace").and_then(|w| w.as_str()) {
            Some(ws) => self.enabled.invalidate(ws),
            None => self.enabled.clear(),
        }
        // A provider moved to another URL or key lists other models.
        match record.get("id").and_then(|id| id.as_str()) {
            Some(id) => self.model_lists.invalidate(id.rsplit(':').next().unwrap_or(id)),
            None => self.model_lists.clear(),
        }
    }

    fn clear(&self) {
        self.enabled.clear();
        self.model_lists.clear();
    }
}

/// The providers service: owns its database handle, the cipher that opens keys, the upstream
/// HTTP client and its caches.
#[derive(Clone)]
pub struct Providers {
    db: Db,
    cipher: Arc<Cipher>,
    http: reqwest::Client,
    /// The gateway's own client for calls (per serving thread); `http` is for management calls.
    upstream: client::Upstream,
    allow_private: bool,
    cache: Arc<ProviderCache>,
    /// Providers one workspace may have.
    max_per_workspace: i64,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers").field("allow_private", &self.allow_private).finish_non_exhaustive()
    }
}

impl Providers {
    pub fn new(
        db: Db,
        cipher: Arc<Cipher>,
        http: reqwest::Client,
        upstream: client::Upstream,
        allow_private: bool,
    ) -> Self {
        let cache = ProviderCache {
            enabled: Slots::new(CACHE_TTL, CACHE_CAPACITY),
            model_lists: Slots::new(MODEL_LIST_TTL, MODEL_LIST_CAPACITY),
            tokens: credentials::Sources::default(),
        };
        Self { db, cipher, http, upstream, allow_private, cache: Arc::new(cache), max_per_workspace: 50 }
    }

    /// The client for gateway calls.
    pub fn upstream(&self) -> &client::Upstream {
        &self.upstream
    }

    /// The cache, for the live-invalidation follower.
    pub fn follower(&self) -> Arc<dyn Follower> {
        Arc::clone(&self.cache) as Arc<dyn Follower>
    }

    /// The shared client for upstream calls (the gateway's attempts use it too).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A change made through this instance: its own entries go before the call returns.
    fn changed(&self, ws: &WorkspaceId, id: &str) {
        self.cache.enabled.invalidate(ws.as_str());
        self.cache.model_lists.invalidate(id);
    }

    fn base_url(&self, kind: ProviderKind, raw: Option<&str>) -> Result<BaseUrl, ServiceError> {
        match raw.map(str::trim).filter(|s| !s.is_empty()) {
            Some(url) => BaseUrl::parse(url, self.allow_private),
            None => match catalog::default_base_url(kind) {
                Some(url) => BaseUrl::parse(url, self.allow_private),
                None => Err(ServiceError::Invalid(
                    "This kind of provider needs a base URL: an OpenAI-compatible host's, such as http://localhost:11434/v1, or an Azure OpenAI resource's endpoint, such as https://RESOURCE.openai.azure.com.".into(),
                )),
            },
        }
    }

    async fn check_host(&self, url: &BaseUrl) -> Result<(), ServiceError> {
        if self.allow_private { Ok(()) } else { url.check_resolves_public().await }
    }

    pub async fn list(&self, ws: &WorkspaceId) -> Result<Vec<ProviderView>, ServiceError> {
        self.rows(ws).await?.iter().map(Row::view).collect()
    }

    async fn rows(&self, ws: &WorkspaceId) -> Result<Vec<Row>, ServiceError> {
        let mut response = self
            .db
            .query(format!(
                "SELECT {COLUMNS} FROM provider WHERE workspace = $ws ORDER BY priority ASC, created_at ASC"
            ))
            .bind(("ws", ws.as_str().to_owned()))
            .await?;
        Ok(response.take(0)?)
    }

    async fn row(&self, ws: &WorkspaceId, id: &str) -> Result<Row, ServiceError> {
        let mut response = self
            .db
            .query(format!("SELECT {COLUMNS} FROM type::record('provider', $id) WHERE workspace = $ws"))
            .bind(("id", id.to_owned()))
            .bind(("ws", ws.as_str().to_owned()))
            .await?;
        response.take::<Option<Row>>(0)?.ok_or(ServiceError::NotFound("provider"))
    }

    pub async fn get(&self, ws: &WorkspaceId, id: &str) -> Result<ProviderView, ServiceError> {
        self.row(ws, id).await?.view()
    }

    /// With a quota on the providers one workspace may have.
    pub fn with_quota(mut self, max_per_workspace: i64) -> Self {
        self.max_per_workspace = max_per_workspace;
        self
    }

    /// Adds a provider (owners only).
    pub async fn create(&self, owner: &OwnerScope, mut input: NewProvider) -> Result<ProviderView, ServiceError> {
        let ws = owner.workspace();
        let mut response = self
            .db
            .query("SELECT VALUE count() FROM provider WHERE workspace = $ws GROUP ALL")
            .bind(("ws", ws.as_str().to_owned()))
            .await?;
        let count: Option<i64> = response.take(0)?;
        if count.unwrap_or(0) >= self.max_per_workspace {
            return Err(ServiceError::Forbidden(format!(
                "A workspace can have at most {} providers on this server.",
                self.max_per_workspace
            )));
        }
        let kind = ProviderKind::parse(&input.kind).map_err(ServiceError::Invalid)?;
        let label = Label::parse(&input.label)?;
        let base_url = self.base_url(kind, input.base_url.as_deref())?;
        self.check_host(&base_url).await?;
        let key = ProviderKey::parse_for(kind, &input.api_key, self.allow_private)?;
        let priority = Priority::parse(input.priority)?;
        let models = ModelAllowList::parse(input.models.take())?;
        let aliases = Aliases::parse(input.aliases.take())?;
        let (id, now) = (new_id(), now_ms());
        let row = Row {
            id: id.clone(),
            label: label.into_inner(),
            kind: kind.as_str().to_owned(),
            base_url: base_url.as_str().to_owned(),
            sealed_key: self.cipher.seal(key.expose(), &provider_aad(ws.as_str(), &id))?,
            key_last4: key.last4(),
            priority: priority.get(),
            enabled: input.enabled.unwrap_or(true),
            models: models.into_inner(),
            aliases: aliases.into_stored(),
            auto_cache: input.auto_cache,
            refuse_hosted_tools: input.refuse_hosted_tools,
            api_version: ApiVersion::parse(kind, input.api_version.as_deref())?,
            region: Region::parse(kind, input.region.as_deref())?,
            key_status: KeyStatus::Ok.as_str().into(),
            created_at: now,
            updated_at: now,
        };
        self.db
            .query(
                "CREATE type::record('provider', $id) CONTENT {
                    workspace: $ws, label: $label, kind: $kind, base_url: $base_url, sealed_key: $sealed_key,
                    key_last4: $key_last4, priority: $priority, enabled: $enabled, models: $models,
                    aliases: $aliases, auto_cache: $auto_cache, refuse_hosted_tools: $refuse_hosted_tools,
                    api_version: $api_version, region: $region, key_status: $key_status, created_at: $now,
                    updated_at: $now
                 } RETURN NONE",
            )
            .bind(("id", id.clone()))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("label", row.label.clone()))
            .bind(("kind", row.kind.clone()))
            .bind(("base_url", row.base_url.clone()))
            .bind(("sealed_key", row.sealed_key.clone()))
            .bind(("key_last4", row.key_last4.clone()))
            .bind(("priority", row.priority))
            .bind(("enabled", row.enabled))
            .bind(("models", row.models.clone()))
            .bind(("aliases", row.aliases.clone()))
            .bind(("auto_cache", row.auto_cache))
            .bind(("refuse_hosted_tools", row.refuse_hosted_tools))
            .bind(("api_version", row.api_version.clone()))
            .bind(("region", row.region.clone()))
            .bind(("key_status", row.key_status.clone()))
            .bind(("now", now))
            .await?
            .check()?;
        self.changed(ws, &id);
        row.view()
    }

    /// Applies the fields present in `patch`. Without a new key the sealed key is left untouched
    /// (the masked preview is never written back).
    /// Changes a provider (owners only).
    pub async fn update(
        &self,
        owner: &OwnerScope,
        id: &str,
        mut patch: ProviderPatch,
    ) -> Result<ProviderView, ServiceError> {
        let ws = owner.workspace();
        let mut current = self.row(ws, id).await?;
        let kind = current.kind()?;
        if let Some(label) = patch.label.as_deref() {
            current.label = Label::parse(label)?.into_inner();
        }
        let new_key = ProviderKey::parse_replacement(kind, patch.api_key.as_deref(), self.allow_private)?;
        let mut url_changed = false;
        if let Some(url) = patch.base_url.as_deref() {
            let base_url = self.base_url(kind, Some(url))?;
            url_changed = base_url.as_str() != current.base_url;
            // The stored key goes wherever the URL points: sending it to another host needs the key
            // typed again, or access to the dashboard would be enough to read it out.
            if origin(base_url.as_str()) != origin(&current.base_url) && new_key.is_none() {
                return Err(ServiceError::Invalid(
                    "Enter the API key again to move this provider to another host.".into(),
                ));
            }
            self.check_host(&base_url).await?;
            current.base_url = base_url.as_str().to_owned();
        }
        if let Some(key) = new_key {
            current.sealed_key = self.cipher.seal(key.expose(), &provider_aad(ws.as_str(), id))?;
            current.key_last4 = key.last4();
            current.key_status = KeyStatus::Ok.as_str().into();
        }
        if let Some(priority) = patch.priority {
            current.priority = Priority::parse(Some(priority))?.get();
        }
        if let Some(enabled) = patch.enabled {
            current.enabled = enabled;
        }
        if patch.models.is_some() {
            current.models = ModelAllowList::parse(patch.models.take())?.into_inner();
        }
        if patch.aliases.is_some() {
            current.aliases = Aliases::parse(patch.aliases.take())?.into_stored();
        }
        if let Some(on) = patch.auto_cache {
            current.auto_cache = Some(on);
        }
        if let Some(refuse) = patch.refuse_hosted_tools {
            current.refuse_hosted_tools = Some(refuse);
        }
        if let Some(version) = patch.api_version.as_deref() {
            current.api_version = ApiVersion::parse(kind, Some(version))?;
        }
        if let Some(region) = patch.region.as_deref() {
            current.region = Region::parse(kind, Some(region))?;
        }
        if url_changed {
            // A key that failed against the old URL may work against the new one.
            current.key_status = KeyStatus::Ok.as_str().into();
        }
        current.updated_at = now_ms();
        self.db
            .query(
                "UPDATE type::record('provider', $id) MERGE {
                    label: $label, base_url: $base_url, sealed_key: $sealed_key, key_last4: $key_last4,
                    priority: $priority, enabled: $enabled, models: $models, aliases: $aliases,
                    auto_cache: $auto_cache, refuse_hosted_tools: $refuse_hosted_tools, api_version: $api_version,
                    region: $region, key_status: $key_status, updated_at: $now
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
            .bind(("aliases", current.aliases.clone()))
            .bind(("auto_cache", current.auto_cache))
            .bind(("refuse_hosted_tools", current.refuse_hosted_tools))
            .bind(("api_version", current.api_version.clone()))
            .bind(("region", current.region.clone()))
            .bind(("key_status", current.key_status.clone()))
            .bind(("now", current.updated_at))
            .await?
            .check()?;
        self.changed(ws, id);
        current.view()
    }

    /// Removes a provider (owners only).
    pub async fn delete(&self, owner: &OwnerScope, id: &str) -> Result<(), ServiceError> {
        let ws = owner.workspace();
        self.row(ws, id).await?;
        self.db
            .query("DELETE type::record('provider', $id) WHERE workspace = $ws RETURN NONE")
            .bind(("id", id.to_owned()))
            .bind(("ws", ws.as_str().to_owned()))
            .await?
            .check()?;
        self.changed(ws, id);
        Ok(())
    }
}
