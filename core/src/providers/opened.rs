//! What the gateway and the model list use: the enabled providers with their keys opened (cached),
//! a provider's test and the workspace's model list, a rejected key flagged, and every key resealed
//! after an encryption-key rotation.

use super::catalog::Credential;
use super::*;

impl Providers {
    /// The workspace's enabled providers with keys opened, in priority order, from the cache when
    /// it has them.
    pub async fn enabled(&self, ws: &WorkspaceId) -> Result<Arc<Vec<OpenedProvider>>, ServiceError> {
        if let Some(providers) = self.cache.enabled.get(ws.as_str()) {
            return Ok(providers);
        }
        let seen = self.cache.enabled.generation();
        let providers = Arc::new(crate::platform::db::bounded(self.open_enabled(ws)).await?);
        self.cache.enabled.put(ws.as_str().to_owned(), Arc::clone(&providers), seen);
        Ok(providers)
    }

    /// Every enabled provider of the workspace with its key opened. A record whose key cannot be
    /// opened, or whose base URL the current settings refuse (saved before private upstreams were
    /// turned off), is skipped and logged, not fatal to the others.
    async fn open_enabled(&self, ws: &WorkspaceId) -> Result<Vec<OpenedProvider>, ServiceError> {
        let mut opened = Vec::new();
        for row in self.rows(ws).await?.into_iter().filter(|r| r.enabled) {
            let id = row.id.clone();
            if BaseUrl::parse(&row.base_url, self.allow_private).is_err() {
                tracing::warn!(provider = %id, "provider base URL is not allowed by the current settings; skipping it");
                continue;
            }
            match self.open(ws, row) {
                Ok(provider) => opened.push(provider),
                Err(e) => tracing::error!(provider = %id, error = %e, "provider key cannot be opened; skipping it"),
            }
        }
        Ok(opened)
    }

    fn open(&self, ws: &WorkspaceId, row: Row) -> Result<OpenedProvider, ServiceError> {
        let key = self.cipher.open(&row.sealed_key, &provider_aad(ws.as_str(), &row.id))?;
        let kind = row.kind()?;
        let auth = catalog::dialect(kind).auth_headers(&key).into();
        let raw = key.expose_str().unwrap_or_default();
        let (mut tokens, mut project, mut signer) = (None, None, None);
        match catalog::of(kind).credential {
            Credential::ServiceAccount => {
                let open = || credentials::TokenSource::open_service_account(&key);
                tokens = Some(self.cache.tokens.get_or_open(&row.id, &key, open)?);
                project = credentials::project_of(&key);
            }
            Credential::ApiKeyOrEntra if credentials::is_entra(raw) => {
                let open = || credentials::TokenSource::open_entra(&key);
                tokens = Some(self.cache.tokens.get_or_open(&row.id, &key, open)?);
            }
            Credential::ApiKeyOrAccessKey if super::aws::is_access_key(raw) => {
                let region = row.region.as_deref().unwrap_or(super::dialects::bedrock::DEFAULT_REGION);
                signer = Some(Arc::new(super::aws::Signer::open(&key, region)?));
            }
            Credential::ApiKey | Credential::ApiKeyOrEntra | Credential::ApiKeyOrAccessKey => {}
        }
        Ok(OpenedProvider {
            kind,
            auth,
            id: row.id,
            label: row.label,
            base_url: row.base_url,
            key,
            priority: row.priority,
            enabled: row.enabled,
            aliases: Aliases::from_stored(row.aliases.as_deref()),
            translation: crate::protocols::TranslationOptions {
                auto_cache: row.auto_cache.unwrap_or(true),
                refuse_hosted_tools: row.refuse_hosted_tools.unwrap_or(false),
            },
            api_version: row.api_version,
            region: row.region,
            project,
            tokens,
            signer,
            models: row.models,
        })
    }

    /// Tests a provider's stored key against its model list.
    pub async fn test(&self, ws: &WorkspaceId, id: &str) -> Result<ProviderTestResult, ServiceError> {
        let row = self.row(ws, id).await?;
        let provider = self.open(ws, row)?;
        Ok(client::test_provider(&self.http, &provider, self.allow_private).await)
    }

    /// What the workspace's enabled providers can serve, for `GET /v1/models`: allow-lists as they
    /// are; other providers are asked for their own list (kept for five minutes).
    pub async fn models(&self, ws: &WorkspaceId) -> Result<Vec<ListedModel>, ServiceError> {
        let providers = self.enabled(ws).await?;
        let lookups = providers.iter().map(|provider| async move {
            if let Some(models) = &provider.models {
                return (provider.kind, Arc::new(models.clone()));
            }
            if let Some(list) = self.cache.model_lists.get(&provider.id) {
                return (provider.kind, list);
            }
            let seen = self.cache.model_lists.generation();
            let result = client::test_provider(&self.http, provider, self.allow_private).await;
            let list = Arc::new(result.models);
            if result.ok {
                self.cache.model_lists.put(provider.id.clone(), Arc::clone(&list), seen);
            }
            (provider.kind, list)
        });
        let mut listed = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Exact aliases first: names clients are meant to send (prefixes are not model names).
        for provider in providers.iter() {
            for name in provider.aliases.keys().filter(|n| !n.ends_with('*')) {
                if seen.insert(name.clone()) {
                    listed.push(ListedModel { id: name.clone(), owned_by: provider.kind });
                }
            }
        }
        for (kind, models) in futures::future::join_all(lookups).await {
            for model in models.iter() {
                if seen.insert(model.clone()) {
                    listed.push(ListedModel { id: model.clone(), owned_by: kind });
                }
            }
        }
        Ok(listed)
    }

    /// The provider refused its stored key (401/403): flag it for the dashboard.
    pub async fn flag_rejected(&self, ws: &WorkspaceId, id: &str) -> Result<(), ServiceError> {
        self.db
            .query("UPDATE type::record('provider', $id) SET key_status = $status WHERE workspace = $ws RETURN NONE")
            .bind(("id", id.to_owned()))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("status", KeyStatus::Rejected.as_str()))
            .await?
            .check()?;
        self.changed(ws, id);
        Ok(())
    }

    /// Re-seals every provider key not yet sealed with the current key. Returns how many changed.
    pub async fn reseal_all(&self) -> Result<usize, ServiceError> {
        #[derive(SurrealValue)]
        struct SealedRow {
            id: String,
            workspace: String,
            sealed_key: String,
        }
        let mut response = self.db.query("SELECT record::id(id) AS id, workspace, sealed_key FROM provider").await?;
        let rows: Vec<SealedRow> = response.take(0)?;
        let mut changed = 0;
        for row in rows.into_iter().filter(|r| !self.cipher.is_current(&r.sealed_key)) {
            let aad = provider_aad(&row.workspace, &row.id);
            let plain = self.cipher.open(&row.sealed_key, &aad)?;
            let sealed = self.cipher.seal(plain.expose(), &aad)?;
            self.db
                .query(
                    "UPDATE type::record('provider', $id) SET sealed_key = $sealed WHERE sealed_key = $old RETURN NONE",
                )
                .bind(("id", row.id))
                .bind(("sealed", sealed))
                .bind(("old", row.sealed_key))
                .await?
                .check()?;
            changed += 1;
        }
        Ok(changed)
    }
}
