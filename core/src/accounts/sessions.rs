//! The browser session store on SurrealDB for `tower-sessions`.
//!
//! Records are keyed by the SHA-256 of the session id (a stolen copy of the table cannot be
//! replayed as cookies), carry their data as JSON text and their expiry in Unix seconds, and are
//! deleted by a periodic sweep once expired.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use surrealdb::types::SurrealValue;
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};

use crate::platform::db::Db;
use crate::platform::error::ServiceError;
use crate::workspaces::WorkspaceId;

/// Keys the dashboard keeps in a session.
pub const USER_ID: &str = "user_id";
pub const WORKSPACE_ID: &str = "workspace_id";
/// The page guard's verdict on a request's session, kept in the request's extensions: everything
/// rendered for that request sees the same user, even if the session ends meanwhile (a sign-out
/// everywhere from another device); the next request sees the change.
#[derive(Debug, Clone)]
pub struct CheckedSession(pub String);

/// When the session was signed in (Unix ms), and the user's token generation then.
pub const SIGNED_IN_AT: &str = "signed_in_at";
pub const GENERATION: &str = "token_gen";

fn store_error(e: tower_sessions_core::session::Error) -> ServiceError {
    ServiceError::Internal(format!("session store: {e}"))
}

/// The signed-in user's id, if any.
pub async fn user_id(session: &tower_sessions_core::Session) -> Result<Option<String>, ServiceError> {
    session.get::<String>(USER_ID).await.map_err(store_error)
}

/// The workspace the session last chose (not yet checked against memberships).
pub async fn workspace_id(session: &tower_sessions_core::Session) -> Result<Option<String>, ServiceError> {
    session.get::<String>(WORKSPACE_ID).await.map_err(store_error)
}

/// Makes `ws` the session's current workspace.
pub async fn set_workspace(session: &tower_sessions_core::Session, ws: &WorkspaceId) -> Result<(), ServiceError> {
    session.insert(WORKSPACE_ID, ws.as_str()).await.map_err(store_error)
}

/// Signs the session in: a new session id (no fixation), the user and their workspace stored,
/// with the time and the user's token generation.
pub async fn sign_in(
    session: &tower_sessions_core::Session,
    user_id: &str,
    ws: &str,
    generation: u64,
) -> Result<(), ServiceError> {
    session.cycle_id().await.map_err(store_error)?;
    session.insert(USER_ID, user_id).await.map_err(store_error)?;
    session.insert(SIGNED_IN_AT, crate::platform::db::now_ms()).await.map_err(store_error)?;
    session.insert(GENERATION, generation).await.map_err(store_error)?;
    session.insert(WORKSPACE_ID, ws).await.map_err(store_error)
}

/// When the session was signed in and under which generation (0 for sessions from before
/// generations existed).
pub async fn issued(session: &tower_sessions_core::Session) -> Result<(Option<i64>, u64), ServiceError> {
    let at = session.get::<i64>(SIGNED_IN_AT).await.map_err(store_error)?;
    let generation = session.get::<u64>(GENERATION).await.map_err(store_error)?.unwrap_or(0);
    Ok((at, generation))
}

/// Keeps the session signed in under a new generation (after its own password change).
pub async fn renew(session: &tower_sessions_core::Session, generation: u64) -> Result<(), ServiceError> {
    session.cycle_id().await.map_err(store_error)?;
    session.insert(GENERATION, generation).await.map_err(store_error)
}

/// Ends the session on the server and clears the cookie.
pub async fn sign_out(session: &tower_sessions_core::Session) -> Result<(), ServiceError> {
    session.flush().await.map_err(store_error)
}

#[derive(Debug, Clone)]
pub struct SurrealSessionStore {
    db: Db,
}

impl SurrealSessionStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

fn key(id: &Id) -> String {
    let digest: [u8; 32] = Sha256::digest(id.to_string().as_bytes()).into();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn backend(e: surrealdb::Error) -> session_store::Error {
    session_store::Error::Backend(e.message().to_owned())
}

#[derive(SurrealValue)]
struct Row {
    data: String,
    expires_at: i64,
}

/// A session store call that did not finish in time: the request fails instead of hanging.
fn timed_out() -> session_store::Error {
    session_store::Error::Backend("the session store did not answer in time".into())
}

#[async_trait]
impl SessionStore for SurrealSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        tokio::time::timeout(crate::platform::db::CALL_TIMEOUT, self.create_inner(record))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        tokio::time::timeout(crate::platform::db::CALL_TIMEOUT, self.save_inner(record))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        tokio::time::timeout(crate::platform::db::CALL_TIMEOUT, self.load_inner(id))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        tokio::time::timeout(crate::platform::db::CALL_TIMEOUT, self.delete_inner(id))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }
}

