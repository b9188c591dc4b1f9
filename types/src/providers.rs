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
    /// Azure OpenAI: deployments under a resource endpoint, with an API version.
    Azure,
    /// Google Vertex AI's Claude models (Anthropic's Messages through `rawPredict`), reached with
    /// a service account's JSON key, in a project and region.
    Vertex,
    /// Google Vertex AI's Gemini models (`generateContent` under the project and region), with the
    /// same service account key.
    VertexGemini,
    /// Amazon Bedrock's Claude models (Anthropic's Messages through InvokeModel), signed with an
    /// IAM access key or sent with a Bedrock API key, in a region.
    Bedrock,
    /// Amazon Bedrock's Converse API, for every model Bedrock serves (Nova, Llama, Mistral, …),
    /// with the same credentials.
    BedrockConverse,
    OpenaiCompatible,
}

impl ProviderKind {
    pub const ALL: [Self; 15] = [
        Self::Openai,
        Self::Anthropic,
        Self::Gemini,
        Self::Groq,
        Self::Mistral,
        Self::Deepseek,
        Self::Openrouter,
        Self::Together,
        Self::Xai,
        Self::Azure,
        Self::Vertex,
        Self::VertexGemini,
        Self::Bedrock,
        Self::BedrockConverse,
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
            Self::Azure => "azure",
            Self::Vertex => "vertex",
            Self::VertexGemini => "vertex_gemini",
            Self::Bedrock => "bedrock",
            Self::BedrockConverse => "bedrock_converse",
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
            Self::Azure => "Azure OpenAI",
            Self::Vertex => "Google Vertex AI (Claude)",
            Self::VertexGemini => "Google Vertex AI (Gemini)",
            Self::Bedrock => "Amazon Bedrock (Claude)",
            Self::BedrockConverse => "Amazon Bedrock (Converse: Nova, Llama, Mistral…)",
            Self::OpenaiCompatible => "OpenAI-compatible (custom URL)",
        }
    }

    /// A model to try a new key with: one the kind's hosts serve (an OpenAI-compatible host
    /// serves whatever it was given; Ollama's small default is the likeliest).
    pub fn example_model(self) -> &'static str {
        match self {
            Self::Openai => "gpt-4o-mini",
            Self::Anthropic => "claude-haiku-4-5",
            Self::Gemini => "gemini-2.5-flash",
            Self::Groq => "llama-3.1-8b-instant",
            Self::Mistral => "mistral-small-latest",
            Self::Deepseek => "deepseek-chat",
            Self::Openrouter => "openai/gpt-4o-mini",
            Self::Together => "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            Self::Xai => "grok-3-mini",
            // A deployment's name; many are named after their model.
            Self::Azure => "gpt-4o-mini",
            Self::Vertex => "claude-sonnet-4-5@20250929",
            Self::VertexGemini => "gemini-2.5-flash",
            // Claude 4.5 models are served through an inference profile.
            Self::Bedrock => "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            Self::BedrockConverse => "us.amazon.nova-lite-v1:0",
            Self::OpenaiCompatible => "llama3.2",
        }
    }
}

/// The model a first call to the workspace's providers can name: the first enabled provider's
/// (by priority) first allow-listed model, or its kind's example, as `kind/model` so that routing
/// sends it to that kind whatever the model's name looks like. `None` with no enabled provider.
pub fn first_call_model(providers: &[ProviderView]) -> Option<String> {
    let first = providers.iter().filter(|p| p.enabled).min_by_key(|p| p.priority)?;
    let model = first
        .models
        .as_ref()
        .and_then(|list| list.first().cloned())
        // Pasted into a shell: only names that need no quoting.
        .filter(|m| m.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:/@+-".contains(&b)))
        .unwrap_or_else(|| first.kind.example_model().to_owned());
    Some(format!("{}/{model}", first.kind.as_str()))
}

/// The curl line that calls `/v1/chat/completions` at `base` with `token` and `model`.
pub fn curl_chat(base: &str, token: &str, model: &str) -> String {
    format!(
        "curl {base}/v1/chat/completions -H \"Authorization: Bearer {token}\" -H \"Content-Type: application/json\" -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
    )
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
    /// Prompt-cache breakpoints placed on calls translated for this provider (Anthropic's kind).
    #[serde(default = "yes")]
    pub auto_cache: bool,
    /// Refuse a translated call that offers hosted tools this provider cannot run, instead of
    /// dropping them.
    #[serde(default)]
    pub refuse_hosted_tools: bool,
    /// The API version sent with every call (Azure OpenAI's `api-version`); `None` elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The cloud region calls go to (Vertex AI's location, such as `us-east5` or `global`);
    /// `None` where the kind has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub key_status: KeyStatus,
    pub created_at: i64,
    pub updated_at: i64,
    /// How its calls have gone on this instance (`None` where it is not known, such as right
    /// after the provider was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<ProviderHealth>,
    /// What the provider last said about its own rate limits, on this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure: Option<crate::limits::ProviderPressure>,
}

/// A provider's calls over the last hour on the instance that answered, its breaker, and its
/// last success and error. Per instance: each instance sees only the calls it made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderHealth {
    /// Upstream attempts in the last hour, and those that failed.
    pub calls: u64,
    pub errors: u64,
    /// Attempt durations (to the answer, or a stream's first bytes), in milliseconds; `None`
    /// without calls. Read from a histogram: the bucket's upper bound.
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    /// Unix milliseconds of the last attempt that answered.
    pub last_success_at: Option<i64>,
    pub last_error: Option<ProviderError>,
    pub breaker: BreakerState,
}

