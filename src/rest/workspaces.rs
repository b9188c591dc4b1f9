//! `GET /api/v1/workspaces` and `POST /api/v1/workspaces`.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use perpetuo_core::AppState;
use perpetuo_types::WorkspaceView;

use super::{ApiAuth, ApiError, ApiJson, created};

#[derive(Serialize)]
pub struct WorkspaceList {
    data: Vec<WorkspaceView>,
    current: String,
}

pub async fn list(State(state): State<AppState>, auth: ApiAuth) -> Result<axum::Json<WorkspaceList>, ApiError> {
    let data = state.workspaces().list_for_user(&auth.user_id).await?;
    Ok(axum::Json(WorkspaceList { data, current: auth.workspace.as_str().to_owned() }))
}

#[derive(Deserialize)]
pub struct NewWorkspace {
    name: String,
}

pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth,
    ApiJson(body): ApiJson<NewWorkspace>,
) -> Result<Response, ApiError> {
    let workspace = state.workspaces().create(&auth.user_id, &body.name).await?;
    Ok(created(workspace))
}
