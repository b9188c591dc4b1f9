//! Limits in tokens and in flight in the dashboard: the workspace's, each key's and each
//! provider's, set and removed by owners, read by every member.

use leptos::prelude::*;

use crate::error::AppError;
use perpetuo_types::LimitView;

#[cfg(feature = "ssr")]
use {
    super::ctx,
    perpetuo_types::{LimitInput, LimitScope},
};

/// A whole number from a form field: blank is no such limit.
#[cfg(feature = "ssr")]
fn number<T: std::str::FromStr>(raw: Option<String>, what: &str) -> Result<Option<T>, AppError> {
    match raw.map(|s| s.trim().replace([',', '_', ' '], "")).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => raw
            .parse::<T>()
            .map(Some)
            .map_err(|_| AppError::Invalid(format!("The limit of {what} must be a whole number, such as 10000."))),
    }
}

#[server(prefix = "/fn", endpoint = "list_limits")]
pub async fn list_limits() -> Result<Vec<LimitView>, AppError> {
    let (state, ws) = ctx::workspace_scope().await?;
    Ok(state.limit_views(&ws).await?)
}

/// Sets a scope's limits from a form (`scope`: `workspace`, `key:<id>` or `provider:<id>`);
/// blank fields mean no such limit.
#[server(prefix = "/fn", endpoint = "set_limits")]
pub async fn set_limits(
    scope: String,
    input_tokens_per_min: Option<String>,
    output_tokens_per_min: Option<String>,
    tokens_per_min: Option<String>,
    max_in_flight: Option<String>,
) -> Result<(), AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    let input = LimitInput {
        input_tokens_per_min: number(input_tokens_per_min, "input tokens a minute")?,
        output_tokens_per_min: number(output_tokens_per_min, "output tokens a minute")?,
        tokens_per_min: number(tokens_per_min, "tokens a minute")?,
        max_in_flight: number(max_in_flight, "calls in flight")?,
    };
    Ok(state.limits().set(&owner, &LimitScope::parse_field(&scope), &input).await?)
}

#[server(prefix = "/fn", endpoint = "remove_limits")]
pub async fn remove_limits(scope: String) -> Result<(), AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    Ok(state.limits().remove(&owner, &LimitScope::parse_field(&scope)).await?)
}
