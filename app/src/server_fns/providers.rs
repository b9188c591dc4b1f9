//! The providers tab: provider accounts of the workspace.
#![allow(clippy::too_many_arguments, reason = "server functions take one argument per form field")]

use leptos::prelude::*;

use crate::error::AppError;
use perpetuo_types::{ProviderTestResult, ProviderView};

#[cfg(feature = "ssr")]
use {
    super::ctx,
    perpetuo_types::{NewProvider, ProviderPatch, given},
};

#[cfg(feature = "ssr")]
fn parse_priority(field: Option<String>) -> Result<Option<i64>, AppError> {
    given(field.as_deref())
        .map(|p| {
            p.parse::<i64>()
                .map_err(|_| AppError::Invalid("Priority must be a whole number (lower is tried first).".into()))
        })
        .transpose()
}

/// A model allow-list typed as text: names separated by commas, spaces or new lines.
#[cfg(feature = "ssr")]
fn parse_model_list(field: Option<String>) -> Vec<String> {
    field
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Model aliases typed as text: one `name = model` per line (or separated by commas).
#[cfg(feature = "ssr")]
fn parse_aliases(field: Option<String>) -> Result<std::collections::BTreeMap<String, String>, AppError> {
    field
        .unwrap_or_default()
        .split(['\n', ','])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, model) = line.split_once('=').ok_or_else(|| {
                AppError::Invalid(format!("Write each alias as `name = model` (`{line}` has no `=`)."))
            })?;
            Ok((name.trim().to_owned(), model.trim().to_owned()))
        })
        .collect()
}

#[server(prefix = "/fn", endpoint = "list_providers")]
pub async fn list_providers() -> Result<Vec<ProviderView>, AppError> {
    let (state, ws) = ctx::workspace_scope().await?;
    Ok(state.provider_views(&ws).await?)
}

#[server(prefix = "/fn", endpoint = "create_provider")]
pub async fn create_provider(
    label: String,
    kind: String,
    base_url: Option<String>,
    api_key: String,
    priority: Option<String>,
    models: Option<String>,
    aliases: Option<String>,
    auto_cache: Option<String>,
    refuse_hosted_tools: Option<String>,
    api_version: Option<String>,
    region: Option<String>,
) -> Result<ProviderView, AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    let models = parse_model_list(models);
    let aliases = parse_aliases(aliases)?;
    let input = NewProvider {
        label,
        kind,
        base_url: given(base_url.as_deref()),
        api_key,
        priority: parse_priority(priority)?,
        enabled: Some(true),
        models: if models.is_empty() { None } else { Some(models) },
        aliases: Some(aliases),
        // Checkboxes: present when ticked.
        auto_cache: Some(auto_cache.is_some()),
        refuse_hosted_tools: Some(refuse_hosted_tools.is_some()),
        api_version: given(api_version.as_deref()),
        region: given(region.as_deref()),
    };
    Ok(state.providers().create(&owner, input).await?)
}

/// Edits a provider. An empty key field keeps the stored key.
#[server(prefix = "/fn", endpoint = "update_provider")]
pub async fn update_provider(
    id: String,
    label: String,
    base_url: Option<String>,
    api_key: Option<String>,
    priority: Option<String>,
    enabled: Option<String>,
    models: Option<String>,
    aliases: Option<String>,
    auto_cache: Option<String>,
    refuse_hosted_tools: Option<String>,
    api_version: Option<String>,
    region: Option<String>,
) -> Result<ProviderView, AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    let patch = ProviderPatch {
        label: Some(label),
        base_url: Some(base_url.unwrap_or_default()),
        api_key: given(api_key.as_deref()),
        priority: parse_priority(priority)?,
        enabled: Some(enabled.is_some()),
        models: Some(parse_model_list(models)),
        aliases: Some(parse_aliases(aliases)?),
        auto_cache: Some(auto_cache.is_some()),
        refuse_hosted_tools: Some(refuse_hosted_tools.is_some()),
        api_version: Some(api_version.unwrap_or_default()),
        region: Some(region.unwrap_or_default()),
    };
    Ok(state.providers().update(&owner, &id, patch).await?)
}

#[server(prefix = "/fn", endpoint = "delete_provider")]
pub async fn delete_provider(id: String) -> Result<(), AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    Ok(state.providers().delete(&owner, &id).await?)
}

/// Calls the provider's model list with the stored key. Without JavaScript the result comes back
/// through the session, shown once on the next render of the page.
#[server(prefix = "/fn", endpoint = "test_provider")]
pub async fn test_provider(id: String) -> Result<ProviderTestResult, AppError> {
    let (state, ws) = ctx::workspace_scope().await?;
    let result = state.providers().test(&ws, &id).await?;
    if ctx::is_plain_form_post() {
        ctx::stash_test_result(&result).await?;
        leptos_axum::redirect("/providers?tested=1");
    }
    Ok(result)
}

/// The outcome of a "Test" posted without JavaScript, once.
#[server(prefix = "/fn", endpoint = "take_test_result")]
pub async fn take_test_result() -> Result<Option<(bool, String)>, AppError> {
    ctx::take_test_result().await
}
