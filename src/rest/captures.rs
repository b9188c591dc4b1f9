//! `/api/v1/capture`: the workspace's body capture policy (read by members, set by an owner with
//! `PUT`), and `/api/v1/keys/{id}/capture`: a key's own choice (`inherit`, `always`, `never`),
//! set by an owner. A call's captured bodies are read with the call (`GET /api/v1/requests/{id}`).

use axum::extract::{Path, State};
use http::StatusCode;

use perpetuo_core::{AppState, ServiceError};
use perpetuo_types::{CapturePolicy, CapturePolicyInput, KeyCapture, KeyCaptureInput};

use super::{ApiAuth, ApiError, ApiJson, ApiOwner};

pub async fn get(State(state): State<AppState>, auth: ApiAuth) -> Result<axum::Json<CapturePolicy>, ApiError> {
    Ok(axum::Json(state.captures().policy(&auth.workspace).await?))
}

pub async fn set(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    ApiJson(input): ApiJson<CapturePolicyInput>,
) -> Result<axum::Json<CapturePolicy>, ApiError> {
    let policy = input.parse().map_err(ServiceError::Invalid)?;
    Ok(axum::Json(state.captures().set_policy(&owner, policy).await?))
}

pub async fn set_key(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<KeyCaptureInput>,
) -> Result<StatusCode, ApiError> {
    let capture = KeyCapture::parse(&input.capture).map_err(ServiceError::Invalid)?;
    state.keys().set_capture(&owner, &id, capture).await?;
    Ok(StatusCode::NO_CONTENT)
}
