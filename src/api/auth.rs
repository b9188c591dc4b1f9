//! `POST /api/v1/auth/signup` and `POST /api/v1/auth/token`.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use app::server::ratelimit::ClientIp;
use app::server::{AppState, ServiceError, accounts, workspaces};
use app::types::{UserView, WorkspaceView};

use super::{ApiError, ApiJson, created};

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
    #[serde(default)]
    workspace_id: Option<String>,
}

#[derive(Serialize)]
struct SignupResponse {
    user: UserView,
    workspace: WorkspaceView,
    token: String,
}

#[derive(Serialize)]
pub struct TokenResponse {
    token: String,
    expires_at: i64,
    workspace: WorkspaceView,
}

fn login_limit(state: &AppState, ip: ClientIp, email: &str) -> Result<(), ApiError> {
    let decision = state.limiters.check_login(ip.0, email);
    if decision.allowed {
        Ok(())
    } else {
        state.metrics.rate_limited("login");
        Err(ServiceError::RateLimited { retry_after: decision.retry_after }.into())
    }
}

pub async fn signup(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    login_limit(&state, ip, &body.email)?;
    let (user, workspace) = accounts::sign_up(&state.db, &body.email, &body.password).await?;
    let (token, _) = state.jwt.issue(&user.id, &workspace.id)?;
    Ok(created(SignupResponse { user, workspace, token }))
}

pub async fn token(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    login_limit(&state, ip, &body.email)?;
    let user = accounts::authenticate(&state.db, &body.email, &body.password).await?;
    let workspace = match body.workspace_id.as_deref() {
        // Someone else's (or no) workspace: the same 401 as a bad password, no oracle.
        Some(id) => workspaces::authorize(&state.db, &user.id, id).await.map_err(|e| match e {
            ServiceError::NotFound(_) => ServiceError::InvalidCredentials,
            other => other,
        })?,
        None => accounts::default_workspace(&state.db, &user.id).await?,
    };
    let view = workspaces::view(&state.db, &workspace).await?;
    let (token, expires_at) = state.jwt.issue(&user.id, workspace.as_str())?;
    Ok(axum::Json(TokenResponse { token, expires_at, workspace: view }))
}
