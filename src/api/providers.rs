//! `/api/v1/providers`: list, create, read, update, delete, test. Keys appear only masked.

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use app::server::{AppState, providers};
use app::types::{NewProvider, ProviderPatch, ProviderTestResult, ProviderView};

use super::{ApiAuth, ApiError, ApiJson, created};

#[derive(Serialize)]
pub struct ProviderList {
    data: Vec<ProviderView>,
}

pub async fn list(State(state): State<AppState>, auth: ApiAuth) -> Result<axum::Json<ProviderList>, ApiError> {
    Ok(axum::Json(ProviderList { data: providers::list(&state.db, &auth.workspace).await? }))
}

pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiJson(body): ApiJson<NewProvider>,
) -> Result<Response, ApiError> {
    let allow_private = state.settings.upstream.allow_private;
    let provider =
        providers::create(&state.db, &state.cipher, &state.caches, allow_private, &auth.workspace, body).await?;
    Ok(created(provider))
}

pub async fn get(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<ProviderView>, ApiError> {
    Ok(axum::Json(providers::get(&state.db, &auth.workspace, &id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProviderPatch>,
) -> Result<axum::Json<ProviderView>, ApiError> {
    let allow_private = state.settings.upstream.allow_private;
    let provider =
        providers::update(&state.db, &state.cipher, &state.caches, allow_private, &auth.workspace, &id, body).await?;
    Ok(axum::Json(provider))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    providers::delete(&state.db, &state.caches, &auth.workspace, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn test(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<ProviderTestResult>, ApiError> {
    let allow_private = state.settings.upstream.allow_private;
    Ok(axum::Json(providers::test(&state.db, &state.cipher, &state.http, allow_private, &auth.workspace, &id).await?))
}
