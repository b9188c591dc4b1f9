//! Provider accounts on the wire: the kinds a workspace can connect, the dashboard's view of an
//! account, and the fields to create, edit and test one. The kinds' vendor tables (URLs, model
//! families) live on the server (`server::providers::catalog`): the browser never needs them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kinds of provider account a workspace can connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Gemini,
    Groq,
    Mistral,
    Deepseek,
    Openrouter,
    Together,
    Xai,
    OpenaiCompatible,
}

impl ProviderKind {
    pub const ALL: [Self; 10] = [
        Self::Openai,
        Self::Anthropic,
        Self::Gemini,
        Self::Groq,
        Self::Mistral,
        Self::Deepseek,
        Self::Openrouter,
        Self::Together,
        Self::Xai,
        Self::OpenaiCompatible,
    ];

    /// The stable identifier used in storage, the API and `kind/model` routing.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Groq => "groq",
            Self::Mistral => "mistral",
            Self::Deepseek => "deepseek",
            Self::Openrouter => "openrouter",
            Self::Together => "together",
            Self::Xai => "xai",
            Self::OpenaiCompatible => "openai_compatible",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        Self::ALL.into_iter().find(|k| k.as_str() == raw).ok_or_else(|| {
            format!("Unknown provider kind `{raw}`; expected one of {}.", Self::ALL.map(Self::as_str).join(", "))
        })
    }

    /// Human name for the dashboard.
    pub fn label(self) -> &'static str {
        match self {
            Self::Openai => "OpenAI",
            Self::Anthropic => "Anthropic",
            Self::Gemini => "Google Gemini",
            Self::Groq => "Groq",
            Self::Mistral => "Mistral",
            Self::Deepseek => "DeepSeek",
            Self::Openrouter => "OpenRouter",
            Self::Together => "Together AI",
            Self::Xai => "xAI",
            Self::OpenaiCompatible => "OpenAI-compatible (custom URL)",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the provider's stored key last worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Not known to be bad.
    Ok,
    /// The provider answered 401/403 with this key: the user must replace it.
    Rejected,
}

impl KeyStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Rejected => "rejected",
        }
    }

    /// From the stored form; anything unknown is not known to be bad.
    pub fn from_stored(raw: &str) -> Self {
        if raw == Self::Rejected.as_str() { Self::Rejected } else { Self::Ok }
    }
}

/// A provider account as shown in the dashboard and the API: the key only as `••••last4`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    pub id: String,
    pub label: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub key_preview: String,
    pub priority: i64,
    pub enabled: bool,
    pub models: Option<Vec<String>>,
    /// Model aliases: a name clients send (exact, or a prefix ending in `*`) -> the model this
    /// provider serves for it.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    pub key_status: KeyStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Fields to create a provider. `api_key` is a secret in transit only.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct NewProvider {
    pub label: String,
    pub kind: String,
    #[serde(default)]
    pub base_url: Option<String>,
    pub api_key: String,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub aliases: Option<BTreeMap<String, String>>,
}

/// The provider key in these request types is wiped from memory when the request is dropped.
#[cfg(feature = "ssr")]
impl Drop for NewProvider {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.api_key);
    }
}

#[cfg(feature = "ssr")]
impl Drop for ProviderPatch {
    fn drop(&mut self) {
        if let Some(key) = self.api_key.as_mut() {
            zeroize::Zeroize::zeroize(key);
        }
    }
}

/// Fields to change on a provider; absent fields stay. An absent or empty `api_key` keeps the key.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ProviderPatch {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `Some(vec![])` clears the allow-list.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Replaces the aliases; `Some(empty)` clears them.
    #[serde(default)]
    pub aliases: Option<BTreeMap<String, String>>,
}

/// The outcome of "Test" on a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderTestResult {
    pub ok: bool,
    pub message: String,
    pub models: Vec<String>,
    pub latency_ms: u64,
}
