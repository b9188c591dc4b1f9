//! Perpetuo API keys of a workspace: created (token shown once), listed, revoked, deleted, and
//! looked up by hash on the gateway's hot path through the cache.

use surrealdb::types::SurrealValue;

use super::cache::{CachedKey, Caches};
use super::db::{Db, new_id, now_ms};
use super::error::ServiceError;
use super::tokens;
use super::workspaces::WorkspaceId;
use crate::types::{ApiKeyView, CreatedApiKey, KeyState, NewApiKey};

const MAX_RATE_LIMIT: u32 = 1_000_000;

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
}

const COLUMNS: &str =
    "record::id(id) AS id, name, hash, preview, created_at, expires_at, revoked_at, last_used_at, rate_limit_per_min";

impl Row {
    fn view(&self) -> ApiKeyView {
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
        }
    }
}

fn parse_name(raw: &str) -> Result<String, ServiceError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(ServiceError::Invalid("Give the key a name of 1 to 80 characters.".into()));
    }
    Ok(name.to_owned())
}

pub async fn create(db: &Db, ws: &WorkspaceId, input: NewApiKey) -> Result<CreatedApiKey, ServiceError> {
    let name = parse_name(&input.name)?;
    let now = now_ms();
    let expires_at = match (input.expires_in_days, input.expires_at) {
        (Some(_), Some(_)) => {
            return Err(ServiceError::Invalid("Give either expires_in_days or expires_at, not both.".into()));
        }
        (Some(0), None) => {
            return Err(ServiceError::Invalid("Expiry must be at least one day away.".into()));
        }
        (Some(days), None) if days <= 3650 => Some(now + i64::from(days) * 86_400_000),
        (Some(_), None) => {
            return Err(ServiceError::Invalid("Expiry can be at most 3650 days away.".into()));
        }
        (None, Some(at)) if at > now => Some(at),
        (None, Some(_)) => {
            return Err(ServiceError::Invalid("Expiry must be in the future.".into()));
        }
        (None, None) => None,
    };
    let rate_limit = match input.rate_limit_per_min {
        None => None,
        Some(n) if (1..=MAX_RATE_LIMIT).contains(&n) => Some(n),
        Some(_) => {
            return Err(ServiceError::Invalid(format!(
                "The rate limit must be between 1 and {MAX_RATE_LIMIT} requests per minute."
            )));
        }
    };
    let token = tokens::generate()?;
    let id = new_id();
    db.query(
        "CREATE type::record('api_key', $id) CONTENT {
            workspace: $ws, name: $name, hash: $hash, preview: $preview, created_at: $now,
            expires_at: $expires_at, revoked_at: NONE, last_used_at: NONE, rate_limit_per_min: $rate_limit
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
    .await?
    .check()?;
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
    };
    Ok(CreatedApiKey { key, token: token.token.clone() })
}

pub async fn list(db: &Db, ws: &WorkspaceId) -> Result<Vec<ApiKeyView>, ServiceError> {
    let mut response = db
        .query(format!("SELECT {COLUMNS} FROM api_key WHERE workspace = $ws ORDER BY created_at DESC"))
        .bind(("ws", ws.as_str().to_owned()))
        .await?;
    let rows: Vec<Row> = response.take(0)?;
    Ok(rows.iter().map(Row::view).collect())
}

async fn row(db: &Db, ws: &WorkspaceId, id: &str) -> Result<Row, ServiceError> {
    let mut response = db
        .query(format!("SELECT {COLUMNS} FROM type::record('api_key', $id) WHERE workspace = $ws"))
        .bind(("id", id.to_owned()))
        .bind(("ws", ws.as_str().to_owned()))
        .await?;
    response.take::<Option<Row>>(0)?.ok_or(ServiceError::NotFound("API key"))
}

/// Revokes a key; the very next gateway request with it is refused.
pub async fn revoke(db: &Db, caches: &Caches, ws: &WorkspaceId, id: &str) -> Result<ApiKeyView, ServiceError> {
    let mut current = row(db, ws, id).await?;
    if current.revoked_at.is_none() {
        let now = now_ms();
        db.query("UPDATE type::record('api_key', $id) SET revoked_at = $now WHERE workspace = $ws RETURN NONE")
            .bind(("id", id.to_owned()))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("now", now))
            .await?
            .check()?;
        current.revoked_at = Some(now);
    }
    caches.invalidate_key(&current.hash);
    Ok(current.view())
}

pub async fn delete(db: &Db, caches: &Caches, ws: &WorkspaceId, id: &str) -> Result<(), ServiceError> {
    let current = row(db, ws, id).await?;
    db.query("DELETE type::record('api_key', $id) WHERE workspace = $ws RETURN NONE")
        .bind(("id", id.to_owned()))
        .bind(("ws", ws.as_str().to_owned()))
        .await?
        .check()?;
    caches.invalidate_key(&current.hash);
    Ok(())
}

/// Why a presented key was refused (all answer 401; the message differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    Missing,
    Unknown,
    Revoked,
    Expired,
}

/// The gateway's lookup: the cache first, the database on a miss. Malformed tokens never reach
/// the database.
pub async fn authenticate(
    db: &Db,
    caches: &Caches,
    token: &str,
) -> Result<Result<CachedKey, KeyRejection>, ServiceError> {
    if !tokens::looks_like_token(token) {
        return Ok(Err(KeyRejection::Unknown));
    }
    let hash = tokens::hash(token);
    let key = match caches.key(&hash) {
        Some(key) => key,
        None => {
            let seen = caches.generation();
            #[derive(SurrealValue)]
            struct KeyRow {
                id: String,
                name: String,
                workspace: String,
                expires_at: Option<i64>,
                revoked_at: Option<i64>,
                rate_limit_per_min: Option<i64>,
            }
            let mut response = db
                .query("SELECT record::id(id) AS id, name, workspace, expires_at, revoked_at, rate_limit_per_min FROM api_key WHERE hash = $hash LIMIT 1")
                .bind(("hash", hash.clone()))
                .await?;
            let Some(row) = response.take::<Option<KeyRow>>(0)? else {
                return Ok(Err(KeyRejection::Unknown));
            };
            let key = CachedKey::new(
                row.id,
                row.name,
                WorkspaceId::trusted(row.workspace),
                row.expires_at,
                row.revoked_at.is_some(),
                row.rate_limit_per_min.and_then(|v| u32::try_from(v).ok()),
            );
            caches.put_key(hash, key.clone(), seen);
            key
        }
    };
    if key.revoked {
        return Ok(Err(KeyRejection::Revoked));
    }
    if key.expires_at.is_some_and(|at| at <= now_ms()) {
        return Ok(Err(KeyRejection::Expired));
    }
    Ok(Ok(key))
}
