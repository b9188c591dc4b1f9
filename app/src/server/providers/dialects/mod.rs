//! The upstream dialects: how each family of provider APIs is spoken. One module per dialect owns
//! its paths, authentication headers, request rewrite or translation, answer and stream
//! translation, usage parsing and error text; the gateway's engine only ever talks to the
//! [`Dialect`] trait. A kind names its dialect in `catalog::dialect`, so a new native dialect is
//! one new module plus one line there.

pub mod anthropic;
pub mod openai;

use bytes::Bytes;
use http::StatusCode;

use crate::server::platform::secret::SecretBytes;
use crate::server::protocols::sse;
use crate::server::protocols::{AnswerLabels, ClientRequest, Protocol, Refusal};
use crate::server::usage::Tokens;

/// An upstream endpoint a dialect knows how to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Where a client protocol's calls go.
    Call(Protocol),
    /// The model list (the "Test" button and `GET /v1/models`).
    Models,
}

/// The provider refused the client's own request: what the client is told (OpenAI's error fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub message: String,
    pub kind: String,
    pub code: Option<String>,
    pub param: Option<String>,
}

/// A successful answer that could not be read: the provider misbehaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadAnswer;

/// An upstream stream, one event at a time, as the client's protocol wants it.
pub trait StreamTranslator: Send {
    /// The client's bytes for one upstream event, pushed onto `out`; `Err` with the provider's
    /// message when the event reports an error.
    fn event(&mut self, event: &sse::Event, out: &mut Vec<Bytes>) -> Result<(), String>;
    /// Whether the stream has reached its end marker (nothing more is expected).
    fn finished(&self) -> bool;
    /// Whether a stream whose connection ends now has ended cleanly (some servers close after
    /// the last chunk without an end marker).
    fn complete_on_close(&self) -> bool;
    /// The usage the stream has reported so far.
    fn tokens(&self) -> Tokens;
}

/// One family of upstream APIs.
pub trait Dialect: Send + Sync {
    /// The URL of `endpoint` under a provider's base URL.
    fn url(&self, base_url: &str, endpoint: Endpoint) -> String;

    /// The request with the provider's authentication (and version) headers.
    fn authorize(&self, request: reqwest::RequestBuilder, key: &SecretBytes) -> reqwest::RequestBuilder;

    /// The body sent upstream for `request`, served as `model`.
    fn request_body(&self, request: &ClientRequest, model: &str) -> Result<Vec<u8>, Refusal>;

    /// A whole successful answer as the client's protocol wants it, and the tokens it reports.
    fn answer(&self, protocol: Protocol, body: Bytes, labels: &AnswerLabels) -> Result<(Bytes, Tokens), BadAnswer>;

    /// A translator for a successful stream.
    fn stream(&self, labels: &AnswerLabels) -> Box<dyn StreamTranslator>;

    /// Whether a stream's first bytes already carry an error (nothing has reached the client yet,
    /// so the call can still fall back).
    fn starts_with_error(&self, first: &Bytes) -> bool;

    /// The provider's refusal of the client's own request (a 4xx other than 401/403/408/429).
    fn client_error(&self, status: StatusCode, body: &[u8]) -> ClientError;

    /// The human message in a provider's error body, if any (at most 300 characters).
    fn error_message(&self, body: &[u8]) -> Option<String>;

    /// The model ids in a model-list answer.
    fn model_list(&self, body: &[u8]) -> Option<Vec<String>>;
}

/// The human message in an `{"error": {"message": ...}}` or `{"error": "..."}` body, shortened.
pub(crate) fn error_message_in(json: &serde_json::Value) -> Option<String> {
    let error = json.get("error")?;
    let message = error.get("message").and_then(|m| m.as_str()).or_else(|| error.as_str())?;
    Some(message.chars().take(300).collect())
}

/// The ids of a `{"data": [{"id": ...}]}` list, sorted (OpenAI's and Anthropic's shape alike).
pub(crate) fn data_ids(body: &[u8]) -> Option<Vec<String>> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut ids: Vec<String> = json
        .get("data")?
        .as_array()?
        .iter()
        .filter_map(|m| m.get("id").and_then(|i| i.as_str()).map(str::to_owned))
        .collect();
    ids.sort();
    Some(ids)
}
