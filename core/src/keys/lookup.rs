//! The gateway's side of keys: a presented key looked up (cache first, the database within a
//! budget for unknown hashes), and last-use times gathered and written in batches.

use super::*;

impl ApiKeys {
    /// The gateway's lookup: the cache first, the database on a miss; then revocation and expiry.
    pub async fn authenticate(&self, token: &ApiKeyToken) -> Result<CachedKey, KeyError> {
        let hash = token.hash();
        let key = match self.cache.slots.get(&hash) {
            Some(key) => key,
            None => {
                if self.cache.unknown.get(&hash).is_some() {
                    return Err(KeyRejection::Unknown.into());
                }
                if !self.cache.worth_a_lookup(&hash) {
                    self.cache.refused_unlooked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Err(KeyRejection::Unknown.into());
                }
                match tokio::time::timeout(crate::platform::db::CALL_TIMEOUT, self.load(hash)).await {
                    Ok(loaded) => loaded?,
                    Err(_) => return Err(KeyError::Service(ServiceError::Unavailable)),
                }
            }
        };
        if key.revoked {
            return Err(KeyRejection::Revoked.into());
        }
        if key.expires_at.is_some_and(|at| at <= self.clock.now_ms()) {
            return Err(KeyRejection::Expired.into());
        }
        Ok(key)
    }

    async fn load(&self, hash: String) -> Result<CachedKey, KeyError> {
        #[derive(SurrealValue)]
        struct KeyRow {
            id: String,
            name: String,
            workspace: String,
            expires_at: Option<i64>,
            revoked_at: Option<i64>,
            rate_limit_per_min: Option<i64>,
            capture: Option<String>,
        }
        let seen = self.cache.slots.generation();
        let unknown_seen = self.cache.unknown.generation();
        self.cache.lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut response = self
            .db
            .query("SELECT record::id(id) AS id, name, workspace, expires_at, revoked_at, rate_limit_per_min, capture FROM api_key WHERE hash = $hash LIMIT 1")
            .bind(("hash", hash.clone()))
            .await
            .map_err(ServiceError::from)?;
        let Some(row) = response.take::<Option<KeyRow>>(0).map_err(ServiceError::from)? else {
            self.cache.unknown.put(hash, (), unknown_seen);
            return Err(KeyRejection::Unknown.into());
        };
        let key = CachedKey {
            id: row.id,
            name: row.name,
            workspace: WorkspaceId::trusted(row.workspace),
            expires_at: row.expires_at,
            revoked: row.revoked_at.is_some(),
            rate_limit_per_min: row.rate_limit_per_min.and_then(|v| u32::try_from(v).ok()),
            capture: super::stored_capture(row.capture.as_deref()),
        };
        self.cache.slots.put(hash, key.clone(), seen);
        Ok(key)
    }

    /// Notes a key's use; written to the database by [`ApiKeys::flush_last_used`], not per request.
    pub fn touch(&self, key_id: &str, at_ms: i64) {
        match self.cache.last_used.get_mut(key_id) {
            Some(mut t) => *t = (*t).max(at_ms),
            None => {
                self.cache.last_used.insert(key_id.to_owned(), at_ms);
            }
        }
    }

    /// Writes the pending last-use times in one query.
    pub async fn flush_last_used(&self) -> Result<usize, ServiceError> {
        let pending: Vec<(String, i64)> = self.cache.last_used.iter().map(|e| (e.key().clone(), *e.value())).collect();
        if pending.is_empty() {
            return Ok(0);
        }
        for (id, ts) in &pending {
            self.cache.last_used.remove_if(id, |_, v| v == ts);
        }
        let updates: Vec<serde_json::Value> =
            pending.iter().map(|(id, ts)| serde_json::json!({ "id": id, "ts": ts })).collect();
        self.db
            .query(
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
