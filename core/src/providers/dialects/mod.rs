//! The upstream dialects: how each family of provider APIs is spoken. One module per dialect owns
//! its paths, authentication headers, request rewrite or translation, answer and stream
//! translation, usage parsing and error text; the gateway's engine only ever talks to the
//! [`Dialect`] trait. A kind names its dialect in `catalog::dialect`, so a new native dialect is
//! one new module plus one line there.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod gemini;
pub mod host;
pub mod openai;
pub mod turns;
pub mod vertex;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value};

use crate::platform::secret::SecretBytes;
pub use crate::protocols::BadAnswer;
use crate::protocols::chat::ChatSource;
use crate::protocols::{AnswerLabels, Bound, ClientRequest, Protocol, Refusal, StreamTranslator, TranslationOptions};
use crate::usage::TokenCounts;

/// Headers sent upstream beside a body.
pub type Headers = Vec<(http::HeaderName, http::HeaderValue)>;

/// An upstream endpoint a dialect knows how to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Where a client protocol's calls go.
    Call(Protocol),
    /// The model list (the "Test" button and `GET /v1/models`).
    Models,
    /// Anthropic's token count (`/v1/messages/count_tokens`).
    CountTokens,
}

/// Where one provider's calls go: its base URL, the model a call is served as (Azure OpenAI puts
/// the deployment in the path, Vertex AI the model), its API version, region and project where it
/// has them, and whether the call streams (Vertex AI streams at another method).
#[derive(Debug, Clone, Copy)]
pub struct Address<'a> {
    pub base_url: &'a str,
    pub model: &'a str,
    pub api_version: Option<&'a str>,
    pub region: Option<&'a str>,
    pub project: Option<&'a str>,
    pub stream: bool,
}

impl<'a> Address<'a> {
    /// A provider's address for calls served as `model`.
    pub fn of(provider: &'a super::OpenedProvider, model: &'a str) -> Self {
        Self {
            base_url: &provider.base_url,
            model,
            api_version: provider.api_version.as_deref(),
            region: provider.region.as_deref(),
            project: provider.project.as_deref(),
            stream: false,
        }
    }

    /// A bare base URL (kinds whose paths name no model and need no version).
    pub fn base(base_url: &'a str) -> Self {
        Self { base_url, model: "", api_version: None, region: None, project: None, stream: false }
    }

    /// The same address for a streamed call.
    pub fn streamed(self, stream: bool) -> Self {
        Self { stream, ..self }
    }
}

/// The provider refused the client's own request: what the client is told (OpenAI's error fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub message: String,
    pub kind: String,
    pub code: Option<String>,
    pub param: Option<String>,
}

