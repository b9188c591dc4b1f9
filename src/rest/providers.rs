//! `/api/v1/providers`: list, create, read, update, delete, test. Keys appear only masked.

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use app::server::AppState;
use app::types::{NewProvider, ProviderPatch, ProviderTestResult, ProviderView};

use super::{ApiAuth, ApiError, ApiJson, created};

#[derive(Serialize)]
pub struct ProviderList {
    data: Vec<ProviderView>,
}

pub async fn list(State(state): State<AppState>, auth: ApiAuth) -> Result<axum::Json<ProviderList>, ApiError> {
    Ok(axum::Json(ProviderList { data: state.providers().list(&auth.workspace).await? }))
}

pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiJson(body): ApiJson<NewProvider>,
) -> Result<Response, ApiError> {
    state.workspaces().require_owner(&auth.user_id, &auth.workspace).await?;
    let provider = state.providers().create(&auth.workspace, body).await?;
    Ok(created(provider))
}

pub async fn get(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<ProviderView>, ApiError> {
    Ok(axum::Json(state.providers().get(&auth.workspace, &id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProviderPatch>,
) -> Result<axum::Json<ProviderView>, ApiError> {
    state.workspaces().require_owner(&auth.user_id, &auth.workspace).await?;
    let provider = state.providers().update(&auth.workspace, &id, body).await?;
    Ok(axum::Json(provider))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.workspaces().require_owner(&auth.user_id, &auth.workspace).await?;
    state.providers().delete(&auth.workspace, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<ProviderTestResult>, ApiError> {
    Ok(axum::Json(state.providers().test(&auth.workspace, &id).await?))
}
