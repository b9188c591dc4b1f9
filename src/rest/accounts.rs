//! `POST /api/v1/auth/signup` and `POST /api/v1/auth/token`.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use perpetuo_core::accounts::SignUp;
use perpetuo_core::platform::rate::ClientIp;
use perpetuo_core::{AppState, ServiceError};
use perpetuo_types::{UserView, WorkspaceView};

use super::extract::ApiAuth;
use super::{ApiError, ApiJson, ApiOwner, created};
use http::StatusCode;

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
    #[serde(default)]
    workspace_id: Option<String>,
    /// An invite token (`inv_...`), from an invite link: the account joins that workspace.
    #[serde(default)]
    invite: Option<String>,
    /// The setup code: only the first account on a server whose sign-up is not open needs it.
    #[serde(default)]
    setup_code: Option<String>,
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

pub async fn signup(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let form = SignUp {
        invite: body.invite.as_deref(),
        setup_code: body.setup_code.as_deref(),
        ..SignUp::new(&body.email, &body.password)
    };
    let (user, workspace) = state.accounts().sign_up(ip.0, form).await?;
    let generation = state.accounts().generation(&user.id).await?;
    let (token, _) = state.jwt.issue(&user.id, &workspace.id, generation)?;
    Ok(created(SignupResponse { user, workspace, token }))
}

pub async fn token(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    let user = state.accounts().sign_in(ip.0, &body.email, &body.password).await?;
    let workspace = match body.workspace_id.as_deref() {
        // Someone else's (or no) workspace: the same 401 as a bad password, no oracle.
        Some(id) => state.workspaces().authorize(&user.id, id).await.map_err(|e| match e {
            ServiceError::NotFound(_) => ServiceError::InvalidCredentials,
            other => other,
        })?,
        None => state.accounts().default_workspace(&user.id).await?,
    };
    let view = state.workspaces().view(&workspace).await?;
    let generation = state.accounts().generation(&user.id).await?;
    let (token, expires_at) = state.jwt.issue(&user.id, workspace.as_str(), generation)?;
    Ok(axum::Json(TokenResponse { token, expires_at, workspace: view }))
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /api/v1/auth/password`: the current password, then the new one; every other token and
/// session ends, and a fresh token for this workspace comes back.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    auth: ApiAuth,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    let generation =
        state.accounts().change_password(ip.0, &auth.user_id, &body.current_password, &body.new_password).await?;
    let view = state.workspaces().view(&auth.workspace).await?;
    let (token, expires_at) = state.jwt.issue(&auth.user_id, auth.workspace.as_str(), generation)?;
    Ok(axum::Json(TokenResponse { token, expires_at, workspace: view }))
}

#[derive(Serialize)]
struct InviteCreated {
    token: String,
    /// The sign-up page with the invite filled in (relative to the server's address).
    path: String,
    /// The whole link, when `PUBLIC_URL` is set (`null` otherwise: the caller knows the address).
    url: Option<String>,
    expires_at: i64,
}

/// `POST /api/v1/invites`: an invite link to the caller's workspace (owners only); single use,
/// good for seven days.
pub async fn create_invite(State(state): State<AppState>, ApiOwner(owner): ApiOwner) -> Result<Response, ApiError> {
    let invite = state.accounts().invites().create(&owner).await?;
    let path = format!("/signup?invite={}", invite.token);
    let url = state.settings.public_url.as_ref().map(|base| format!("{base}{path}"));
    Ok(created(InviteCreated { token: invite.token, path, url, expires_at: invite.expires_at }))
}

#[derive(Serialize)]
pub struct InviteList {
    data: Vec<perpetuo_types::InviteView>,
}

/// `GET /api/v1/invites`: the workspace's open invites (owners only; never their tokens).
pub async fn list_invites(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
) -> Result<axum::Json<InviteList>, ApiError> {
    Ok(axum::Json(InviteList { data: state.accounts().invites().list(&owner).await? }))
}

/// `DELETE /api/v1/invites/{id}`: revokes an open invite (its link stops working).
pub async fn revoke_invite(
    State(state): State<AppState>,
    ApiOwner(owner): ApiOwner,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts().invites().revoke(&owner, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/auth/signout-all`: every session and API token of the caller ends, this one too.
pub async fn sign_out_everywhere(State(state): State<AppState>, auth: ApiAuth) -> Result<StatusCode, ApiError> {
    state.accounts().sign_out_everywhere(&auth.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