impl SurrealSessionStore {
    async fn create_inner(&self, record: &mut Record) -> session_store::Result<()> {
        // Ids are 128 random bits; a collision is astronomically unlikely, but never overwrite one.
        loop {
            let data = serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
            let created = self
                .db
                .query("CREATE type::record('session', $key) CONTENT { data: $data, expires_at: $exp } RETURN NONE")
                .bind(("key", key(&record.id)))
                .bind(("data", data))
                .bind(("exp", record.expiry_date.unix_timestamp()))
                .await
                .map_err(backend)?
                .check();
            match created {
                Ok(_) => return Ok(()),
                Err(e) if e.is_already_exists() => record.id = Id::default(),
                Err(e) => return Err(backend(e)),
            }
        }
    }

    async fn save_inner(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        self.db
            .query("UPSERT type::record('session', $key) CONTENT { data: $data, expires_at: $exp } RETURN NONE")
            .bind(("key", key(&record.id)))
            .bind(("data", data))
            .bind(("exp", record.expiry_date.unix_timestamp()))
            .await
            .map_err(backend)?
            .check()
            .map_err(backend)?;
        Ok(())
    }

    async fn load_inner(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let mut response = self
            .db
            .query("SELECT data, expires_at FROM type::record('session', $key)")
            .bind(("key", key(id)))
            .await
            .map_err(backend)?;
        let Some(row) = response.take::<Option<Row>>(0).map_err(backend)? else {
            return Ok(None);
        };
        let expiry_date = OffsetDateTime::from_unix_timestamp(row.expires_at)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        if expiry_date <= OffsetDateTime::now_utc() {
            return Ok(None);
        }
        let data = serde_json::from_str(&row.data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record { id: *id, data, expiry_date }))
    }

    async fn delete_inner(&self, id: &Id) -> session_store::Result<()> {
        self.db
            .query("DELETE type::record('session', $key) RETURN NONE")
            .bind(("key", key(id)))
            .await
            .map_err(backend)?
            .check()
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for SurrealSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.db
            .query("DELETE session WHERE expires_at <= $now RETURN NONE")
            .bind(("now", OffsetDateTime::now_utc().unix_timestamp()))
            .await
            .map_err(backend)?
            .check()
            .map_err(backend)?;
        Ok(())
    }
}

impl SurrealSessionStore {
    /// How many session records exist (expired ones included until the sweep), for tests.
    pub async fn count(&self) -> Result<usize, surrealdb::Error> {
        #[derive(SurrealValue)]
        struct Count {
            n: i64,
        }
        let mut response = self.db.query("SELECT count() AS n FROM session GROUP ALL").await?;
        let row: Option<Count> = response.take(0)?;
        Ok(row.map(|c| usize::try_from(c.n).unwrap_or(0)).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use time::Duration;

    fn record(expiry: OffsetDateTime) -> Record {
        Record {
            id: Id::default(),
            data: HashMap::from([("user_id".to_owned(), serde_json::json!("u1"))]),
            expiry_date: expiry,
        }
    }

    #[tokio::test]
    async fn save_load_delete_and_sweep() {
        let store = SurrealSessionStore::new(Db::memory().await.unwrap());
        let mut live = record(OffsetDateTime::now_utc() + Duration::hours(1));
        store.create(&mut live).await.unwrap();
        let loaded = store.load(&live.id).await.unwrap().unwrap();
        assert_eq!(loaded.data, live.data);

        let mut expired = record(OffsetDateTime::now_utc() - Duration::seconds(5));
        store.create(&mut expired).await.unwrap();
        assert!(store.load(&expired.id).await.unwrap().is_none(), "expired sessions never load");
        assert_eq!(store.count().await.unwrap(), 2);
        store.delete_expired().await.unwrap();
        assert_eq!(store.count().await.unwrap(), 1, "the sweep removes only the expired record");

        store.delete(&live.id).await.unwrap();
        assert!(store.load(&live.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn raw_session_ids_are_not_stored() {
        let db = Db::memory().await.unwrap();
        let store = SurrealSessionStore::new(db.clone());
        let mut rec = record(OffsetDateTime::now_utc() + Duration::hours(1));
        store.create(&mut rec).await.unwrap();
        let mut response = db.query("SELECT record::id(id) AS k FROM session").await.unwrap();
        let rows: Vec<serde_json::Value> = response.take(0).unwrap();
        let dump = serde_json::to_string(&rows).unwrap();
        assert!(!dump.contains(&rec.id.to_string()), "session id stored in clear: {dump}");
        assert!(dump.contains(&key(&rec.id)));
    }
}
