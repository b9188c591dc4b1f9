//! Users: sign-up (with a personal workspace) and sign-in.

use surrealdb::types::SurrealValue;

use super::db::{Db, is_conflict, new_id, now_ms, root_cause};
use super::error::ServiceError;
use super::password;
use super::secret::SecretBytes;
use super::workspaces::{self, WorkspaceId};
use crate::types::{Email, UserView, WorkspaceView, check_password_rules};

#[derive(SurrealValue)]
struct UserRow {
    id: String,
    email: String,
    password_hash: String,
}

/// Parses sign-up or sign-in fields into their checked forms.
fn parse_credentials(email: &str, password: &str) -> Result<(Email, SecretBytes), ServiceError> {
    let email = Email::parse(email).map_err(ServiceError::Invalid)?;
    check_password_rules(password).map_err(ServiceError::Invalid)?;
    Ok((email, SecretBytes::new(password.as_bytes().to_vec())))
}

/// Creates a user and their personal workspace, atomically.
pub async fn sign_up(db: &Db, email: &str, password: &str) -> Result<(UserView, WorkspaceView), ServiceError> {
    let (email, password) = parse_credentials(email, password)?;
    let password_hash = password::hash(password).await?;
    let (user_id, workspace_id, now) = (new_id(), new_id(), now_ms());
    let workspace_name = "Personal".to_owned();
    let mut response = db
        .query(
            "BEGIN TRANSACTION;
             CREATE type::record('user', $user) CONTENT { email: $email, password_hash: $hash, created_at: $now } RETURN NONE;
             CREATE type::record('workspace', $ws) CONTENT { name: $name, created_by: $user, created_at: $now } RETURN NONE;
             CREATE type::record('member', $member) CONTENT { workspace: $ws, user: $user, role: 'owner', created_at: $now } RETURN NONE;
             COMMIT TRANSACTION;",
        )
        .bind(("user", user_id.clone()))
        .bind(("email", email.as_str().to_owned()))
        .bind(("hash", password_hash))
        .bind(("ws", workspace_id.clone()))
        .bind(("name", workspace_name.clone()))
        .bind(("member", workspaces::member_key(&workspace_id, &user_id)))
        .bind(("now", now))
        .await?;
    if let Some(error) = root_cause(response.take_errors()) {
        if is_conflict(&error) {
            return Err(ServiceError::Conflict("An account with this email already exists. Sign in instead.".into()));
        }
        return Err(ServiceError::Database(error));
    }
    Ok((
        UserView { id: user_id, email: email.as_str().to_owned() },
        WorkspaceView { id: workspace_id, name: workspace_name },
    ))
}

/// Checks email and password. Unknown emails and wrong passwords take the same path and time and
/// give the same error.
pub async fn authenticate(db: &Db, email: &str, password: &str) -> Result<UserView, ServiceError> {
    // A malformed email or an out-of-range password cannot match any account: same answer.
    let parsed = Email::parse(email).ok().zip(check_password_rules(password).ok());
    let password = SecretBytes::new(password.as_bytes().to_vec());
    let row = match &parsed {
        Some((email, ())) => {
            let mut response = db
                .query("SELECT record::id(id) AS id, email, password_hash FROM user WHERE email = $email LIMIT 1")
                .bind(("email", email.as_str().to_owned()))
                .await?;
            response.take::<Option<UserRow>>(0)?
        }
        None => None,
    };
    let stored_hash = row.as_ref().map(|r| r.password_hash.clone());
    let matches = password::verify(password, stored_hash).await?;
    match row {
        Some(row) if matches => Ok(UserView { id: row.id, email: row.email }),
        _ => Err(ServiceError::InvalidCredentials),
    }
}

/// The user by id, if it still exists.
pub async fn user(db: &Db, user_id: &str) -> Result<Option<UserView>, ServiceError> {
    #[derive(SurrealValue)]
    struct Row {
        id: String,
        email: String,
    }
    let mut response = db
        .query("SELECT record::id(id) AS id, email FROM type::record('user', $id)")
        .bind(("id", user_id.to_owned()))
        .await?;
    Ok(response.take::<Option<Row>>(0)?.map(|r| UserView { id: r.id, email: r.email }))
}

/// The user's default workspace: the first one they joined.
pub async fn default_workspace(db: &Db, user_id: &str) -> Result<WorkspaceId, ServiceError> {
    let list = workspaces::list_for_user(db, user_id).await?;
    let first = list.into_iter().next().ok_or(ServiceError::NotFound("workspace"))?;
    workspaces::authorize(db, user_id, &first.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sign_up_then_duplicate_then_sign_in() {
        let db = Db::memory().await.unwrap();
        let (user, ws) = sign_up(&db, "Dup@Example.com", "long enough password").await.unwrap();
        assert_eq!(user.email, "dup@example.com");
        let again = sign_up(&db, "dup@example.com ", "another password!").await;
        assert!(matches!(again, Err(ServiceError::Conflict(_))), "{again:?}");
        let signed_in = authenticate(&db, "DUP@example.com", "long enough password").await.unwrap();
        assert_eq!(signed_in.id, user.id);
        assert!(matches!(
            authenticate(&db, "dup@example.com", "wrong password!").await,
            Err(ServiceError::InvalidCredentials)
        ));
        assert_eq!(default_workspace(&db, &user.id).await.unwrap().as_str(), ws.id);
    }
}