/// One family of upstream APIs.
pub trait Dialect: Send + Sync {
    /// The URL of `endpoint` at a provider's address (`Call(Chat)` is where chat bodies go).
    fn url(&self, at: &Address<'_>, endpoint: Endpoint) -> String;

    /// The provider's authentication (and version) headers for this key, marked sensitive (built
    /// once per opened provider, not per request).
    fn auth_headers(&self, key: &SecretBytes) -> Vec<(http::HeaderName, http::HeaderValue)>;

    /// The body sent upstream for a request in a protocol the provider speaks (see
    /// `catalog::speaks`), served as `model`: the client's body with only what must change (the
    /// output bound added when `bound.inject`).
    fn native_body(&self, request: &ClientRequest, model: &str, bound: Bound) -> Result<Vec<u8>, Refusal>;

    /// The body and headers of a passed-through call: `native_body` and the client's protocol
    /// headers (`forward`), unless the dialect carries them otherwise (Bedrock puts the betas in
    /// the body).
    fn native_request(
        &self,
        request: &ClientRequest,
        model: &str,
        bound: Bound,
        forward: &[(http::HeaderName, http::HeaderValue)],
    ) -> Result<(Vec<u8>, Headers), Refusal> {
        Ok((self.native_body(request, model, bound)?, forward.to_vec()))
    }

    /// What turns this dialect's streams into server-sent events, when they arrive in another
    /// framing (`None`: they are server-sent events already).
    fn deframer(&self) -> Option<Box<dyn Deframer>> {
        None
    }

    /// A whole native answer, as the provider sent it, and the tokens it reports.
    fn native_answer(&self, protocol: Protocol, body: Bytes) -> Result<(Bytes, TokenCounts), BadAnswer>;

    /// A native stream, passed through event by event (only its usage is read).
    fn native_stream(&self, protocol: Protocol, labels: &AnswerLabels) -> Box<dyn StreamTranslator>;

    /// The body sent upstream for a chat completions request (the pivot of every translation),
    /// served as `model`, held to `bound` (always sent where the provider requires one), shaped
    /// by the provider's `options` (prompt-cache breakpoints where the dialect needs them).
    fn chat_body(
        &self,
        chat: &Map<String, Value>,
        model: &str,
        stream: bool,
        bound: Bound,
        options: TranslationOptions,
    ) -> Result<Vec<u8>, Refusal>;

    /// A whole answer to a chat body, as a chat completion, and the tokens it reports.
    fn chat_answer(&self, body: Bytes, labels: &AnswerLabels) -> Result<(Value, TokenCounts), BadAnswer>;

    /// A stream answering a chat body, read as chat chunks.
    fn chat_source(&self, labels: &AnswerLabels) -> Box<dyn ChatSource>;

    /// Whether a stream's first bytes already carry an error (nothing has reached the client yet,
    /// so the call can still fall back).
    fn starts_with_error(&self, first: &Bytes) -> bool;

    /// The provider's refusal of the client's own request (a 4xx other than 401/403/408/429).
    fn client_error(&self, status: StatusCode, body: &[u8]) -> ClientError;

    /// Whether an error that is not a 401/403 still says the key is bad (Google answers a bad API
    /// key with a 400 whose details name `API_KEY_INVALID`).
    fn rejects_key(&self, _status: StatusCode, _body: &[u8]) -> bool {
        false
    }

    /// The human message in a provider's error body, if any (at most 300 characters).
    fn error_message(&self, body: &[u8]) -> Option<String>;

    /// The model ids in a model-list answer.
    fn model_list(&self, body: &[u8]) -> Option<Vec<String>>;
}

/// Turns a stream's own framing into server-sent events, for dialects whose streams are not
/// SSE (Bedrock's binary event stream): each upstream chunk in, the events it completed out
/// (empty until one completes). A broken frame ends the stream with an `error` event.
pub trait Deframer: Send {
    fn push(&mut self, chunk: &[u8]) -> Bytes;
}

/// A body sent upstream, encoded (the one way a request the client sent as JSON could fail to be).
pub(crate) fn encode(body: &impl serde::Serialize) -> Result<Vec<u8>, Refusal> {
    serde_json::to_vec(body).map_err(|e| Refusal::new(format!("The request could not be encoded: {e}"), None))
}

/// The human message in an `{"error": {"message": ...}}` or `{"error": "..."}` body, shortened.
pub(crate) fn error_message_in(json: &serde_json::Value) -> Option<String> {
    let error = json.get("error")?;
    let message = error.get("message").and_then(|m| m.as_str()).or_else(|| error.as_str())?;
    Some(message.chars().take(300).collect())
}

/// Appends `items` as a turn of `role` (`{"role", key: items}`), merged into the previous turn
/// when it has the same role: Gemini and Converse want one turn for a model's calls and one for
/// their results, alternating.
pub(crate) fn push_turn(turns: &mut Vec<Value>, role: &str, key: &str, items: Vec<Value>) {
    if let Some(last) = turns.last_mut()
        && last["role"] == role
        && let Some(existing) = last[key].as_array_mut()
    {
        existing.extend(items);
        return;
    }
    let mut turn = Map::new();
    turn.insert("role".into(), Value::from(role));
    turn.insert(key.into(), Value::Array(items));
    turns.push(Value::Object(turn));
}

/// Most models kept from one provider's list, and the longest id kept.
pub const MAX_LISTED_MODELS: usize = 10_000;
pub const MAX_MODEL_ID: usize = 256;

/// The ids of a `{"data": [{"id": ...}]}` list, sorted (OpenAI's and Anthropic's shape alike):
/// at most [`MAX_LISTED_MODELS`], ids longer than [`MAX_MODEL_ID`] left out.
pub(crate) fn data_ids(body: &[u8]) -> Option<Vec<String>> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut ids: Vec<String> = json
        .get("data")?
        .as_array()?
        .iter()
        .filter_map(|m| m.get("id").and_then(|i| i.as_str()))
        .filter(|id| !id.is_empty() && id.len() <= MAX_MODEL_ID && !id.chars().any(char::is_control))
        .take(MAX_LISTED_MODELS)
        .map(str::to_owned)
        .collect();
    ids.sort();
    Some(ids)
}

/// A sensitive header value from a key (a key that is not a valid header value sends nothing, and
/// the provider refuses the call as it would a wrong key).
pub fn secret_header(value: &str) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A reqwest request with a provider's authentication headers (management calls: model lists,
/// token counts).
pub fn authorize(
    request: reqwest::RequestBuilder,
    headers: &[(http::HeaderName, http::HeaderValue)],
) -> reqwest::RequestBuilder {
    headers.iter().fold(request, |request, (name, value)| request.header(name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_lists_are_bounded() {
        let many: Vec<serde_json::Value> =
            (0..MAX_LISTED_MODELS + 50).map(|i| serde_json::json!({"id": format!("m{i:06}")})).collect();
        let mut data = many;
        data.push(serde_json::json!({"id": "x".repeat(MAX_MODEL_ID + 1)}));
        data.insert(0, serde_json::json!({"id": "bad\u{7}id"}));
        let body = serde_json::to_vec(&serde_json::json!({"data": data})).unwrap_or_default();
        let ids = data_ids(&body).unwrap_or_default();
        assert_eq!(ids.len(), MAX_LISTED_MODELS);
        assert!(ids.iter().all(|id| id.len() <= MAX_MODEL_ID && !id.contains('\u{7}')));
    }
}
