//! Sign-up, sign-in, sign-out and workspaces.

use leptos::prelude::*;

use crate::error::AppError;
use perpetuo_types::{SessionView, WorkspaceView};

#[cfg(feature = "ssr")]
use {super::ctx, perpetuo_core::accounts::sessions};

/// Creates an account (with a personal workspace, or joining the invite's) and signs it in.
#[server(prefix = "/fn", endpoint = "sign_up")]
pub async fn sign_up(
    email: String,
    password: String,
    invite: Option<String>,
    setup_code: Option<String>,
) -> Result<(), AppError> {
    use perpetuo_core::accounts::SignUp;
    let state = ctx::state()?;
    let session = ctx::session().await?;
    let form =
        SignUp { invite: invite.as_deref(), setup_code: setup_code.as_deref(), ..SignUp::new(&email, &password) };
    let (user, workspace) = state.accounts().sign_up(ctx::client_ip(), form).await?;
    let generation = state.accounts().generation(&user.id).await?;
    sessions::sign_in(&session, &user.id, &workspace.id, generation).await?;
    leptos_axum::redirect("/providers");
    Ok(())
}

/// Whether the sign-up form must ask for the setup code (no account exists yet and sign-up is
/// not open).
#[server(prefix = "/fn", endpoint = "wants_setup_code")]
pub async fn wants_setup_code() -> Result<bool, AppError> {
    Ok(ctx::state()?.accounts().wants_setup_code().await?)
}

/// Signs in with email and password.
#[server(prefix = "/fn", endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String) -> Result<(), AppError> {
    let state = ctx::state()?;
    let session = ctx::session().await?;
    let user = state.accounts().sign_in(ctx::client_ip(), &email, &password).await?;
    let workspace = state.accounts().default_workspace(&user.id).await?;
    let generation = state.accounts().generation(&user.id).await?;
    sessions::sign_in(&session, &user.id, workspace.as_str(), generation).await?;
    leptos_axum::redirect("/providers");
    Ok(())
}

/// Changes the password (the current one is asked), ends every other session and API token, and
/// keeps this session signed in.
#[server(prefix = "/fn", endpoint = "change_password")]
pub async fn change_password(current_password: String, new_password: String) -> Result<(), AppError> {
    let state = ctx::state()?;
    let session = ctx::session().await?;
    let user_id = state.accounts().session_user(&session).await?.ok_or(AppError::Unauthenticated)?;
    let generation =
        state.accounts().change_password(ctx::client_ip(), &user_id, &current_password, &new_password).await?;
    sessions::renew(&session, generation).await?;
    if ctx::is_plain_form_post() {
        ctx::stash_notice("Password changed. Every other session and API token is signed out.").await?;
        leptos_axum::redirect("/workspaces");
    }
    Ok(())
}

/// Ends every session and API token of the signed-in user, this one included.
#[server(prefix = "/fn", endpoint = "sign_out_everywhere")]
pub async fn sign_out_everywhere() -> Result<(), AppError> {
    let state = ctx::state()?;
    let session = ctx::session().await?;
    let user_id = state.accounts().session_user(&session).await?.ok_or(AppError::Unauthenticated)?;
    state.accounts().sign_out_everywhere(&user_id).await?;
    sessions::sign_out(&session).await?;
    leptos_axum::redirect("/signin");
    Ok(())
}

/// An invite link to the current workspace (owners only), in full: the page shows it once.
#[server(prefix = "/fn", endpoint = "create_invite")]
pub async fn create_invite() -> Result<String, AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    let invite = state.accounts().invites().create(&owner).await?;
    let link = format!("{}/signup?invite={}", ctx::public_base(&state), invite.token);
    if ctx::is_plain_form_post() {
        ctx::stash_notice(&format!("Invite link (single use, good for 7 days): {link}")).await?;
        leptos_axum::redirect("/workspaces");
    }
    Ok(link)
}

/// The workspace's open invites for its owners (`None` for a member: not theirs to see).
#[server(prefix = "/fn", endpoint = "list_invites")]
pub async fn list_invites() -> Result<Option<Vec<perpetuo_types::InviteView>>, AppError> {
    let (state, who) = ctx::member_scope().await?;
    match who.owner() {
        Ok(owner) => Ok(Some(state.accounts().invites().list(&owner).await?)),
        Err(_) => Ok(None),
    }
}

/// Revokes an open invite (owners only): its link stops working.
#[server(prefix = "/fn", endpoint = "revoke_invite")]
pub async fn revoke_invite(id: String) -> Result<(), AppError> {
    let (state, owner) = ctx::owner_scope().await?;
    state.accounts().invites().revoke(&owner, &id).await?;
    if ctx::is_plain_form_post() {
        leptos_axum::redirect("/workspaces");
    }
    Ok(())
}

/// A notice for the next page render (a form post without JavaScript), once.
#[server(prefix = "/fn", endpoint = "take_notice")]
pub async fn take_notice() -> Result<Option<String>, AppError> {
    ctx::take_notice().await
}

/// Destroys the session on the server and clears the cookie.
#[server(prefix = "/fn", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    let session = ctx::session().await?;
    sessions::sign_out(&session).await?;
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
    let Some(user) = state.accounts().user(&user_id).await? else {
        sessions::sign_out(&session).await?;
        return Ok(None);
    };
    let workspaces = state.workspaces().list_for_user(&user_id).await?;
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
    let workspace = state.workspaces().authorize(&user_id, &workspace_id).await?;
    sessions::set_workspace(&session, &workspace).await?;
    leptos_axum::redirect("/providers");
    Ok(())
}

/// Creates a workspace owned by the user (switching is a separate, explicit step).
#[server(prefix = "/fn", endpoint = "create_workspace")]
pub async fn create_workspace(name: String) -> Result<WorkspaceView, AppError> {
    let state = ctx::state()?;
    let session = ctx::session().await?;
    let user_id = ctx::user_id(&session).await?;
    Ok(state.workspaces().create(&user_id, &name).await?)
}