/// The last failed attempt: when, its error class and what it means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    pub at: i64,
    pub class: String,
    pub message: String,
}

/// The provider's circuit breaker on this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go to it.
    Closed,
    /// Skipped until this Unix millisecond, after failing in a row.
    Open { until: i64 },
    /// One call is trying it again.
    Probing,
}

fn yes() -> bool {
    true
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
    /// Prompt-cache breakpoints on translated calls (default on).
    #[serde(default)]
    pub auto_cache: Option<bool>,
    /// Refuse hosted tools this provider cannot run instead of dropping them (default off).
    #[serde(default)]
    pub refuse_hosted_tools: Option<bool>,
    /// Azure OpenAI's `api-version` (default `2024-10-21`); refused for other kinds.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Vertex AI's region (`us-east5`, `europe-west1`, `global`; default `global`); refused for
    /// other kinds.
    #[serde(default)]
    pub region: Option<String>,
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
    #[serde(default)]
    pub auto_cache: Option<bool>,
    #[serde(default)]
    pub refuse_hosted_tools: Option<bool>,
    /// Azure OpenAI's `api-version`; empty restores the default.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Vertex AI's region; empty restores the default (`global`).
    #[serde(default)]
    pub region: Option<String>,
}

/// The outcome of "Test" on a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderTestResult {
    pub ok: bool,
    pub message: String,
    pub models: Vec<String>,
    pub latency_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(kind: ProviderKind, priority: i64, enabled: bool, models: Option<Vec<&str>>) -> ProviderView {
        ProviderView {
            id: format!("{kind}-{priority}"),
            label: "p".into(),
            kind,
            base_url: String::new(),
            key_preview: String::new(),
            priority,
            enabled,
            models: models.map(|m| m.into_iter().map(str::to_owned).collect()),
            aliases: BTreeMap::new(),
            auto_cache: true,
            refuse_hosted_tools: false,
            api_version: None,
            region: None,
            key_status: KeyStatus::Ok,
            created_at: 0,
            updated_at: 0,
            health: None,
            pressure: None,
        }
    }

    #[test]
    fn the_first_call_names_the_first_enabled_providers_model_by_kind() {
        assert_eq!(first_call_model(&[]), None);
        let list = [
            provider(ProviderKind::Openai, 1, false, None),
            provider(ProviderKind::OpenaiCompatible, 50, true, Some(vec!["qwen3:8b", "x"])),
            provider(ProviderKind::Anthropic, 100, true, None),
        ];
        assert_eq!(first_call_model(&list).as_deref(), Some("openai_compatible/qwen3:8b"));
        let unsafe_name = [provider(ProviderKind::Anthropic, 1, true, Some(vec!["a'b"]))];
        assert_eq!(first_call_model(&unsafe_name).as_deref(), Some("anthropic/claude-haiku-4-5"));
        let line = curl_chat("http://127.0.0.1:3000", "pk_x", "openai/gpt-4o-mini");
        assert!(line.starts_with("curl http://127.0.0.1:3000/v1/chat/completions "), "{line}");
        assert!(
            line.contains(r#"-d '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'"#),
            "{line}"
        );
    }
}
