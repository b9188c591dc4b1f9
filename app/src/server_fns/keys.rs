//! The API keys tab: list, create (the token shown once), revoke, delete.

use leptos::prelude::*;

use crate::error::AppError;
use perpetuo_types::{ApiKeyView, CreatedApiKey};

#[cfg(feature = "ssr")]
use {super::ctx, perpetuo_types::NewApiKey};

#[cfg(feature = "ssr")]
fn optional_number<T: std::str::FromStr>(field: Option<String>, what: &str) -> Result<Option<T>, AppError> {
    match field.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => {
            raw.parse::<T>().map(Some).map_err(|_| AppError::Invalid(format!("{what} must be a whole number.")))
        }
    }
}

/// How to try a key: this server's address, and a model the workspace's first provider serves
/// (`None` with no enabled provider yet).
#[server(prefix = "/fn", endpoint = "first_call")]
pub async fn first_call() -> Result<(String, Option<String>), AppError> {
    let (state, ws) = ctx::workspace_scope().await?;
    let providers = state.providers().list(&ws).await?;
    Ok((ctx::public_base(&state), perpetuo_types::first_call_model(&providers)))
}

#[server(prefix = "/fn", endpoint = "list_keys")]
pub async fn list_keys() -> Result<Vec<ApiKeyView>, AppError> {
    let (state, who) = ctx::member_scope().await?;
    Ok(state.keys().list(&who).await?)
}

/// Creates a key. The token is in the answer and nowhere else; a browser without JavaScript gets
/// it once through the session, sealed, on the page it returns to.
#[server(prefix = "/fn", endpoint = "create_key")]
pub async fn create_key(
    name: String,
    expires_in_days: Option<String>,
    rate_limit_per_min: Option<String>,
) -> Result<CreatedApiKey, AppError> {
    let (state, who) = ctx::member_scope().await?;
    let input = NewApiKey {
        name,
        expires_in_days: optional_number(expires_in_days, "Expiry (days)")?,
        expires_at: None,
        rate_limit_per_min: optional_number(rate_limit_per_min, "The rate limit")?,
    };
    let created = state.create_key(&who, input).await?;
    if ctx::is_plain_form_post() {
        ctx::stash_created_key(&state, &created).await?;
    }
    Ok(created)
}

/// The key created by the last no-JavaScript form post, once; `None` afterwards.
#[server(prefix = "/fn", endpoint = "take_created_key")]
pub async fn take_created_key() -> Result<Option<CreatedApiKey>, AppError> {
    let state = ctx::state()?;
    ctx::take_created_key(&state).await
}

#[server(prefix = "/fn", endpoint = "revoke_key")]
pub async fn revoke_key(id: String) -> Result<ApiKeyView, AppError> {
    let (state, who) = ctx::member_scope().await?;
    Ok(state.keys().revoke(&who, &id).await?)
}

#[server(prefix = "/fn", endpoint = "delete_key")]
pub async fn delete_key(id: String) -> Result<(), AppError> {
    let (state, who) = ctx::member_scope().await?;
    Ok(state.keys().delete(&who, &id).await?)
}
