//! Invitations to a workspace: a link an owner makes, single use, expiring; whoever signs up
//! with it joins that workspace as a member. Only the SHA-256 of the invite token is stored.

use surrealdb::types::SurrealValue;

use crate::keys::tokens;
use crate::platform::db::{Db, new_id, now_ms};
use crate::platform::error::ServiceError;
use crate::workspaces::{OwnerScope, WorkspaceId};
use perpetuo_types::{DAY_MS, InviteView};

/// How long an invite stays good.
pub const INVITE_TTL_MS: i64 = 7 * DAY_MS;
/// Open invites a workspace may hold at once.
const MAX_OPEN_INVITES: i64 = 100;
const TOKEN_PREFIX: &str = "inv_";

/// A new invite: its token (shown once, in the link) and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewInvite {
    pub token: String,
    pub expires_at: i64,
}

/// The invite's token as stored: the same hash as API keys use.
fn hash(token: &str) -> String {
    tokens::hash(token)
}

/// Whether a presented string has the shape of an invite token (cheap check before a lookup).
fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_PREFIX.len() + 43
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
}

#[derive(Debug, Clone)]
pub struct Invites {
    db: Db,
}

impl Invites {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Makes an invite to the owner's workspace.
    pub async fn create(&self, owner: &OwnerScope) -> Result<NewInvite, ServiceError> {
        let (ws, created_by) = (owner.workspace(), owner.user_id());
        let now = now_ms();
        let mut response = self
            .db
            .query(
                "SELECT VALUE count() FROM invite WHERE workspace = $ws AND used_at = NONE AND revoked_at = NONE \
                 AND expires_at > $now GROUP ALL",
            )
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("now", now))
            .await?;
        let open: Option<i64> = response.take(0)?;
        if open.unwrap_or(0) >= MAX_OPEN_INVITES {
            return Err(ServiceError::Invalid(format!(
                "This workspace has {MAX_OPEN_INVITES} open invites; wait for some to be used or to expire."
            )));
        }
        let generated = tokens::generate()?;
        let token = format!("{TOKEN_PREFIX}{}", &generated.token[tokens::TOKEN_PREFIX.len()..]);
        let expires_at = now + INVITE_TTL_MS;
        self.db
            .query(
                "CREATE type::record('invite', $id) CONTENT {
                    workspace: $ws, hash: $hash, created_by: $by, created_at: $now, expires_at: $expires_at
                 } RETURN NONE",
            )
            .bind(("id", new_id()))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("hash", hash(&token)))
            .bind(("by", created_by.to_owned()))
            .bind(("now", now))
            .bind(("expires_at", expires_at))
            .await?
            .check()?;
        Ok(NewInvite { token, expires_at })
    }

    /// The workspace's open invites (unused, unrevoked, unexpired), newest first.
    pub async fn list(&self, owner: &OwnerScope) -> Result<Vec<InviteView>, ServiceError> {
        #[derive(SurrealValue)]
        struct Row {
            id: String,
            created_by: Option<String>,
            created_at: i64,
            expires_at: i64,
        }
        let mut response = self
            .db
            .query(
                "SELECT record::id(id) AS id, type::record('user', created_by).email AS created_by, created_at, expires_at \
                 FROM invite WHERE workspace = $ws AND used_at = NONE AND revoked_at = NONE AND expires_at > $now \
                 ORDER BY created_at DESC LIMIT 100",
            )
            .bind(("ws", owner.workspace().as_str().to_owned()))
            .bind(("now", now_ms()))
            .await?;
        let rows: Vec<Row> = response.take(0)?;
        Ok(rows
            .into_iter()
            .map(|r| InviteView {
                id: r.id,
                created_by: r.created_by,
                created_at: r.created_at,
                expires_at: r.expires_at,
            })
            .collect())
    }

    /// Revokes an open invite of the owner's workspace: its link no longer works.
    pub async fn revoke(&self, owner: &OwnerScope, id: &str) -> Result<(), ServiceError> {
        let mut response = self
            .db
            .query(
                "UPDATE type::record('invite', $id) SET revoked_at = $now \
                 WHERE workspace = $ws AND used_at = NONE AND revoked_at = NONE RETURN VALUE record::id(id)",
            )
            .bind(("id", id.to_owned()))
            .bind(("ws", owner.workspace().as_str().to_owned()))
            .bind(("now", now_ms()))
            .await?;
        let revoked: Vec<String> = response.take(0)?;
        if revoked.is_empty() { Err(ServiceError::NotFound("invite")) } else { Ok(()) }
    }

    /// The workspace a presented invite leads to, if it is good now (unused, unexpired). It is
    /// used up by the sign-up's own transaction, so two people racing with one link: one wins.
    pub async fn workspace_of(&self, token: &str) -> Result<WorkspaceId, ServiceError> {
        let token = token.trim();
        if !well_formed(token) {
            return Err(invalid());
        }
        let mut response = self
            .db
            .query(
                "SELECT VALUE workspace FROM invite WHERE hash = $hash AND used_at = NONE AND revoked_at = NONE \
                 AND expires_at > $now LIMIT 1",
            )
            .bind(("hash", hash(token)))
            .bind(("now", now_ms()))
            .await?;
        let found: Option<String> = response.take(0)?;
        found.map(WorkspaceId::trusted).ok_or_else(invalid)
    }
}

/// An invite that was used, revoked, has expired, or is mistyped.
pub fn invalid() -> ServiceError {
    ServiceError::Forbidden("This invite link is not valid: it was used, revoked, has expired, or is mistyped.".into())
}

/// The stored form of an invite token (for the sign-up transaction that uses it up).
pub fn stored_hash(token: &str) -> String {
    hash(token.trim())
}
