//! What every server function needs from the request: the state, the session, the signed-in user
//! and their current workspace (proven by a membership check), the client address.

use std::net::IpAddr;

use leptos::prelude::*;
use tower_sessions::Session;

use crate::error::AppError;
use perpetuo_core::platform::rate::ClientIp;
use perpetuo_core::workspaces::{Membership, OwnerScope, WorkspaceId};
use perpetuo_core::{AppState, ServiceError};

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

/// The signed-in user's id (the session checked: lifetime and generation), or `Unauthenticated`.
pub async fn user_id(session: &Session) -> Result<String, AppError> {
    if let Some(checked) = checked_session() {
        return Ok(checked.0);
    }
    state()?.accounts().session_user(session).await?.ok_or(AppError::Unauthenticated)
}

/// The page guard's verdict for this request, when it rendered a page (see `CheckedSession`).
fn checked_session() -> Option<perpetuo_core::accounts::sessions::CheckedSession> {
    use_context::<http::request::Parts>().and_then(|parts| parts.extensions.get().cloned())
}

/// The session's user and workspace, membership checked (see `Accounts::session_workspace`).
pub async fn workspace(state: &AppState, session: &Session) -> Result<(String, WorkspaceId), AppError> {
    state.accounts().session_workspace(session, checked_session().as_ref()).await?.ok_or(AppError::Unauthenticated)
}

/// The state and the session's workspace, checked: what every tab's server function starts with.
pub async fn workspace_scope() -> Result<(AppState, WorkspaceId), AppError> {
    let state = state()?;
    let session = session().await?;
    let (_, ws) = workspace(&state, &session).await?;
    Ok((state, ws))
}

/// The state and the owner's capability, for what only the workspace's owners may do
/// (`Forbidden` for a member).
pub async fn owner_scope() -> Result<(AppState, OwnerScope), AppError> {
    let state = state()?;
    let session = session().await?;
    let (user_id, ws) = workspace(&state, &session).await?;
    let owner = state.workspaces().owner(&user_id, &ws).await?;
    Ok((state, owner))
}

/// The state and the signed-in person's membership of their workspace (role included).
pub async fn member_scope() -> Result<(AppState, Membership), AppError> {
    let state = state()?;
    let session = session().await?;
    let (user_id, ws) = workspace(&state, &session).await?;
    let member = state.workspaces().membership(&user_id, &ws).await?;
    Ok((state, member))
}

/// The address links to this server start with: `PUBLIC_URL`, or else the address this request
/// reached (its `Host`, when it is a plain host and port), or else the listening address.
pub fn public_base(state: &AppState) -> String {
    if let Some(url) = &state.settings.public_url {
        return url.clone();
    }
    let host = use_context::<http::request::Parts>().and_then(|parts| {
        let host = parts.headers.get(http::header::HOST)?.to_str().ok()?.to_owned();
        let plain = !host.is_empty()
            && host.len() <= 255
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        plain.then_some(host)
    });
    format!("http://{}", host.unwrap_or_else(|| state.settings.site_addr.to_string()))
}

/// Whether this call is a browser form post without JavaScript (it will be answered with a
/// redirect, so a return value would be lost).
pub fn is_plain_form_post() -> bool {
    use_context::<http::request::Parts>()
        .and_then(|parts| {
            parts.headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).map(|a| a.contains("text/html"))
        })
        .unwrap_or(false)
}

const CREATED_KEY: &str = "created_key";

fn flash_aad(user_id: &str) -> Vec<u8> {
    format!("perpetuo/created-key-flash/{user_id}").into_bytes()
}

/// Keeps a just-created key for the next page render, sealed so the token never sits in the
/// session store in the clear.
pub async fn stash_created_key(state: &AppState, created: &perpetuo_types::CreatedApiKey) -> Result<(), AppError> {
    let session = session().await?;
    let user_id = user_id(&session).await?;
    let plain = serde_json::to_vec(created).map_err(|_| AppError::Internal)?;
    let sealed = state.cipher.seal(&plain, &flash_aad(&user_id)).map_err(|e| AppError::from(ServiceError::from(e)))?;
    session.insert(CREATED_KEY, sealed).await.map_err(session_error)
}

/// Takes the stashed key out of the session (so it shows once).
pub async fn take_created_key(state: &AppState) -> Result<Option<perpetuo_types::CreatedApiKey>, AppError> {
    let session = session().await?;
    let user_id = user_id(&session).await?;
    let Some(sealed) = session.remove::<String>(CREATED_KEY).await.map_err(session_error)? else {
        return Ok(None);
    };
    let plain = state.cipher.open(&sealed, &flash_aad(&user_id)).map_err(|e| AppError::from(ServiceError::from(e)))?;
    Ok(serde_json::from_slice(plain.expose()).ok())
}

const TEST_RESULT: &str = "provider_test";
const NOTICE: &str = "notice";

/// A notice shown once on the next page render.
pub async fn stash_notice(text: &str) -> Result<(), AppError> {
    session().await?.insert(NOTICE, text).await.map_err(session_error)
}

/// Takes the stashed notice (so it shows once).
pub async fn take_notice() -> Result<Option<String>, AppError> {
    session().await?.remove::<String>(NOTICE).await.map_err(session_error)
}

/// Keeps a provider test's outcome for the next page render (a form post without JavaScript):
/// through the session, so no link can make the page show words of its own.
pub async fn stash_test_result(result: &perpetuo_types::ProviderTestResult) -> Result<(), AppError> {
    let session = session().await?;
    session.insert(TEST_RESULT, (result.ok, result.message.clone())).await.map_err(session_error)
}

/// Takes the stashed test outcome out of the session (so it shows once).
pub async fn take_test_result() -> Result<Option<(bool, String)>, AppError> {
    let session = session().await?;
    session.remove::<(bool, String)>(TEST_RESULT).await.map_err(session_error)
}

/// The client address the rate-limit layer settled on.
pub fn client_ip() -> IpAddr {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ClientIp>().map(|c| c.0))
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}
