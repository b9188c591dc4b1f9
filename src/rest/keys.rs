//! `/api/v1/keys`: list, create (the only answer that carries the token), revoke, delete.

use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use perpetuo_core::AppState;
use perpetuo_types::{ApiKeyView, NewApiKey};

use super::{ApiError, ApiJson, ApiMember, created};

#[derive(Serialize)]
pub struct KeyList {
    data: Vec<ApiKeyView>,
}

pub async fn list(State(state): State<AppState>, ApiMember(who): ApiMember) -> Result<axum::Json<KeyList>, ApiError> {
    Ok(axum::Json(KeyList { data: state.keys().list(&who).await? }))
}

pub async fn create(
    State(state): State<AppState>,
    ApiMember(who): ApiMember,
    ApiJson(body): ApiJson<NewApiKey>,
) -> Result<Response, ApiError> {
    Ok(created(state.create_key(&who, body).await?))
}

pub async fn revoke(
    State(state): State<AppState>,
    ApiMember(who): ApiMember,
    Path(id): Path<String>,
) -> Result<axum::Json<ApiKeyView>, ApiError> {
    Ok(axum::Json(state.keys().revoke(&who, &id).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    ApiMember(who): ApiMember,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.keys().delete(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
