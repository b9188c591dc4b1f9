//! Workspaces and memberships. [`WorkspaceId`] can only be made by a membership check (or by an
//! API key lookup), so every tenant query downstream is scoped by a proven id.

use surrealdb::types::{RecordId, SurrealValue};

use crate::platform::db::{Db, new_id, now_ms};
use crate::platform::error::ServiceError;
use perpetuo_types::{WorkspaceView, parse_workspace_name};

/// A workspace the caller has been shown to belong to. Private field: only this crate's
/// authorisation paths construct it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkspaceId(String);

impl WorkspaceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For ids proven some other way (an API key's own record). Crate-private on purpose.
    pub(crate) fn trusted(id: String) -> Self {
        Self(id)
    }
}

/// A member record's key.
pub fn member_key(workspace_id: &str, user_id: &str) -> String {
    format!("{workspace_id}_{user_id}")
}

#[derive(SurrealValue)]
struct WorkspaceRow {
    id: String,
    name: String,
}

/// The workspaces service.
#[derive(Debug, Clone)]
pub struct Workspaces {
    db: Db,
    /// Workspaces one account may own.
    max_owned: i64,
}

/// What a member may do in a workspace: an owner also manages its providers, prices, budgets
/// and invites, and every key; a member uses the workspace and manages the keys they created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Member,
}

/// A proven member of a workspace: who, where, and in what role. Only a membership check
/// ([`Workspaces::membership`]) makes one: a service method that takes it cannot be reached by
/// an adapter that skipped the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    user_id: String,
    ws: WorkspaceId,
    role: Role,
}

impl Membership {
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub fn workspace(&self) -> &WorkspaceId {
        &self.ws
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The owner's capability, or `Forbidden` for a member.
    pub fn owner(&self) -> Result<OwnerScope, ServiceError> {
        match self.role {
            Role::Owner => Ok(OwnerScope { user_id: self.user_id.clone(), ws: self.ws.clone() }),
            Role::Member => Err(ServiceError::Forbidden(
                "Only the workspace's owners can do this (members use its providers, keys and usage, and manage their own keys).".into(),
            )),
        }
    }

    /// For tests of services: a membership asserted rather than checked.
    #[cfg(test)]
    pub(crate) fn trusted(user_id: &str, ws: &WorkspaceId, role: Role) -> Self {
        Self { user_id: user_id.to_owned(), ws: ws.clone(), role }
    }
}

/// Proof that the caller owns the workspace: what every owner-only service method takes (setting
/// prices and budgets, managing providers and invites). Only [`Membership::owner`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerScope {
    user_id: String,
    ws: WorkspaceId,
}

impl OwnerScope {
    pub fn workspace(&self) -> &WorkspaceId {
        &self.ws
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// For tests of services: ownership asserted rather than checked.
    #[cfg(test)]
    pub(crate) fn trusted(user_id: &str, ws: &WorkspaceId) -> Self {
        Self { user_id: user_id.to_owned(), ws: ws.clone() }
    }
}

impl Workspaces {
    pub fn new(db: Db) -> Self {
        Self { db, max_owned: 10 }
    }

    /// With a quota on the workspaces one account may own.
    pub fn with_quota(mut self, max_owned: i64) -> Self {
        self.max_owned = max_owned;
        self
    }

    /// The user's role in a workspace they belong to (`NotFound` when they do not).
    pub async fn role(&self, user_id: &str, ws: &WorkspaceId) -> Result<Role, ServiceError> {
        let mut response = self
            .db
            .query("SELECT VALUE role FROM type::record('member', $member)")
            .bind(("member", member_key(ws.as_str(), user_id)))
            .await?;
        let role: Option<String> = response.take(0)?;
        match role.as_deref() {
            Some("owner") => Ok(Role::Owner),
            Some(_) => Ok(Role::Member),
            None => Err(ServiceError::NotFound("workspace")),
        }
    }

    /// The user's membership of a workspace they were shown to belong to (`NotFound` when they
    /// no longer do).
    pub async fn membership(&self, user_id: &str, ws: &WorkspaceId) -> Result<Membership, ServiceError> {
        let role = self.role(user_id, ws).await?;
        Ok(Membership { user_id: user_id.to_owned(), ws: ws.clone(), role })
    }

