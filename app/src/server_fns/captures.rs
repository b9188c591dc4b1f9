//! Body capture in the dashboard: the workspace's policy (read by members, set by owners on the
//! workspaces tab) and a key's own choice (set by owners on the keys tab).

use leptos::prelude::*;

use crate::error::AppError;
use perpetuo_types::CapturePolicy;

#[cfg(feature = "ssr")]
use {
    super::ctx,
    perpetuo_types::{CapturePolicyInput, KeyCapture},
};

#[server(prefix = "/fn", endpoint = "get_capture_policy")]
pub async fn get_capture_policy() -> Result<CapturePolicy, AppError> {
    let (state, ws) = ctx::workspace_scope().await?;
    Ok(state.captures().policy(&ws).await?)
}

/// Sets the policy from its form (an unticked box sends nothing: capture off).
#[server(prefix = "/fn", endpoint = "set_capture_policy")]
pub async fn set_capture_policy(
    enabled: Option<String>,
    sample_percent: String,
    retention_days: String,
) -> Result<(), AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    let number = |raw: &str, what: &str| {
        raw.trim().parse::<u32>().map_err(|_| AppError::Invalid(format!("The {what} must be a whole number.")))
    };
    let input = CapturePolicyInput {
        enabled: enabled.is_some(),
        sample_percent: Some(number(&sample_percent, "share of calls")?),
        retention_days: Some(number(&retention_days, "number of days")?),
    };
    let policy = input.parse().map_err(AppError::Invalid)?;
    state.captures().set_policy(&owner, policy).await?;
    Ok(())
}

#[server(prefix = "/fn", endpoint = "set_key_capture")]
pub async fn set_key_capture(id: String, capture: String) -> Result<(), AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    let capture = KeyCapture::parse(&capture).map_err(AppError::Invalid)?;
    Ok(state.keys().set_capture(&owner, &id, capture).await?)
}
