//! `/api/v1/keys`: list, create (the only answer that carries the token), revoke, delete.

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use app::server::AppState;
use app::types::{ApiKeyView, NewApiKey};

use super::{ApiAuth, ApiError, ApiJson, created};

#[derive(Serialize)]
pub struct KeyList {
    data: Vec<ApiKeyView>,
}

pub async fn list(State(state): State<AppState>, auth: ApiAuth) -> Result<axum::Json<KeyList>, ApiError> {
    Ok(axum::Json(KeyList { data: state.keys().list(&auth.workspace).await? }))
}

pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiJson(body): ApiJson<NewApiKey>,
) -> Result<Response, ApiError> {
    Ok(created(state.keys().create(&auth.workspace, body).await?))
}

pub async fn revoke(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> Result<axum::Json<ApiKeyView>, ApiError> {
    Ok(axum::Json(state.keys().revoke(&auth.workspace, &id).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: ApiAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.keys().delete(&auth.workspace, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