    /// The owner's capability, or `Forbidden` unless the user owns the workspace.
    pub async fn owner(&self, user_id: &str, ws: &WorkspaceId) -> Result<OwnerScope, ServiceError> {
        self.membership(user_id, ws).await?.owner()
    }

    /// The workspaces a user belongs to, oldest membership first.
    pub async fn list_for_user(&self, user_id: &str) -> Result<Vec<WorkspaceView>, ServiceError> {
        #[derive(SurrealValue)]
        struct MemberRow {
            workspace: String,
        }
        let mut response = self
            .db
            .query("SELECT workspace, created_at FROM member WHERE user = $user ORDER BY created_at ASC")
            .bind(("user", user_id.to_owned()))
            .await?;
        let members: Vec<MemberRow> = response.take(0)?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<RecordId> = members.iter().map(|m| RecordId::new("workspace", m.workspace.as_str())).collect();
        let mut response = self.db.query("SELECT record::id(id) AS id, name FROM $ids").bind(("ids", ids)).await?;
        let rows: Vec<WorkspaceRow> = response.take(0)?;
        // Keep membership order.
        Ok(members
            .iter()
            .filter_map(|m| rows.iter().find(|r| r.id == m.workspace))
            .map(|r| WorkspaceView { id: r.id.clone(), name: r.name.clone() })
            .collect())
    }

    /// Creates a workspace with the user as its owner.
    pub async fn create(&self, user_id: &str, name: &str) -> Result<WorkspaceView, ServiceError> {
        let name = parse_workspace_name(name).map_err(ServiceError::Invalid)?;
        let mut response = self
            .db
            .query("SELECT VALUE count() FROM member WHERE user = $user AND role = 'owner' GROUP ALL")
            .bind(("user", user_id.to_owned()))
            .await?;
        let owned: Option<i64> = response.take(0)?;
        if owned.unwrap_or(0) >= self.max_owned {
            return Err(ServiceError::Forbidden(format!(
                "An account can own at most {} workspaces on this server.",
                self.max_owned
            )));
        }
        let (id, now) = (new_id(), now_ms());
        self.db.query(
        "BEGIN TRANSACTION;
         CREATE type::record('workspace', $ws) CONTENT { name: $name, created_by: $user, created_at: $now } RETURN NONE;
         CREATE type::record('member', $member) CONTENT { workspace: $ws, user: $user, role: 'owner', created_at: $now } RETURN NONE;
         COMMIT TRANSACTION;",
    )
    .bind(("ws", id.clone()))
    .bind(("name", name.clone()))
    .bind(("user", user_id.to_owned()))
    .bind(("member", member_key(&id, user_id)))
    .bind(("now", now))
    .await?
    .check()?;
        Ok(WorkspaceView { id, name })
    }

    /// Proves that `user_id` belongs to `workspace_id`. Anything else, including a malformed or
    /// unknown id, is "not found": no existence oracle.
    pub async fn authorize(&self, user_id: &str, workspace_id: &str) -> Result<WorkspaceId, ServiceError> {
        if workspace_id.is_empty()
            || workspace_id.len() > 64
            || !workspace_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ServiceError::NotFound("workspace"));
        }
        #[derive(SurrealValue)]
        struct Row {
            user: String,
        }
        let mut response = self
            .db
            .query("SELECT user FROM type::record('member', $member)")
            .bind(("member", member_key(workspace_id, user_id)))
            .await?;
        match response.take::<Option<Row>>(0)? {
            Some(row) if row.user == user_id => Ok(WorkspaceId(workspace_id.to_owned())),
            _ => Err(ServiceError::NotFound("workspace")),
        }
    }

    /// The workspace's public fields.
    pub async fn view(&self, workspace: &WorkspaceId) -> Result<WorkspaceView, ServiceError> {
        let mut response = self
            .db
            .query("SELECT record::id(id) AS id, name FROM type::record('workspace', $ws)")
            .bind(("ws", workspace.as_str().to_owned()))
            .await?;
        let row = response.take::<Option<WorkspaceRow>>(0)?.ok_or(ServiceError::NotFound("workspace"))?;
        Ok(WorkspaceView { id: row.id, name: row.name })
    }
}
