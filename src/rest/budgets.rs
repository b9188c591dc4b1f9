//! `/api/v1/budgets`: the workspace's budgets with their current period; the workspace's own
//! budget and each key's (`/api/v1/keys/{id}/budget`) are set with `PUT` and removed with
//! `DELETE` by an owner.

use axum::extract::{Path, State};
use http::StatusCode;
use serde::Serialize;

use perpetuo_core::AppState;
use perpetuo_types::{BudgetInput, BudgetScope, BudgetView};

use super::{ApiAuth, ApiError, ApiJson, ApiOwner};
use perpetuo_core::workspaces::OwnerScope;

#[derive(Serialize)]
pub struct BudgetList {
    data: Vec<BudgetView>,
}

pub async fn list(State(state): State<AppState>, auth: ApiAuth) -> Result<axum::Json<BudgetList>, ApiError> {
    Ok(axum::Json(BudgetList { data: state.budget_views(&auth.workspace).await? }))
}

async fn set(
    state: &AppState,
    owner: &OwnerScope,
    scope: BudgetScope,
    input: &BudgetInput,
) -> Result<BudgetView, ApiError> {
    state.budgets().set(owner, &scope, input).await?;
    let views = state.budget_views(owner.workspace()).await?;
    let view = views.into_iter().find(|v| v.scope == scope);
    Ok(view.ok_or(perpetuo_core::ServiceError::NotFound("budget"))?)
}

async fn remove(state: &AppState, owner: &OwnerScope, scope: BudgetScope) -> Result<StatusCode, ApiError> {
    state.budgets().remove(owner, &scope).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_workspace(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    ApiJson(input): ApiJson<BudgetInput>,
) -> Result<axum::Json<BudgetView>, ApiError> {
    Ok(axum::Json(set(&state, &owner, BudgetScope::Workspace, &input).await?))
}

pub async fn remove_workspace(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
) -> Result<StatusCode, ApiError> {
    remove(&state, &owner, BudgetScope::Workspace).await
}

pub async fn set_key(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<BudgetInput>,
) -> Result<axum::Json<BudgetView>, ApiError> {
    Ok(axum::Json(set(&state, &owner, BudgetScope::Key(id), &input).await?))
}

pub async fn remove_key(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &owner, BudgetScope::Key(id)).await
}

/// `PUT /api/v1/budgets/new-keys`: the budget every API key created from now on gets.
pub async fn set_new_keys(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    ApiJson(input): ApiJson<BudgetInput>,
) -> Result<axum::Json<BudgetView>, ApiError> {
    Ok(axum::Json(set(&state, &owner, BudgetScope::NewKeys, &input).await?))
}

pub async fn remove_new_keys(State(state): State<AppState>, ApiOwner(owner): ApiOwner) -> Result<StatusCode, ApiError> {
    remove(&state, &owner, BudgetScope::NewKeys).await
}
