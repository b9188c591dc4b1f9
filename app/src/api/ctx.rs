//! What every server function needs from the request: the state, the session, the signed-in user
//! and their current workspace (proven by a membership check), the client address.

use std::net::IpAddr;

use leptos::prelude::*;
use tower_sessions::Session;

use crate::error::AppError;
use crate::server::ratelimit::ClientIp;
use crate::server::sessions::{USER_ID, WORKSPACE_ID};
use crate::server::workspaces::{self, WorkspaceId};
use crate::server::{AppState, ServiceError};

pub fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server function context");
        AppError::Internal
    })
}

pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>().await.map_err(|e| {
        tracing::error!(error = %e, "session layer missing");
        AppError::Internal
    })
}

fn session_error(e: tower_sessions::session::Error) -> AppError {
    tracing::error!(error = %e, "session store failed");
    AppError::Internal
}

/// The signed-in user's id, or `Unauthenticated`.
pub async fn user_id(session: &Session) -> Result<String, AppError> {
    session.get::<String>(USER_ID).await.map_err(session_error)?.ok_or(AppError::Unauthenticated)
}

/// The session's workspace after a fresh membership check; falls back to the user's first
/// workspace when the stored one is gone (left or deleted).
pub async fn workspace(state: &AppState, session: &Session) -> Result<(String, WorkspaceId), AppError> {
    let user_id = user_id(session).await?;
    let stored = session.get::<String>(WORKSPACE_ID).await.map_err(session_error)?;
    if let Some(ws) = stored {
        match workspaces::authorize(&state.db, &user_id, &ws).await {
            Ok(ws) => return Ok((user_id, ws)),
            Err(ServiceError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let ws = crate::server::accounts::default_workspace(&state.db, &user_id).await.map_err(|e| match e {
        ServiceError::NotFound(_) => AppError::Unauthenticated,
        other => other.into(),
    })?;
    session.insert(WORKSPACE_ID, ws.as_str()).await.map_err(session_error)?;
    Ok((user_id, ws))
}

/// Signs the session in: new session id (no fixation), user and workspace stored.
pub async fn sign_in_session(session: &Session, user_id: &str, workspace_id: &str) -> Result<(), AppError> {
    session.cycle_id().await.map_err(session_error)?;
    session.insert(USER_ID, user_id).await.map_err(session_error)?;
    session.insert(WORKSPACE_ID, workspace_id).await.map_err(session_error)?;
    Ok(())
}

pub async fn set_workspace(session: &Session, workspace_id: &str) -> Result<(), AppError> {
    session.insert(WORKSPACE_ID, workspace_id).await.map_err(session_error)
}

pub async fn sign_out_session(session: &Session) -> Result<(), AppError> {
    session.flush().await.map_err(session_error)
}

/// The client address the rate-limit layer settled on.
pub fn client_ip() -> IpAddr {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ClientIp>().map(|c| c.0))
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}
