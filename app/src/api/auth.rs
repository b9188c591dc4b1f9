//! Tab 1: sign-up, sign-in, sign-out, workspaces.

use leptos::prelude::*;

use crate::error::AppError;
use crate::types::{SessionView, WorkspaceView};

#[cfg(feature = "ssr")]
use {super::ctx, crate::server::ServiceError, crate::server::accounts, crate::server::workspaces};

#[cfg(feature = "ssr")]
fn check_login_limit(state: &crate::server::AppState, email: &str) -> Result<(), AppError> {
    let decision = state.limiters.check_login(ctx::client_ip(), email);
    if decision.allowed {
        return Ok(());
    }
    state.metrics.rate_limited("login");
    Err(ServiceError::RateLimited { retry_after: decision.retry_after }.into())
}

/// Creates an account with a personal workspace and signs it in.
#[server(prefix = "/fn", endpoint = "sign_up")]
pub async fn sign_up(email: String, password: String) -> Result<(), AppError> {
    let state = ctx::state()?;
    check_login_limit(&state, &email)?;
    let session = ctx::session().await?;
    let (user, workspace) = accounts::sign_up(&state.db, &email, &password).await?;
    ctx::sign_in_session(&session, &user.id, &workspace.id).await?;
    leptos_axum::redirect("/providers");
    Ok(())
}

/// Signs in with email and password.
#[server(prefix = "/fn", endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String) -> Result<(), AppError> {
    let state = ctx::state()?;
    check_login_limit(&state, &email)?;
    let session = ctx::session().await?;
    let user = accounts::authenticate(&state.db, &email, &password).await?;
    let workspace = accounts::default_workspace(&state.db, &user.id).await?;
    ctx::sign_in_session(&session, &user.id, workspace.as_str()).await?;
    leptos_axum::redirect("/providers");
    Ok(())
}

/// Destroys the session on the server and clears the cookie.
#[server(prefix = "/fn", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    let session = ctx::session().await?;
    ctx::sign_out_session(&session).await?;
    leptos_axum::redirect("/signin");
    Ok(())
}

/// The signed-in user, their current workspace and all their workspaces; `None` when signed out.
#[server(prefix = "/fn", endpoint = "current_session")]
pub async fn current_session() -> Result<Option<SessionView>, AppError> {
    let state = ctx::state()?;
    let session = ctx::session().await?;
    let (user_id, workspace) = match ctx::workspace(&state, &session).await {
        Ok(found) => found,
        Err(AppError::Unauthenticated) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(user) = accounts::user(&state.db, &user_id).await? else {
        ctx::sign_out_session(&session).await?;
        return Ok(None);
    };
    let workspaces = workspaces::list_for_user(&state.db, &user_id).await?;
    let current = workspaces
        .iter()
        .find(|w| w.id == workspace.as_str())
        .cloned()
        .ok_or_else(|| AppError::NotFound("workspace".into()))?;
    Ok(Some(SessionView { user, workspace: current, workspaces }))
}

/// Makes another of the user's workspaces the current one.
#[server(prefix = "/fn", endpoint = "switch_workspace")]
pub async fn switch_workspace(workspace_id: String) -> Result<(), AppError> {
    let state = ctx::state()?;
    let session = ctx::session().await?;
    let user_id = ctx::user_id(&session).await?;
    let workspace = workspaces::authorize(&state.db, &user_id, &workspace_id).await?;
    ctx::set_workspace(&session, workspace.as_str()).await?;
    leptos_axum::redirect("/providers");
    Ok(())
}

/// Creates a workspace owned by the user (switching is a separate, explicit step).
#[server(prefix = "/fn", endpoint = "create_workspace")]
pub async fn create_workspace(name: String) -> Result<WorkspaceView, AppError> {
    let state = ctx::state()?;
    let session = ctx::session().await?;
    let user_id = ctx::user_id(&session).await?;
    Ok(workspaces::create(&state.db, &user_id, &name).await?)
}
