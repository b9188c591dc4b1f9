//! `/api/v1/limits`: the workspace's limits in tokens and in flight; the workspace's own, each
//! key's (`/api/v1/keys/{id}/limits`) and each provider's (`/api/v1/providers/{id}/limits`) are
//! set with `PUT` and removed with `DELETE` by an owner.

use axum::extract::{Path, State};
use http::StatusCode;
use serde::Serialize;

use perpetuo_core::AppState;
use perpetuo_core::workspaces::OwnerScope;
use perpetuo_types::{LimitInput, LimitScope, LimitView};

use super::{ApiAuth, ApiError, ApiJson, ApiOwner};

#[derive(Serialize)]
pub struct LimitList {
    data: Vec<LimitView>,
}

pub async fn list(State(state): State<AppState>, auth: ApiAuth) -> Result<axum::Json<LimitList>, ApiError> {
    Ok(axum::Json(LimitList { data: state.limit_views(&auth.workspace).await? }))
}

async fn set(
    state: &AppState,
    owner: &OwnerScope,
    scope: LimitScope,
    input: &LimitInput,
) -> Result<LimitView, ApiError> {
    state.limits().set(owner, &scope, input).await?;
    let views = state.limit_views(owner.workspace()).await?;
    let view = views.into_iter().find(|v| v.scope == scope);
    Ok(view.ok_or(perpetuo_core::ServiceError::NotFound("limit"))?)
}

async fn remove(state: &AppState, owner: &OwnerScope, scope: LimitScope) -> Result<StatusCode, ApiError> {
    state.limits().remove(owner, &scope).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_workspace(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    ApiJson(input): ApiJson<LimitInput>,
) -> Result<axum::Json<LimitView>, ApiError> {
    Ok(axum::Json(set(&state, &owner, LimitScope::Workspace, &input).await?))
}

pub async fn remove_workspace(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
) -> Result<StatusCode, ApiError> {
    remove(&state, &owner, LimitScope::Workspace).await
}

pub async fn set_key(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<LimitInput>,
) -> Result<axum::Json<LimitView>, ApiError> {
    Ok(axum::Json(set(&state, &owner, LimitScope::Key(id), &input).await?))
}

pub async fn remove_key(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &owner, LimitScope::Key(id)).await
}

pub async fn set_provider(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<LimitInput>,
) -> Result<axum::Json<LimitView>, ApiError> {
    Ok(axum::Json(set(&state, &owner, LimitScope::Provider(id), &input).await?))
}

pub async fn remove_provider(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &owner, LimitScope::Provider(id)).await
}

/// `PUT /api/v1/limits/new-keys`: the limits every API key created from now on gets.
pub async fn set_new_keys(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    ApiJson(input): ApiJson<LimitInput>,
) -> Result<axum::Json<LimitView>, ApiError> {
    Ok(axum::Json(set(&state, &owner, LimitScope::NewKeys, &input).await?))
}

pub async fn remove_new_keys(State(state): State<AppState>, ApiOwner(owner): ApiOwner) -> Result<StatusCode, ApiError> {
    remove(&state, &owner, LimitScope::NewKeys).await
}
