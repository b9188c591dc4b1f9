//! Perpetuo API keys on the wire. Nothing here holds a secret except [`CreatedApiKey::token`],
//! which exists to be shown once.

use serde::{Deserialize, Serialize};

/// Whether a key can be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    Revoked,
    Expired,
}

/// A Perpetuo API key as listed: never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub state: KeyState,
    /// `pk_abcd…wxyz`, for recognising a key.
    pub preview: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub rate_limit_per_min: Option<u32>,
    /// Who created it (their email; `None` for keys made before this was recorded, or when the
    /// account is gone).
    #[serde(default)]
    pub created_by: Option<String>,
    /// Whether the person asking may revoke and delete it (owners: every key; members: their own).
    #[serde(default)]
    pub yours: bool,
    /// The key's own choice about body capture.
    #[serde(default)]
    pub capture: crate::KeyCapture,
}

/// Fields to create an API key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewApiKey {
    pub name: String,
    /// Days until it expires; none for no expiry.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
    /// Unix milliseconds; an alternative to `expires_in_days` for the API.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub rate_limit_per_min: Option<u32>,
}

/// The only place a token ever appears: the answer to its creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub key: ApiKeyView,
    pub token: String,
}
