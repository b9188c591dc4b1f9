//! `/api/v1/providers`: list, create, read, update, delete, test. Keys appear only masked.

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use perpetuo_core::AppState;
use perpetuo_types::{NewProvider, ProviderPatch, ProviderTestResult, ProviderView};

use super::{ApiAuth, ApiError, ApiJson, ApiOwner, created};

#[derive(Serialize)]
pub struct ProviderList {
    data: Vec<ProviderView>,
}

pub async fn list(State(state): State<AppState>, auth: ApiAuth) -> Result<axum::Json<ProviderList>, ApiError> {
    Ok(axum::Json(ProviderList { data: state.provider_views(&auth.workspace).await? }))
}

pub async fn create(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    ApiJson(body): ApiJson<NewProvider>,
) -> Result<Response, ApiError> {
    let provider = state.providers().create(&owner, body).await?;
    Ok(created(provider))
}

pub async fn get(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<ProviderView>, ApiError> {
    Ok(axum::Json(state.provider_view(&auth.workspace, &id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProviderPatch>,
) -> Result<axum::Json<ProviderView>, ApiError> {
    let provider = state.providers().update(&owner, &id, body).await?;
    Ok(axum::Json(provider))
}

pub async fn delete(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.providers().delete(&owner, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<ProviderTestResult>, ApiError> {
    Ok(axum::Json(state.providers().test(&auth.workspace, &id).await?))
}
